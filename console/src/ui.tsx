// Shared pieces of every page: the session (who is signed in, what the role may do), forms that keep
// what was typed and show the API's messages next to the fields they name, loading with errors shown.
import type { ComponentChildren, JSX } from "preact";
import { createContext } from "preact";
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api";

export type Scope = "cte_read" | "cte_write" | "settings_read" | "settings_write" | "me" | "api";

export interface Session {
  username: string;
  role: string;
  scopes: string[];
  can: (scope: Scope) => boolean;
  signOut: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("no session");
  return session;
}

/** A form's values, the API's messages by field, and the message that names no field. Values are kept
 * as typed whatever the answer, so nothing is lost on an error. */
export function useForm<T extends Record<string, unknown>>(initial: T) {
  const [values, setValues] = useState<T>(initial);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof T>(key: K, value: T[K]) => setValues((v) => ({ ...v, [key]: value }));
  const submit = async (action: () => Promise<void>): Promise<boolean> => {
    setBusy(true);
    setErrors({});
    setMessage(null);
    try {
      await action();
      return true;
    } catch (err) {
      if (err instanceof ApiError) {
        const byField = err.fieldErrors();
        const general = byField[""];
        delete byField[""];
        setErrors(byField);
        // Fields this form does not show still get their message, at the top.
        const unshown = Object.entries(byField)
          .filter(([k]) => !(k in values))
          .map(([k, m]) => `${k}: ${m}`);
        const text = [general, ...unshown].filter(Boolean).join("; ");
        setMessage(Object.keys(byField).length ? text || null : err.message);
      } else {
        setMessage(String(err));
      }
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { values, set, setValues, errors, setErrors, message, setMessage, busy, submit };
}

let nextId = 0;
function useId(prefix: string): string {
  const [id] = useState(() => `${prefix}-${++nextId}`);
  return id;
}

interface FieldProps {
  label: string;
  error?: string;
  hint?: string;
  children: (id: string, described: string | undefined) => JSX.Element;
}

export function Field({ label, error, hint, children }: FieldProps) {
  const id = useId("f");
  const describedBy = error ? `${id}-error` : hint ? `${id}-hint` : undefined;
  return (
    <div class={`field${error ? " invalid" : ""}`}>
      <label for={id}>{label}</label>
      {children(id, describedBy)}
      {hint && !error && (
        <small id={`${id}-hint`} class="hint">
          {hint}
        </small>
      )}
      {error && (
        <small id={`${id}-error`} class="field-error" role="alert">
          {error}
        </small>
      )}
    </div>
  );
}

export function TextField(props: {
  label: string;
  value: string;
  onInput: (v: string) => void;
  error?: string;
  hint?: string;
  type?: "text" | "password" | "number" | "color" | "datetime-local";
  required?: boolean;
  autoComplete?: string;
  placeholder?: string;
}) {
  return (
    <Field label={props.label} error={props.error} hint={props.hint}>
      {(id, described) => (
        <input
          id={id}
          {...({ type: props.type ?? "text" } as Record<string, string>)}
          value={props.value}
          required={props.required}
          autoComplete={props.autoComplete}
          placeholder={props.placeholder}
          aria-invalid={props.error ? true : undefined}
          aria-describedby={described}
          onInput={(e) => props.onInput((e.target as HTMLInputElement).value)}
        />
      )}
    </Field>
  );
}

export function SelectField(props: {
  label: string;
  value: string;
  options: (string | [string, string])[];
  onChange: (v: string) => void;
  error?: string;
  hint?: string;
}) {
  return (
    <Field label={props.label} error={props.error} hint={props.hint}>
      {(id, described) => (
        <select
          id={id}
          value={props.value}
          aria-invalid={props.error ? true : undefined}
          aria-describedby={described}
          onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}
        >
          {props.options.map((o) => {
            const [value, text] = Array.isArray(o) ? o : [o, o];
            return (
              <option key={value} value={value}>
                {text}
              </option>
            );
          })}
        </select>
      )}
    </Field>
  );
}

export function CheckField(props: { label: string; checked: boolean; onChange: (v: boolean) => void; error?: string }) {
  const id = useId("c");
  return (
    <div class={`field check${props.error ? " invalid" : ""}`}>
      <input
        id={id}
        type="checkbox"
        checked={props.checked}
        aria-describedby={props.error ? `${id}-error` : undefined}
        onChange={(e) => props.onChange((e.target as HTMLInputElement).checked)}
      />
      <label for={id}>{props.label}</label>
      {props.error && (
        <small id={`${id}-error`} class="field-error" role="alert">
          {props.error}
        </small>
      )}
    </div>
  );
}

export function Notice({ message, kind = "error" }: { message: string | null | undefined; kind?: "error" | "info" }) {
  if (!message) return null;
  return (
    <p class={`notice ${kind}`} role={kind === "error" ? "alert" : "status"}>
      {message}
    </p>
  );
}

/** Data from the API, its error, and a reload. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const reload = useCallback(async () => {
    setLoading(true);
    try {
      setData(await load());
      setError(null);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setLoading(false);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { data, error, loading, reload, setData };
}

export function Page({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  useEffect(() => {
    document.title = `${title} · Threat Exchange`;
  }, [title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-header">
        <h1 id="page-title" tabIndex={-1}>
          {title}
        </h1>
        <div class="page-actions">{actions}</div>
      </header>
      {children}
    </section>
  );
}

export function formatDate(value: string | null | undefined): string {
  if (!value) return "—";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

const FOCUSABLE = "input, select, textarea, button, a[href]";

/** A dialog: focus moves into it (its first field) and back where it was on close; Escape closes it;
 * Tab stays inside. */
export function Modal({ title, onClose, children }: { title: string; onClose: () => void; children: ComponentChildren }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const first = box.current?.querySelector<HTMLElement>(FOCUSABLE.split(", ").map((f) => `form ${f}`).join(", ")) ?? box.current?.querySelector<HTMLElement>(FOCUSABLE);
    first?.focus();
    return () => before?.focus();
  }, []);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
      if (e.key !== "Tab" || !box.current) return;
      const all = [...box.current.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => !el.hasAttribute("disabled"));
      if (!all.length) return;
      const [head, tail] = [all[0], all[all.length - 1]];
      if (e.shiftKey && document.activeElement === head) {
        e.preventDefault();
        tail.focus();
      } else if (!e.shiftKey && document.activeElement === tail) {
        e.preventDefault();
        head.focus();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);
  return (
    <div class="modal-backdrop">
      <div class="modal" role="dialog" aria-modal="true" aria-label={title} ref={box}>
        <header>
          <h2>{title}</h2>
          <button type="button" class="link" onClick={onClose} aria-label="Close">
            ×
          </button>
        </header>
        {children}
      </div>
    </div>
  );
}

/** An action from a list's row (delete, revoke): asked first, then the list reloaded; a refusal (403
 * included) is kept in `message` for the page to show. */
export function useRowAction(reload: () => Promise<void>) {
  const [message, setMessage] = useState<string | null>(null);
  const run = async (question: string, action: () => Promise<unknown>) => {
    if (!confirm(question)) return;
    try {
      await action();
      setMessage(null);
      await reload();
    } catch (err) {
      setMessage(err instanceof Error ? err.message : String(err));
    }
  };
  return { message, run };
}

export function DangerButton({ label, onClick }: { label: string; onClick: () => void }) {
  return (
    <button type="button" class="link danger" onClick={onClick}>
      {label}
    </button>
  );
}
