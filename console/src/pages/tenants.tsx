// Settings > Netskope Tenants. The tokens are write-only: the API answers only whether each is set.
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api";
import { CheckField, DangerButton, Modal, Notice, Page, TextField, formatDate, useForm, useLoad, useRowAction, useSession } from "../ui";

export function Tenants() {
  const session = useSession();
  const list = useLoad(() => ok(api.GET("/api/tenants")));
  const [editing, setEditing] = useState<Schemas["Tenant"] | "new" | null>(null);
  const writer = session.can("settings_write");
  const row = useRowAction(list.reload);
  const remove = (name: string) =>
    row.run(`Delete the tenant ${name}?`, () => ok(api.DELETE("/api/tenants/{name}", { params: { path: { name } } })));
  return (
    <Page
      title="Netskope Tenants"
      actions={writer && (
        <button type="button" class="primary" onClick={() => setEditing("new")}>
          Add Tenant
        </button>
      )}
    >
      <Notice message={list.error ?? row.message} />
      <table>
        <caption>Netskope tenants</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Tenant</th>
            <th scope="col">V1 token</th>
            <th scope="col">V2 token</th>
            <th scope="col">Initial range (days)</th>
            <th scope="col">System proxy</th>
            <th scope="col">Updated</th>
            {writer && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((t) => (
            <tr key={t.name}>
              <td>{t.name}</td>
              <td>{t.url}</td>
              <td>{t.hasV1Token ? "set" : "not set"}</td>
              <td>{t.hasV2Token ? "set" : "not set"}</td>
              <td>{t.initialRangeDays}</td>
              <td>{t.useSystemProxy ? "yes" : "no"}</td>
              <td>{formatDate(t.updatedAt)}</td>
              {writer && (
                <td>
                  <button type="button" class="link" onClick={() => setEditing(t)}>
                    Edit {t.name}
                  </button>{" "}
                  <DangerButton label={`Delete ${t.name}`} onClick={() => void remove(t.name)} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {editing && (
        <Modal title={editing === "new" ? "Add Tenant" : `Edit ${editing.name}`} onClose={() => setEditing(null)}>
          <TenantForm tenant={editing === "new" ? null : editing} onSaved={() => { setEditing(null); void list.reload(); }} />
        </Modal>
      )}
    </Page>
  );
}

function TenantForm({ tenant, onSaved }: { tenant: Schemas["Tenant"] | null; onSaved: () => void }) {
  const form = useForm({
    name: tenant?.name ?? "",
    tenantName: tenant?.tenantName ?? "",
    v1Token: "",
    v2Token: "",
    initialRangeDays: String(tenant?.initialRangeDays ?? 7),
    useSystemProxy: tenant?.useSystemProxy ?? false,
  });
  const v = form.values;
  const submit = (e: Event) => {
    e.preventDefault();
    void form.submit(async () => {
      // A token left empty is not sent: the stored one stays.
      const tokens = { ...(v.v1Token ? { v1Token: v.v1Token } : {}), ...(v.v2Token ? { v2Token: v.v2Token } : {}) };
      const common = { tenantName: v.tenantName, initialRangeDays: Number(v.initialRangeDays), useSystemProxy: v.useSystemProxy, ...tokens };
      if (tenant) await ok(api.PATCH("/api/tenants/{name}", { params: { path: { name: tenant.name } }, body: common }));
      else await ok(api.POST("/api/tenants", { body: { name: v.name, ...common } }));
      onSaved();
    });
  };
  return (
    <form onSubmit={submit}>
      <Notice message={form.message} />
      {!tenant && <TextField label="Tenant Name" value={v.name} onInput={(x) => form.set("name", x)} error={form.errors.name} required />}
      <TextField label="Tenant URL" value={v.tenantName} onInput={(x) => form.set("tenantName", x)} error={form.errors.tenantName} hint="e.g. https://example.goskope.com" required />
      <TextField label="V1 API Token" type="password" value={v.v1Token} onInput={(x) => form.set("v1Token", x)} error={form.errors.v1Token} autoComplete="off" hint={tenant?.hasV1Token ? "Set; leave empty to keep it." : undefined} />
      <TextField label="V2 API Token" type="password" value={v.v2Token} onInput={(x) => form.set("v2Token", x)} error={form.errors.v2Token} autoComplete="off" hint={tenant?.hasV2Token ? "Set; leave empty to keep it." : undefined} />
      <TextField label="Initial Range (days)" type="number" value={v.initialRangeDays} onInput={(x) => form.set("initialRangeDays", x)} error={form.errors.initialRangeDays} />
      <CheckField label="Use System Proxy" checked={v.useSystemProxy} onChange={(x) => form.set("useSystemProxy", x)} error={form.errors.useSystemProxy} />
      <div class="form-actions">
        <button type="submit" class="primary" disabled={form.busy}>
          Save
        </button>
      </div>
    </form>
  );
}
