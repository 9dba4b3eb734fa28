import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, ok, signIn, storeToken, storedToken, whenSignedOut, type Schemas } from "./api";
import { navigate, usePath, Link } from "./router";
import { Notice, SessionContext, TextField, useForm, type Scope, type Session } from "./ui";
import { Home } from "./pages/home";
import { ThreatIocs } from "./pages/iocs";
import { Plugins } from "./pages/plugins";
import { BusinessRules } from "./pages/rules";
import { Sharing } from "./pages/sharing";
import { Tags } from "./pages/tags";
import { Tenants } from "./pages/tenants";
import { Users } from "./pages/users";
import { ApiTokens } from "./pages/tokens";
import { ExchangeSettings } from "./pages/settings";
import "./style.css";

// Cloud Exchange's navigation, with its names.
const NAV: { section: string; items: { path: string; label: string; scope?: Scope }[] }[] = [
  { section: "", items: [{ path: "/", label: "Home" }, { path: "/iocs", label: "Threat IoCs" }] },
  {
    section: "Threat Exchange",
    items: [
      { path: "/plugins", label: "Plugins" },
      { path: "/rules", label: "Business Rules" },
      { path: "/sharing", label: "Sharing" },
      { path: "/tags", label: "Tags" },
    ],
  },
  {
    section: "Settings",
    items: [
      { path: "/settings/tenants", label: "Netskope Tenants", scope: "settings_read" },
      { path: "/settings/users", label: "Users", scope: "settings_read" },
      { path: "/settings/tokens", label: "API Tokens", scope: "api" },
      { path: "/settings/exchange", label: "Threat Exchange", scope: "settings_read" },
    ],
  },
];

const PAGES: Record<string, () => preact.JSX.Element> = {
  "/": Home,
  "/iocs": ThreatIocs,
  "/plugins": Plugins,
  "/rules": BusinessRules,
  "/sharing": Sharing,
  "/tags": Tags,
  "/settings/tenants": Tenants,
  "/settings/users": Users,
  "/settings/tokens": ApiTokens,
  "/settings/exchange": ExchangeSettings,
};

function App() {
  const [me, setMe] = useState<Schemas["User"] | null>(null);
  const [mustChange, setMustChange] = useState(false);
  const [checking, setChecking] = useState(!!storedToken());
  const signOut = () => {
    storeToken(null);
    setMe(null);
    setMustChange(false);
  };
  whenSignedOut(signOut);

  const loadMe = async () => {
    try {
      const user = await ok(api.GET("/api/users/me"));
      setMe(user);
      setMustChange(user.firstLogin);
    } catch {
      signOut();
    } finally {
      setChecking(false);
    }
  };
  useEffect(() => {
    if (storedToken()) void loadMe();
  }, []);

  if (checking) return <p class="loading">Loading…</p>;
  if (!me) return <SignIn onSignedIn={(mustChangeNow) => { setMustChange(mustChangeNow); void loadMe(); }} />;
  if (mustChange) return <ChangePassword username={me.username} onChanged={() => void loadMe()} onCancel={signOut} />;
  const session: Session = {
    username: me.username,
    role: me.role,
    scopes: me.scopes,
    can: (scope) => me.scopes.includes(scope),
    signOut,
  };
  return (
    <SessionContext.Provider value={session}>
      <Shell />
    </SessionContext.Provider>
  );
}

function Shell() {
  const path = usePath();
  const Current = PAGES[path] ?? NotFound;
  return (
    <SessionContext.Consumer>
      {(session) => (
        <div class="shell">
          <a class="skip" href="#main">
            Skip to content
          </a>
          <header class="topbar">
            <span class="brand">Threat Exchange</span>
            <span class="who">
              {session!.username} <span class="role">({session!.role})</span>
              <button type="button" onClick={session!.signOut}>
                Sign out
              </button>
            </span>
          </header>
          <nav class="sidebar" aria-label="Main">
            {NAV.map((group) => (
              <div key={group.section} class="nav-group">
                {group.section && <h2>{group.section}</h2>}
                <ul>
                  {group.items
                    .filter((item) => !item.scope || session!.can(item.scope))
                    .map((item) => (
                      <li key={item.path}>
                        <Link href={item.path} current={path === item.path}>
                          {item.label}
                        </Link>
                      </li>
                    ))}
                </ul>
              </div>
            ))}
            <div class="nav-group">
              <h2>Help</h2>
              <ul>
                <li>
                  <a href="/api/docs" target="_blank" rel="noopener">
                    API Docs
                  </a>
                </li>
              </ul>
            </div>
          </nav>
          <main id="main">
            <Current key={path} />
          </main>
        </div>
      )}
    </SessionContext.Consumer>
  );
}

function NotFound() {
  return (
    <section class="page">
      <h1>Not found</h1>
      <p>
        No page here. <Link href="/">Home</Link>
      </p>
    </section>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (mustChange: boolean) => void }) {
  const form = useForm({ username: "", password: "" });
  const submit = (e: Event) => {
    e.preventDefault();
    void form.submit(async () => {
      const token = await signIn(form.values.username, form.values.password);
      storeToken(token.access_token);
      onSignedIn(token.firstLogin || token.passwordPolicyViolation);
    });
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to Threat Exchange</h1>
        <Notice message={form.message} />
        <TextField label="Username" value={form.values.username} onInput={(v) => form.set("username", v)} error={form.errors.username} autoComplete="username" required />
        <TextField label="Password" type="password" value={form.values.password} onInput={(v) => form.set("password", v)} error={form.errors.password} autoComplete="current-password" required />
        <button type="submit" class="primary" disabled={form.busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function ChangePassword({ username, onChanged, onCancel }: { username: string; onChanged: () => void; onCancel: () => void }) {
  const form = useForm({ currentPassword: "", newPassword: "", confirm: "" });
  const submit = (e: Event) => {
    e.preventDefault();
    if (form.values.newPassword !== form.values.confirm) {
      form.setErrors({ confirm: "The two new passwords differ." });
      return;
    }
    void form.submit(async () => {
      await ok(api.POST("/api/users/me/password", { body: { currentPassword: form.values.currentPassword, newPassword: form.values.newPassword } }));
      // Sign in again with the new password: a fresh token, issued after the change.
      const token = await signIn(username, form.values.newPassword);
      storeToken(token.access_token);
      onChanged();
    });
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-labelledby="change-title">
        <h1 id="change-title">Change your password</h1>
        <p>This is your first sign-in (or your password no longer meets the policy): choose a new password.</p>
        <Notice message={form.message} />
        <TextField label="Current password" type="password" value={form.values.currentPassword} onInput={(v) => form.set("currentPassword", v)} error={form.errors.currentPassword} autoComplete="current-password" required />
        <TextField label="New password" type="password" value={form.values.newPassword} onInput={(v) => form.set("newPassword", v)} error={form.errors.newPassword ?? form.errors.password} autoComplete="new-password" required />
        <TextField label="Confirm new password" type="password" value={form.values.confirm} onInput={(v) => form.set("confirm", v)} error={form.errors.confirm} autoComplete="new-password" required />
        <button type="submit" class="primary" disabled={form.busy}>
          Change password
        </button>{" "}
        <button type="button" onClick={onCancel}>
          Sign out
        </button>
      </form>
    </main>
  );
}

render(<App />, document.getElementById("app")!);
export { navigate };
