// Threat Exchange > Business Rules: the filter builder beside the query text, exceptions, mute with an
// unmute time, and what each rule would share (its test counts).
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api";
import { GroupEditor, emptyGroup, toText, type Group } from "../filter";
import { CheckField, DangerButton, Field, Modal, Notice, Page, TextField, formatBytes, formatDate, useForm, useLoad, useRowAction, useSession } from "../ui";

type RuleWithTest = Schemas["Rule"] & { test: Schemas["RuleTest"] | null };

export function BusinessRules() {
  const session = useSession();
  const writer = session.can("cte_write");
  const list = useLoad(async (): Promise<RuleWithTest[]> => {
    const rules = await ok(api.GET("/api/cte/business_rules"));
    return Promise.all(
      rules.map(async (r) => ({
        ...r,
        test: await ok(api.GET("/api/cte/business_rules/{name}/test", { params: { path: { name: r.name } } })).catch(() => null),
      })),
    );
  });
  const [editing, setEditing] = useState<Schemas["Rule"] | "new" | null>(null);
  const row = useRowAction(list.reload);
  const remove = (name: string) =>
    row.run(`Delete the rule ${name}?`, () => ok(api.DELETE("/api/cte/business_rules/{name}", { params: { path: { name } } })));
  return (
    <Page title="Business Rules" actions={writer && <button type="button" class="primary" onClick={() => setEditing("new")}>Create Business Rule</button>}>
      <Notice message={list.error ?? row.message} />
      <table>
        <caption>Business rules, with what each would share now</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Query</th>
            <th scope="col">Exceptions</th>
            <th scope="col">Muted</th>
            <th scope="col">URLs (size)</th>
            <th scope="col">File hashes (size)</th>
            {writer && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((r) => (
            <tr key={r.name}>
              <td>{r.name}</td>
              <td><code>{r.filters.query || "(every indicator)"}</code></td>
              <td>{r.exceptions.length}</td>
              <td>{r.muted ? (r.unmuteAt ? `until ${formatDate(r.unmuteAt)}` : "yes") : "no"}</td>
              <td>{r.test ? `${r.test.url_count} (${formatBytes(r.test.url_size)})` : "—"}</td>
              <td>{r.test ? `${r.test.hash_count} (${formatBytes(r.test.hash_size)})` : "—"}</td>
              {writer && (
                <td>
                  <button type="button" class="link" onClick={() => setEditing(r)}>Edit {r.name}</button>{" "}
                  <DangerButton label={`Delete ${r.name}`} onClick={() => void remove(r.name)} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {editing && (
        <Modal title={editing === "new" ? "Create Business Rule" : `Edit ${editing.name}`} onClose={() => setEditing(null)}>
          <RuleForm rule={editing === "new" ? null : editing} onSaved={() => { setEditing(null); void list.reload(); }} />
        </Modal>
      )}
    </Page>
  );
}

interface ExceptionRow {
  name: string;
  query: string;
  tags: string;
}

function localInput(iso: string | null | undefined): string {
  return iso ? new Date(iso).toISOString().slice(0, 16) : "";
}

function RuleForm({ rule, onSaved }: { rule: Schemas["Rule"] | null; onSaved: () => void }) {
  const [group, setGroup] = useState<Group>(emptyGroup());
  const form = useForm({
    name: rule?.name ?? "",
    query: rule?.filters.query ?? "",
    muted: rule?.muted ?? false,
    unmuteAt: localInput(rule?.unmuteAt),
    exceptions: (rule?.exceptions ?? []).map((x) => {
      const e = x as { name: string; filters?: { query?: string } | null; tags?: string[] | null };
      return { name: e.name, query: e.filters?.query ?? "", tags: (e.tags ?? []).join(", ") };
    }) as ExceptionRow[],
  });
  const v = form.values;
  const onBuilder = (g: Group) => {
    setGroup(g);
    form.set("query", toText(g));
  };
  const setException = (i: number, patch: Partial<ExceptionRow> | null) => {
    const rows = [...v.exceptions];
    if (patch === null) rows.splice(i, 1);
    else rows[i] = { ...rows[i], ...patch };
    form.set("exceptions", rows);
  };
  const submit = (e: Event) => {
    e.preventDefault();
    void form.submit(async () => {
      const exceptions = v.exceptions.map((x) => ({
        name: x.name,
        ...(x.query.trim() ? { filters: { query: x.query } } : {}),
        ...(x.tags.trim() ? { tags: x.tags.split(",").map((t) => t.trim()).filter(Boolean) } : {}),
      }));
      const unmuteAt = v.muted && v.unmuteAt ? new Date(`${v.unmuteAt}Z`).toISOString() : null;
      const body = { filters: { query: v.query }, exceptions, muted: v.muted, unmuteAt };
      if (rule) await ok(api.PATCH("/api/cte/business_rules/{name}", { params: { path: { name: rule.name } }, body }));
      else await ok(api.POST("/api/cte/business_rules", { body: { name: v.name, ...body } }));
      onSaved();
    });
  };
  return (
    <form onSubmit={submit} class="wide">
      <Notice message={form.message} />
      {!rule && <TextField label="Name" value={v.name} onInput={(x) => form.set("name", x)} error={form.errors.name} required />}
      <div class="side-by-side">
        <GroupEditor group={group} onChange={onBuilder} label="Filter builder" />
        <Field label="Query" error={form.errors.query ?? form.errors.filters} hint="The builder writes this text; it may also be edited by hand.">
          {(id, described) => (
            <textarea id={id} rows={6} value={v.query} aria-describedby={described} onInput={(e) => form.set("query", (e.target as HTMLTextAreaElement).value)} />
          )}
        </Field>
      </div>
      <fieldset>
        <legend>Exceptions (matching indicators are not shared)</legend>
        {v.exceptions.map((x, i) => (
          <div class="exception" key={i}>
            <TextField label={`Exception ${i + 1} name`} value={x.name} onInput={(s) => setException(i, { name: s })} />
            <TextField label={`Exception ${i + 1} query`} value={x.query} onInput={(s) => setException(i, { query: s })} />
            <TextField label={`Exception ${i + 1} tags`} value={x.tags} onInput={(s) => setException(i, { tags: s })} hint="comma-separated" />
            <button type="button" class="link" onClick={() => setException(i, null)}>Remove exception {i + 1}</button>
          </div>
        ))}
        <Notice message={form.errors.exceptions} />
        <button type="button" onClick={() => form.set("exceptions", [...v.exceptions, { name: "", query: "", tags: "" }])}>Add exception</button>
      </fieldset>
      <CheckField label="Muted" checked={v.muted} onChange={(x) => form.set("muted", x)} error={form.errors.muted} />
      {v.muted && (
        <TextField label="Unmute at (UTC)" type="datetime-local" value={v.unmuteAt} onInput={(x) => form.set("unmuteAt", x)} error={form.errors.unmuteAt} hint="Empty: muted until unmuted by hand." />
      )}
      <div class="form-actions">
        <button type="submit" class="primary" disabled={form.busy}>Save</button>
      </div>
    </form>
  );
}
