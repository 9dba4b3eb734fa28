// The filter builder of Threat IoCs and Business Rules: conditions (field, operator, value) in groups
// joined by AND or OR, each group negatable, shown beside the query text it stands for. The text is the
// API's readable query form; the Mongo-style JSON form is what GET /api/cte/indicators/ takes.

type Kind = "text" | "type" | "severity" | "number" | "bool" | "date" | "list";

export const FIELDS: { name: string; kind: Kind; perSource: boolean }[] = [
  { name: "value", kind: "text", perSource: false },
  { name: "type", kind: "type", perSource: false },
  { name: "severity", kind: "severity", perSource: true },
  { name: "reputation", kind: "number", perSource: true },
  { name: "source", kind: "text", perSource: true },
  { name: "tags", kind: "list", perSource: true },
  { name: "firstSeen", kind: "date", perSource: true },
  { name: "lastSeen", kind: "date", perSource: true },
  { name: "comments", kind: "text", perSource: true },
  { name: "active", kind: "bool", perSource: false },
  { name: "test", kind: "bool", perSource: false },
  { name: "safe", kind: "bool", perSource: false },
  { name: "sharedWith", kind: "list", perSource: false },
  { name: "expiresAt", kind: "date", perSource: false },
  { name: "internalHits", kind: "number", perSource: false },
  { name: "externalHits", kind: "number", perSource: false },
  { name: "retracted", kind: "bool", perSource: true },
];

const OPS: Record<Kind, string[]> = {
  text: ["=", "!=", "Like", "IN", "NOT IN"],
  type: ["=", "!=", "IN", "NOT IN"],
  severity: ["=", "!=", "IN", "NOT IN"],
  number: ["=", "!=", ">", ">=", "<", "<="],
  bool: ["=", "!="],
  date: [">=", ">", "<=", "<", "=", "!="],
  list: ["IN", "NOT IN"],
};

const MONGO_OPS: Record<string, string> = {
  "!=": "$ne",
  ">": "$gt",
  ">=": "$gte",
  "<": "$lt",
  "<=": "$lte",
  IN: "$in",
  "NOT IN": "$nin",
  Like: "$regex",
};

export interface Condition {
  kind: "condition";
  field: string;
  op: string;
  value: string;
}

export interface Group {
  kind: "group";
  join: "AND" | "OR";
  not: boolean;
  items: (Condition | Group)[];
}

export function emptyGroup(): Group {
  return { kind: "group", join: "AND", not: false, items: [] };
}

export function condition(field = "value", op = "=", value = ""): Condition {
  return { kind: "condition", field, op, value };
}

function fieldOf(name: string) {
  return FIELDS.find((f) => f.name === name) ?? FIELDS[0];
}

function operand(c: Condition): unknown {
  const { kind } = fieldOf(c.field);
  if (c.op === "IN" || c.op === "NOT IN")
    return c.value
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  if (kind === "number") return Number(c.value);
  if (kind === "bool") return c.value.trim().toLowerCase() === "true";
  return c.value;
}

function textOperand(value: unknown): string {
  if (Array.isArray(value)) return `(${value.map((v) => JSON.stringify(v)).join(", ")})`;
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

export function toText(node: Condition | Group, nested = false): string {
  if (node.kind === "condition") {
    const f = fieldOf(node.field);
    return `${f.perSource ? "sources." : ""}${f.name} ${node.op} ${textOperand(operand(node))}`;
  }
  const parts = node.items.map((i) => toText(i, true)).filter(Boolean);
  if (!parts.length) return "";
  let text = parts.join(node.join === "AND" ? " && " : " || ");
  if (node.not) return `NOT (${text})`;
  if (nested && parts.length > 1) text = `(${text})`;
  return text;
}

export function toMongo(node: Condition | Group): Record<string, unknown> {
  if (node.kind === "condition") {
    const f = fieldOf(node.field);
    const value = operand(node);
    const expr = node.op === "=" ? value : { [MONGO_OPS[node.op]]: value };
    return f.perSource ? { sources: { $elemMatch: { [f.name]: expr } } } : { [f.name]: expr };
  }
  const parts = node.items.map(toMongo).filter((p) => Object.keys(p).length);
  if (!parts.length) return {};
  const joined = parts.length === 1 ? parts[0] : { [node.join === "AND" ? "$and" : "$or"]: parts };
  return node.not ? { $nor: [joined] } : joined;
}

function replace(group: Group, index: number, item: Condition | Group | null): Group {
  const items = [...group.items];
  if (item === null) items.splice(index, 1);
  else items[index] = item;
  return { ...group, items };
}

/** One group of the builder (groups nest). Every control is labelled for keyboard and screen readers. */
export function GroupEditor({ group, onChange, depth = 0, label = "Filter" }: { group: Group; onChange: (g: Group) => void; depth?: number; label?: string }) {
  return (
    <fieldset class={`filter-group depth-${depth}`}>
      <legend>{depth === 0 ? label : "Group"}</legend>
      <div class="filter-group-head">
        <label>
          Join with{" "}
          <select value={group.join} onChange={(e) => onChange({ ...group, join: (e.target as HTMLSelectElement).value as Group["join"] })}>
            <option value="AND">AND</option>
            <option value="OR">OR</option>
          </select>
        </label>
        <label>
          <input type="checkbox" checked={group.not} onChange={(e) => onChange({ ...group, not: (e.target as HTMLInputElement).checked })} /> NOT
        </label>
      </div>
      {group.items.map((item, i) =>
        item.kind === "group" ? (
          <div class="filter-nested" key={i}>
            <GroupEditor group={item} depth={depth + 1} onChange={(g) => onChange(replace(group, i, g))} />
            <button type="button" class="link" onClick={() => onChange(replace(group, i, null))}>
              Remove group
            </button>
          </div>
        ) : (
          <ConditionEditor key={i} index={i} c={item} onChange={(c) => onChange(replace(group, i, c))} />
        ),
      )}
      <div class="filter-add">
        <button type="button" onClick={() => onChange({ ...group, items: [...group.items, condition()] })}>
          Add condition
        </button>
        {depth < 2 && (
          <button type="button" onClick={() => onChange({ ...group, items: [...group.items, { ...emptyGroup(), items: [condition()] }] })}>
            Add group
          </button>
        )}
      </div>
    </fieldset>
  );
}

function ConditionEditor({ c, index, onChange }: { c: Condition; index: number; onChange: (c: Condition | null) => void }) {
  const f = fieldOf(c.field);
  const ops = OPS[f.kind];
  const n = index + 1;
  return (
    <div class="filter-condition">
      <select aria-label={`Field of condition ${n}`} value={c.field} onChange={(e) => {
        const field = (e.target as HTMLSelectElement).value;
        const kindOps = OPS[fieldOf(field).kind];
        onChange({ ...c, field, op: kindOps.includes(c.op) ? c.op : kindOps[0] });
      }}>
        {FIELDS.map((x) => (
          <option key={x.name} value={x.name}>
            {x.name}
          </option>
        ))}
      </select>
      <select aria-label={`Operator of condition ${n}`} value={c.op} onChange={(e) => onChange({ ...c, op: (e.target as HTMLSelectElement).value })}>
        {ops.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
      <input
        aria-label={`Value of condition ${n}`}
        value={c.value}
        placeholder={c.op.includes("IN") ? "a, b, c" : f.kind === "date" ? "2026-01-31T00:00:00Z" : f.kind === "bool" ? "true or false" : ""}
        onInput={(e) => onChange({ ...c, value: (e.target as HTMLInputElement).value })}
      />
      <button type="button" class="link" aria-label={`Remove condition ${n}`} onClick={() => onChange(null)}>
        Remove
      </button>
    </div>
  );
}
