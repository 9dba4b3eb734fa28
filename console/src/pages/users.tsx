// Settings > Users: users and their roles (the roles' scopes shown beside).
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api";
import { CheckField, DangerButton, Modal, Notice, Page, SelectField, TextField, formatDate, useForm, useLoad, useRowAction, useSession } from "../ui";

export function Users() {
  const session = useSession();
  const writer = session.can("settings_write");
  const users = useLoad(() => ok(api.GET("/api/users")));
  const roles = useLoad(() => ok(api.GET("/api/roles")));
  const [editing, setEditing] = useState<Schemas["User"] | "new" | null>(null);
  const [addingRole, setAddingRole] = useState(false);
  const roleRow = useRowAction(roles.reload);
  const removeRole = (name: string) =>
    roleRow.run(`Delete the role ${name}?`, () => ok(api.DELETE("/api/roles/{name}", { params: { path: { name } } })));
  const row = useRowAction(users.reload);
  const remove = (name: string) =>
    row.run(`Delete the user ${name}? The user's API tokens are revoked.`, () =>
      ok(api.DELETE("/api/users/{name}", { params: { path: { name } } })),
    );
  return (
    <Page title="Users" actions={writer && <button type="button" class="primary" onClick={() => setEditing("new")}>Add User</button>}>
      <Notice message={users.error ?? roles.error ?? row.message} />
      <table>
        <caption>Users</caption>
        <thead>
          <tr>
            <th scope="col">Username</th>
            <th scope="col">Role</th>
            <th scope="col">State</th>
            <th scope="col">Must change password</th>
            <th scope="col">Last sign-in</th>
            {writer && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {(users.data ?? []).map((u) => (
            <tr key={u.username}>
              <td>{u.username}</td>
              <td>{u.role}</td>
              <td>{u.active ? "active" : "disabled"}</td>
              <td>{u.firstLogin ? "yes" : "no"}</td>
              <td>{formatDate(u.lastLoginAt)}</td>
              {writer && (
                <td>
                  <button type="button" class="link" onClick={() => setEditing(u)}>Edit {u.username}</button>{" "}
                  {u.username !== session.username && (
                    <DangerButton label={`Delete ${u.username}`} onClick={() => void remove(u.username)} />
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      <div class="toolbar">
        <h2>Roles</h2>
        {writer && (
          <button type="button" onClick={() => setAddingRole(true)}>
            Add Role
          </button>
        )}
      </div>
      <Notice message={roleRow.message} />
      <table>
        <caption>Roles: named sets of scopes</caption>
        <thead>
          <tr>
            <th scope="col">Role</th>
            <th scope="col">Scopes</th>
            <th scope="col">Users</th>
            {writer && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {(roles.data ?? []).map((r) => (
            <tr key={r.name}>
              <td>{r.name}{r.builtin && " (built in)"}</td>
              <td>{r.scopes.join(", ")}</td>
              <td>{r.users}</td>
              {writer && <td>{!r.builtin && r.users === 0 && <DangerButton label={`Delete role ${r.name}`} onClick={() => void removeRole(r.name)} />}</td>}
            </tr>
          ))}
        </tbody>
      </table>
      {addingRole && (
        <Modal title="Add Role" onClose={() => setAddingRole(false)}>
          <RoleForm onSaved={() => { setAddingRole(false); void roles.reload(); }} />
        </Modal>
      )}
      {editing && (
        <Modal title={editing === "new" ? "Add User" : `Edit ${editing.username}`} onClose={() => setEditing(null)}>
          <UserForm user={editing === "new" ? null : editing} roles={(roles.data ?? []).map((r) => r.name)} onSaved={() => { setEditing(null); void users.reload(); }} />
        </Modal>
      )}
    </Page>
  );
}

function UserForm({ user, roles, onSaved }: { user: Schemas["User"] | null; roles: string[]; onSaved: () => void }) {
  const form = useForm({ username: user?.username ?? "", password: "", role: user?.role ?? roles[0] ?? "", active: user?.active ?? true, firstLogin: true });
  const v = form.values;
  const submit = (e: Event) => {
    e.preventDefault();
    void form.submit(async () => {
      if (user)
        await ok(
          api.PATCH("/api/users/{name}", {
            params: { path: { name: user.username } },
            body: { role: v.role, active: v.active, ...(v.password ? { password: v.password, firstLogin: v.firstLogin } : {}) },
          }),
        );
      else await ok(api.POST("/api/users", { body: { username: v.username, password: v.password, role: v.role, firstLogin: v.firstLogin } }));
      onSaved();
    });
  };
  return (
    <form onSubmit={submit}>
      <Notice message={form.message} />
      {!user && <TextField label="Username" value={v.username} onInput={(x) => form.set("username", x)} error={form.errors.username} required />}
      <TextField label={user ? "New password (empty: unchanged)" : "Password"} type="password" value={v.password} onInput={(x) => form.set("password", x)} error={form.errors.password} autoComplete="new-password" />
      <SelectField label="Role" value={v.role} options={roles} onChange={(x) => form.set("role", x)} error={form.errors.role} />
      {user && <CheckField label="Active" checked={v.active} onChange={(x) => form.set("active", x)} error={form.errors.active} />}
      <CheckField label="Must change the password at next sign-in" checked={v.firstLogin} onChange={(x) => form.set("firstLogin", x)} error={form.errors.firstLogin} />
      <div class="form-actions">
        <button type="submit" class="primary" disabled={form.busy}>Save</button>
      </div>
    </form>
  );
}

const SCOPES: [Schemas["RoleIn"]["scopes"][number], string][] = [
  ["cte_read", "Read Threat Exchange (indicators, plugins, rules, sharing, tags)"],
  ["cte_write", "Change Threat Exchange"],
  ["settings_read", "Read settings (tenants, users, roles, audit)"],
  ["settings_write", "Change settings"],
  ["api", "Own API tokens"],
  ["me", "Own profile and password"],
];

function RoleForm({ onSaved }: { onSaved: () => void }) {
  const form = useForm({ name: "", scopes: ["me", "api", "cte_read"] as Schemas["RoleIn"]["scopes"] });
  const toggle = (scope: Schemas["RoleIn"]["scopes"][number], on: boolean) =>
    form.set("scopes", on ? [...form.values.scopes, scope] : form.values.scopes.filter((s) => s !== scope));
  const submit = (e: Event) => {
    e.preventDefault();
    void form.submit(async () => {
      await ok(api.POST("/api/roles", { body: { name: form.values.name, scopes: form.values.scopes } }));
      onSaved();
    });
  };
  return (
    <form onSubmit={submit}>
      <Notice message={form.message} />
      <TextField label="Role name" value={form.values.name} onInput={(x) => form.set("name", x)} error={form.errors.name} required />
      <fieldset>
        <legend>Scopes</legend>
        {SCOPES.map(([scope, text]) => (
          <CheckField key={scope} label={text} checked={form.values.scopes.includes(scope)} onChange={(on) => toggle(scope, on)} />
        ))}
        <Notice message={form.errors.scopes} />
      </fieldset>
      <div class="form-actions">
        <button type="submit" class="primary" disabled={form.busy}>Save</button>
      </div>
    </form>
  );
}
