// Threat Exchange > Tags.
import { api, ok } from "../api";
import { DangerButton, Notice, Page, TextField, formatDate, useForm, useLoad, useRowAction, useSession } from "../ui";

export function Tags() {
  const session = useSession();
  const writer = session.can("cte_write");
  const list = useLoad(() => ok(api.GET("/api/cte/tags")));
  const form = useForm({ name: "", color: "#6c8ebf" });
  const add = (e: Event) => {
    e.preventDefault();
    void form.submit(async () => {
      await ok(api.POST("/api/cte/tags", { body: { name: form.values.name, color: form.values.color } }));
      form.set("name", "");
      void list.reload();
    });
  };
  const row = useRowAction(list.reload);
  const remove = (name: string) =>
    row.run(`Delete the tag ${name}? It leaves every indicator.`, () => ok(api.DELETE("/api/cte/tags", { body: { name } })));
  return (
    <Page title="Tags">
      {writer && (
        <form class="inline-form" onSubmit={add} aria-label="Create a tag">
          <Notice message={form.message} />
          <TextField label="Tag name" value={form.values.name} onInput={(v) => form.set("name", v)} error={form.errors.name} required />
          <TextField label="Color" type="color" value={form.values.color} onInput={(v) => form.set("color", v)} error={form.errors.color} />
          <button type="submit" class="primary" disabled={form.busy}>
            Create tag
          </button>
        </form>
      )}
      <Notice message={list.error ?? row.message} />
      <table>
        <caption>Tags</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Color</th>
            <th scope="col">Created</th>
            {writer && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((t) => (
            <tr key={t.name}>
              <td>
                <span class="tag" style={{ borderColor: t.color }}>{t.name}</span>
              </td>
              <td>{t.color}</td>
              <td>{formatDate(t.appliedOn)}</td>
              {writer && (
                <td>
                  <DangerButton label={`Delete ${t.name}`} onClick={() => void remove(t.name)} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </Page>
  );
}
