// Settings > API Tokens: create (description, expiry), the Client Secret shown once, revoke.
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api";
import { DangerButton, Modal, Notice, Page, SelectField, TextField, formatDate, useForm, useLoad, useRowAction } from "../ui";

const EXPIRY: [string, string][] = [
  ["-1", "Never"],
  ["1440", "1 day"],
  ["10080", "7 days"],
  ["43200", "30 days"],
  ["129600", "90 days"],
  ["525600", "365 days"],
];

export function ApiTokens() {
  const list = useLoad(() => ok(api.GET("/api/users/tokens")));
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<Schemas["NewToken"] | null>(null);
  const row = useRowAction(list.reload);
  const revoke = (clientId: string) =>
    row.run(`Revoke the token ${clientId}?`, () => ok(api.DELETE("/api/users/tokens", { body: { client_id: clientId } })));
  return (
    <Page
      title="API Tokens"
      actions={
        <button type="button" class="primary" onClick={() => { setCreated(null); setCreating(true); }}>
          Create New Token
        </button>
      }
    >
      <Notice message={list.error ?? row.message} />
      <table>
        <caption>Your API tokens (their secrets are never shown again)</caption>
        <thead>
          <tr>
            <th scope="col">Client ID</th>
            <th scope="col">Description</th>
            <th scope="col">Scopes</th>
            <th scope="col">Created</th>
            <th scope="col">Expires</th>
            <th scope="col">Last used</th>
            <th scope="col">State</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((t) => (
            <tr key={t.client_id}>
              <td><code>{t.client_id}</code></td>
              <td>{t.description}</td>
              <td>{t.scopes.join(", ")}</td>
              <td>{formatDate(t.createdAt)}</td>
              <td>{t.expiresAt ? formatDate(t.expiresAt) : "never"}</td>
              <td>{formatDate(t.lastUsedAt)}</td>
              <td>{t.revoked ? "revoked" : "active"}</td>
              <td>
                {!t.revoked && (
                  <DangerButton label={`Revoke ${t.description || t.client_id}`} onClick={() => void revoke(t.client_id)} />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {creating && (
        <Modal title={created ? "Token created" : "Create New Token"} onClose={() => { setCreating(false); setCreated(null); }}>
          {created ? <Created token={created} /> : <TokenForm onCreated={(t) => { setCreated(t); void list.reload(); }} />}
        </Modal>
      )}
    </Page>
  );
}

function TokenForm({ onCreated }: { onCreated: (t: Schemas["NewToken"]) => void }) {
  const form = useForm({ description: "", expireAfter: "-1" });
  const submit = (e: Event) => {
    e.preventDefault();
    void form.submit(async () => {
      const token = await ok(
        api.POST("/api/users/tokens", { body: { description: form.values.description, expireAfter: Number(form.values.expireAfter) } }),
      );
      onCreated(token);
    });
  };
  return (
    <form onSubmit={submit}>
      <Notice message={form.message} />
      <TextField label="Description" value={form.values.description} onInput={(v) => form.set("description", v)} error={form.errors.description} />
      <SelectField label="Expires after" value={form.values.expireAfter} options={EXPIRY} onChange={(v) => form.set("expireAfter", v)} error={form.errors.expireAfter} />
      <div class="form-actions">
        <button type="submit" class="primary" disabled={form.busy}>
          Create
        </button>
      </div>
    </form>
  );
}

function Created({ token }: { token: Schemas["NewToken"] }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(token.client_secret);
      setCopied(true);
    } catch {
      // No clipboard (an insecure origin): the secret stays selectable.
      (document.getElementById("client-secret") as HTMLInputElement | null)?.select();
    }
  };
  return (
    <div class="created-token">
      <p class="notice info" role="status">
        Copy the Client Secret now: it is shown only once.
      </p>
      <TextField label="Client ID" value={token.client_id} onInput={() => undefined} />
      <div class="field">
        <label for="client-secret">Client Secret</label>
        <div class="with-button">
          <input id="client-secret" readOnly value={token.client_secret} onFocus={(e) => (e.target as HTMLInputElement).select()} />
          <button type="button" onClick={() => void copy()}>
            {copied ? "Copied" : "Copy"}
          </button>
        </div>
      </div>
      <p>Expires: {token.expiresAt ? formatDate(token.expiresAt) : "never"}</p>
    </div>
  );
}
