// Threat Exchange > Sharing: the seed's fields and the priority; before saving, the exact change the
// sharing would make to its list; after, each list's live status.
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api";
import { DangerButton, Modal, Notice, Page, SelectField, TextField, useForm, useLoad, useRowAction, useSession } from "../ui";
import { ListStatusTable } from "./status";

const PRIORITIES: [string, string][] = [
  ["lastSeen", "Last seen (newest first)"],
  ["severity", "Severity (highest first)"],
  ["reputation", "Reputation (highest first)"],
  ["sources", "Number of sources (most first)"],
];

export function Sharing() {
  const session = useSession();
  const writer = session.can("cte_write");
  const list = useLoad(() => ok(api.GET("/api/cte/sharing")));
  const [editing, setEditing] = useState<Schemas["Sharing"] | "new" | null>(null);
  const [preview, setPreview] = useState<Schemas["Sharing"] | null>(null);
  const row = useRowAction(list.reload);
  const remove = (id: number) =>
    row.run(`Delete the sharing ${id}? Its list is emptied.`, () =>
      ok(api.DELETE("/api/cte/sharing/{sharing_id}", { params: { path: { sharing_id: id } } })),
    );
  return (
    <Page title="Sharing" actions={writer && <button type="button" class="primary" onClick={() => setEditing("new")}>Add Sharing Configuration</button>}>
      <Notice message={list.error ?? row.message} />
      <table>
        <caption>Sharing configurations</caption>
        <thead>
          <tr>
            <th scope="col">Source Configuration</th>
            <th scope="col">Business Rule</th>
            <th scope="col">Destination Configuration</th>
            <th scope="col">Target</th>
            <th scope="col">List</th>
            <th scope="col">Priority</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((s) => (
            <tr key={s.id}>
              <td>{s.sourceConfiguration}</td>
              <td>{s.businessRule}</td>
              <td>{s.destinationConfiguration}</td>
              <td>{s.target.label}</td>
              <td>{listName(s)}</td>
              <td>{s.priority}</td>
              <td>
                <button type="button" class="link" onClick={() => setPreview(s)}>Dry run {listName(s)}</button>
                {writer && (
                  <>
                    {" "}
                    <button type="button" class="link" onClick={() => setEditing(s)}>Edit {listName(s)}</button>{" "}
                    <DangerButton label={`Delete ${listName(s)}`} onClick={() => void remove(s.id)} />
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>List status</h2>
      <ListStatusTable />
      {editing && (
        <Modal title={editing === "new" ? "Add Sharing Configuration" : `Edit sharing to ${listName(editing)}`} onClose={() => setEditing(null)}>
          <SharingForm sharing={editing === "new" ? null : editing} onSaved={() => { setEditing(null); void list.reload(); }} />
        </Modal>
      )}
      {preview && (
        <Modal title={`Dry run of ${listName(preview)}`} onClose={() => setPreview(null)}>
          <SavedDryRun id={preview.id} />
        </Modal>
      )}
    </Page>
  );
}

function listName(s: Schemas["Sharing"]): string {
  const p = s.parameters as Record<string, unknown>;
  return String(s.action === "url" ? (p.list === "create" ? p.name : p.list) : p.file_list);
}

function SavedDryRun({ id }: { id: number }) {
  const run = useLoad(() => ok(api.GET("/api/cte/sharing/{sharing_id}/dry_run", { params: { path: { sharing_id: id } } })));
  return (
    <>
      <Notice message={run.error} />
      {run.data && <DryRunView run={run.data} />}
    </>
  );
}

export function DryRunView({ run }: { run: Schemas["SharingDryRun"] }) {
  return (
    <div class="dry-run" aria-live="polite">
      {run.ruleMuted && <p class="notice info">The rule is muted: nothing would be shared while it is.</p>}
      <dl class="figures">
        <dt>Selected</dt>
        <dd>{run.selected}</dd>
        <dt>Would add</dt>
        <dd data-testid="would-add">{run.wouldAddCount}</dd>
        <dt>Would remove</dt>
        <dd data-testid="would-remove">{run.wouldRemoveCount}</dd>
        <dt>Left out by the cap</dt>
        <dd data-testid="left-out">{run.leftOutByCapCount}</dd>
      </dl>
      <Values title="Would add" values={run.wouldAdd} />
      <Values title="Would remove" values={run.wouldRemove} />
      <Values title="Left out by the cap" values={run.leftOutByCap} />
      {Object.keys(run.excluded).length > 0 && (
        <p>
          Not selected:{" "}
          {Object.entries(run.excluded)
            .map(([k, n]) => `${k}: ${n}`)
            .join(", ")}
        </p>
      )}
    </div>
  );
}

function Values({ title, values }: { title: string; values: unknown[] }) {
  if (!values.length) return null;
  return (
    <details>
      <summary>
        {title} (first {values.length})
      </summary>
      <ul class="values">
        {values.map((v, i) => (
          <li key={i}>
            <code>{typeof v === "string" ? v : JSON.stringify(v)}</code>
          </li>
        ))}
      </ul>
    </details>
  );
}

function SharingForm({ sharing, onSaved }: { sharing: Schemas["Sharing"] | null; onSaved: () => void }) {
  const configurations = useLoad(() => ok(api.GET("/api/cte/configurations")));
  const rules = useLoad(() => ok(api.GET("/api/cte/business_rules")));
  const p = (sharing?.parameters ?? {}) as Record<string, string | number>;
  const form = useForm({
    sourceConfiguration: sharing?.sourceConfiguration ?? "",
    businessRule: sharing?.businessRule ?? "",
    destinationConfiguration: sharing?.destinationConfiguration ?? "",
    action: (sharing?.action ?? "url") as "url" | "file",
    listName: sharing ? listName(sharing) : "",
    listSize: String(p.max_url_list_cap ?? p.max_file_hash_cap ?? 7),
    defaultValue: String(p.default_url ?? p.default_file_hash ?? ""),
    priority: sharing?.priority ?? "lastSeen",
  });
  const [dryRun, setDryRun] = useState<Schemas["SharingDryRun"] | null>(null);
  const v = form.values;
  const all = configurations.data ?? [];
  const request = (): Schemas["SharingIn"] => {
    const parameters: Record<string, unknown> =
      v.action === "url"
        ? { list: "create", name: v.listName, max_url_list_cap: Number(v.listSize), ...(v.defaultValue ? { default_url: v.defaultValue } : {}) }
        : { file_list: v.listName, max_file_hash_cap: Number(v.listSize), ...(v.defaultValue ? { default_file_hash: v.defaultValue } : {}) };
    return {
      sourceConfiguration: v.sourceConfiguration,
      businessRule: v.businessRule,
      destinationConfiguration: v.destinationConfiguration,
      action: v.action,
      parameters,
      priority: v.priority as Schemas["SharingIn"]["priority"],
    };
  };
  const preview = () =>
    void form.submit(async () => {
      setDryRun(await ok(api.POST("/api/cte/sharing/dry_run", { body: request() })));
    });
  const submit = (e: Event) => {
    e.preventDefault();
    void form.submit(async () => {
      const body = request();
      if (sharing)
        await ok(
          api.PATCH("/api/cte/sharing/{sharing_id}", {
            params: { path: { sharing_id: sharing.id } },
            body: { businessRule: body.businessRule, parameters: body.parameters, priority: body.priority },
          }),
        );
      else await ok(api.POST("/api/cte/sharing", { body }));
      onSaved();
    });
  };
  const errors = form.errors;
  return (
    <form onSubmit={submit}>
      <Notice message={form.message ?? configurations.error ?? rules.error} />
      <SelectField label="Source Configuration" value={v.sourceConfiguration} options={[["", "Choose a source"], ...all.map((c) => c.name)]} onChange={(x) => form.set("sourceConfiguration", x)} error={errors.sourceConfiguration} />
      <SelectField label="Business Rule" value={v.businessRule} options={[["", "Choose a rule"], ...(rules.data ?? []).map((r) => r.name)]} onChange={(x) => form.set("businessRule", x)} error={errors.businessRule} />
      <SelectField label="Destination Configuration" value={v.destinationConfiguration} options={[["", "Choose a destination"], ...all.filter((c) => c.plugin === "netskope").map((c) => c.name)]} onChange={(x) => form.set("destinationConfiguration", x)} error={errors.destinationConfiguration} />
      <SelectField
        label="Target"
        value={v.action}
        options={[["url", "Add to URL List"], ["file", "Add to File Hash List"]]}
        onChange={(x) => {
          form.set("action", x as "url" | "file");
          form.set("listSize", x === "url" ? "7" : "8");
        }}
        error={errors.action}
      />
      <TextField label="List Name" value={v.listName} onInput={(x) => form.set("listName", x)} error={errors.name ?? errors.list ?? errors.file_list} hint={v.action === "url" ? "Created on the tenant if it does not exist." : "A file hash list that exists on the tenant."} required />
      <TextField label="List Size (MB)" type="number" value={v.listSize} onInput={(x) => form.set("listSize", x)} error={errors.max_url_list_cap ?? errors.max_file_hash_cap} hint={v.action === "url" ? "At most 7 MB, the tenant's URL list limit." : "At most 8 MB."} />
      <TextField label={v.action === "url" ? "Default URL" : "Default File Hash"} value={v.defaultValue} onInput={(x) => form.set("defaultValue", x)} error={errors.default_url ?? errors.default_file_hash} hint="What the list holds when nothing is shared (empty: the default)." />
      <SelectField label="Priority" value={v.priority} options={PRIORITIES} onChange={(x) => form.set("priority", x as typeof v.priority)} error={errors.priority} hint="Which indicators stay when the list is full." />
      <div class="form-actions">
        <button type="button" onClick={preview} disabled={form.busy}>Preview changes</button>
        <button type="submit" class="primary" disabled={form.busy}>Save</button>
      </div>
      {dryRun && (
        <section aria-label="Changes this sharing would make">
          <h3>Before saving: what the list would get</h3>
          <DryRunView run={dryRun} />
        </section>
      )}
    </form>
  );
}
