// Threat Exchange > Plugins: the configurations of the API Source and of the Netskope plugin.
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api";
import { CheckField, DangerButton, Modal, Notice, Page, SelectField, TextField, formatDate, useForm, useLoad, useRowAction, useSession } from "../ui";

const PLUGIN_NAMES: Record<string, string> = { api_source: "API Source", netskope: "Netskope" };

export function Plugins() {
  const session = useSession();
  const list = useLoad(() => ok(api.GET("/api/cte/configurations")));
  const [adding, setAdding] = useState<"api_source" | "netskope" | null>(null);
  const row = useRowAction(list.reload);
  const remove = (name: string) =>
    row.run(`Delete the configuration ${name}? Its indicators are deleted too.`, () =>
      ok(api.DELETE("/api/cte/configurations/{name}", { params: { path: { name } } })),
    );
  const writer = session.can("cte_write");
  return (
    <Page
      title="Plugins"
      actions={
        writer && (
          <>
            <button type="button" class="primary" onClick={() => setAdding("api_source")}>
              Add API Source
            </button>
            <button type="button" class="primary" onClick={() => setAdding("netskope")}>
              Add Netskope
            </button>
          </>
        )
      }
    >
      <Notice message={list.error ?? row.message} />
      <table>
        <caption>Plugin configurations</caption>
        <thead>
          <tr>
            <th scope="col">Configuration Name</th>
            <th scope="col">Plugin</th>
            <th scope="col">Active</th>
            <th scope="col">Aging (days)</th>
            <th scope="col">Reputation</th>
            <th scope="col">Tenant</th>
            <th scope="col">Updated</th>
            {writer && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((c) => (
            <tr key={c.name}>
              <td>{c.name}</td>
              <td>{PLUGIN_NAMES[c.plugin] ?? c.plugin}</td>
              <td>{c.active ? "yes" : "no"}</td>
              <td>{c.ageAfterDays}</td>
              <td>{c.reputation || "not overridden"}</td>
              <td>{c.tenant ?? "—"}</td>
              <td>{formatDate(c.updatedAt)}</td>
              {writer && (
                <td>
                  <DangerButton label={`Delete ${c.name}`} onClick={() => void remove(c.name)} />
                </td>
              )}
            </tr>
          ))}
          {list.data?.length === 0 && (
            <tr>
              <td colSpan={8}>No plugin configured yet.</td>
            </tr>
          )}
        </tbody>
      </table>
      {adding && (
        <Modal title={adding === "api_source" ? "Add API Source" : "Add Netskope"} onClose={() => setAdding(null)}>
          <ConfigurationForm plugin={adding} onSaved={() => { setAdding(null); void list.reload(); }} />
        </Modal>
      )}
    </Page>
  );
}

function ConfigurationForm({ plugin, onSaved }: { plugin: "api_source" | "netskope"; onSaved: () => void }) {
  const tenants = useLoad(() => (plugin === "netskope" ? ok(api.GET("/api/tenants")) : Promise.resolve([] as Schemas["Tenant"][])));
  const [step, setStep] = useState(1);
  const form = useForm({
    name: "",
    ageAfterDays: "90",
    reputation: "0",
    sslValidation: true,
    useProxy: false,
    tenant: "",
    enablePolling: false,
    threatDataTypes: "Both",
  });
  const v = form.values;
  const save = (e: Event) => {
    e.preventDefault();
    if (plugin === "netskope" && step === 1) {
      setStep(2);
      return;
    }
    void form.submit(async () => {
      const body: Schemas["ConfigurationIn"] = {
        name: v.name,
        plugin,
        ageAfterDays: Number(v.ageAfterDays),
        reputation: Number(v.reputation),
        sslValidation: v.sslValidation,
        useProxy: v.useProxy,
      };
      if (plugin === "netskope") {
        body.tenant = v.tenant || null;
        body.parameters = { enablePolling: v.enablePolling, threatDataTypes: v.threatDataTypes };
      }
      await ok(api.POST("/api/cte/configurations", { body }));
      onSaved();
    });
  };
  // A message about a field of the first step shows that step again (its values are kept).
  const basicError = ["name", "ageAfterDays", "reputation", "sslValidation", "useProxy", "tenant"].some((k) => form.errors[k]);
  const showBasic = plugin === "api_source" || step === 1 || basicError;
  return (
    <form onSubmit={save}>
      {plugin === "netskope" && (
        <ol class="steps" aria-label="Steps">
          <li aria-current={showBasic ? "step" : undefined}>Basic Information</li>
          <li aria-current={!showBasic ? "step" : undefined}>Configuration Parameters</li>
        </ol>
      )}
      <Notice message={form.message} />
      {showBasic ? (
        <>
          <TextField label="Configuration Name" value={v.name} onInput={(x) => form.set("name", x)} error={form.errors.name} required />
          {plugin === "netskope" && (
            <SelectField
              label="Tenant"
              value={v.tenant}
              options={[["", "Choose a tenant"], ...(tenants.data ?? []).map((t) => [t.name, `${t.name} (${t.tenantName})`] as [string, string])]}
              onChange={(x) => form.set("tenant", x)}
              error={form.errors.tenant}
            />
          )}
          <TextField label="Aging Criteria (days)" type="number" value={v.ageAfterDays} onInput={(x) => form.set("ageAfterDays", x)} error={form.errors.ageAfterDays} hint="Indicators expire this many days after they were last received (0: never)." />
          <TextField label="Override Reputation" type="number" value={v.reputation} onInput={(x) => form.set("reputation", x)} error={form.errors.reputation} hint="1 to 10; 0 keeps the reputation each indicator arrives with." />
          <CheckField label="Enable SSL Verification" checked={v.sslValidation} onChange={(x) => form.set("sslValidation", x)} error={form.errors.sslValidation} />
          <CheckField label="Use System Proxy" checked={v.useProxy} onChange={(x) => form.set("useProxy", x)} error={form.errors.useProxy} />
        </>
      ) : (
        <>
          <CheckField label="Enable Polling" checked={v.enablePolling} onChange={(x) => form.set("enablePolling", x)} error={form.errors.enablePolling} />
          <SelectField label="Type of Threat Data" value={v.threatDataTypes} options={["Malware", "URL", "Both"]} onChange={(x) => form.set("threatDataTypes", x)} error={form.errors.threatDataTypes} />
        </>
      )}
      <div class="form-actions">
        {plugin === "netskope" && !showBasic && (
          <button type="button" onClick={() => setStep(1)}>
            Back
          </button>
        )}
        <button type="submit" class="primary" disabled={form.busy}>
          {plugin === "netskope" && showBasic && !basicError ? "Next" : "Save"}
        </button>
      </div>
    </form>
  );
}
