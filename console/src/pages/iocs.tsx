// Threat IoCs: as Cloud Exchange's page. By default the last 7 days, newest Last Seen first, 10 a page
// (up to 100); the filter builder beside its query text; each indicator's detail with its sources; bulk
// add and remove tags, delete and retract.
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api";
import { GroupEditor, condition, emptyGroup, toMongo, toText, type Group } from "../filter";
import { Modal, Notice, Page, formatDate, useLoad, useSession } from "../ui";

type Indicator = Schemas["IndicatorOut"];

const SORTS: [string, string][] = [
  ["sources.lastSeen", "Last Seen"],
  ["sources.firstSeen", "First Seen"],
  ["value", "Value"],
  ["type", "Type"],
  ["sources.severity", "Severity"],
  ["sources.reputation", "Reputation"],
  ["externalHits", "External hits"],
];

function lastWeek(): Group {
  const since = new Date(Date.now() - 7 * 24 * 3600 * 1000).toISOString().slice(0, 19) + "Z";
  return { ...emptyGroup(), items: [condition("lastSeen", ">=", since)] };
}

export function ThreatIocs() {
  const session = useSession();
  const writer = session.can("cte_write");
  const [draft, setDraft] = useState<Group>(lastWeek);
  const [applied, setApplied] = useState<Group>(draft);
  const [sort, setSort] = useState("sources.lastSeen");
  const [ascending, setAscending] = useState(false);
  const [limit, setLimit] = useState(10);
  const [page, setPage] = useState(0);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [detail, setDetail] = useState<Indicator | null>(null);
  const [tagText, setTagText] = useState("");
  const [message, setMessage] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const filters = JSON.stringify(toMongo(applied));
  const rows = useLoad(async () => {
    const query = { filters, sort, ascending, skip: page * limit, limit };
    const [items, count] = await Promise.all([
      ok(api.GET("/api/cte/indicators/", { params: { query } })),
      ok(api.GET("/api/cte/indicators/", { params: { query: { filters, aggregate: true } } })),
    ]);
    return { items: items as Indicator[], count: (count as Schemas["IndicatorCountOut"]).count };
  }, [filters, sort, ascending, limit, page]);
  const items = rows.data?.items ?? [];
  const count = rows.data?.count ?? 0;
  const apply = (e: Event) => {
    e.preventDefault();
    setPage(0);
    setSelected(new Set());
    setApplied(draft);
  };
  const toggle = (value: string) => {
    const next = new Set(selected);
    if (next.has(value)) next.delete(value);
    else next.add(value);
    setSelected(next);
  };
  const values = [...selected];
  const bulk = async (what: string, action: () => Promise<unknown>) => {
    setMessage(null);
    setInfo(null);
    try {
      await action();
      setInfo(`${what}: done for ${values.length} indicator(s).`);
      setSelected(new Set());
      void rows.reload();
    } catch (err) {
      setMessage((err as Error).message);
    }
  };
  const tags = tagText.split(",").map((t) => t.trim()).filter(Boolean);
  const editTags = (change: "add" | "remove") =>
    bulk(change === "add" ? "Tags added" : "Tags removed", () =>
      ok(api.PATCH("/api/cte/indicators/bulk", { params: { query: { wait: true } } as never, body: { locator: { values }, tags: { [change]: tags } } })),
    );
  const remove = () => {
    if (!confirm(`Delete ${values.length} indicator(s)?`)) return;
    void bulk("Deleted", () => ok(api.DELETE("/api/cte/indicators/bulk", { params: { query: { wait: true } } as never, body: { values } })));
  };
  const retract = () =>
    bulk("Retracted", async () => {
      // A retraction names one source: every source of every selected indicator is retracted.
      const chosen = items.filter((i) => selected.has(i.value));
      for (const indicator of chosen)
        for (const source of indicator.sources)
          await ok(api.PATCH("/api/cte/indicators/", { params: { query: { wait: true } } as never, body: { value: indicator.value, source: source.source, retracted: true } }));
    });
  const pages = Math.max(1, Math.ceil(count / limit));
  return (
    <Page title="Threat IoCs">
      <form class="side-by-side filter" onSubmit={apply} aria-label="Filter">
        <GroupEditor group={draft} onChange={setDraft} label="Filter builder" />
        <div class="field">
          <label for="ioc-query">Query</label>
          <textarea id="ioc-query" rows={5} readOnly value={toText(draft) || "(every indicator)"} />
          <div class="form-actions">
            <button type="submit" class="primary">
              Apply filter
            </button>
            <button type="button" onClick={() => { const g = lastWeek(); setDraft(g); setApplied(g); setPage(0); }}>
              Last 7 days
            </button>
            <button type="button" onClick={() => { setDraft(emptyGroup()); setApplied(emptyGroup()); setPage(0); }}>
              Clear
            </button>
          </div>
        </div>
      </form>
      <div class="toolbar">
        <label>
          Sort by{" "}
          <select value={sort} onChange={(e) => { setSort((e.target as HTMLSelectElement).value); setPage(0); }}>
            {SORTS.map(([v, t]) => (
              <option key={v} value={v}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Order{" "}
          <select value={ascending ? "asc" : "desc"} onChange={(e) => { setAscending((e.target as HTMLSelectElement).value === "asc"); setPage(0); }}>
            <option value="desc">Descending</option>
            <option value="asc">Ascending</option>
          </select>
        </label>
        <label>
          Per page{" "}
          <select value={limit} onChange={(e) => { setLimit(Number((e.target as HTMLSelectElement).value)); setPage(0); }}>
            {[10, 25, 50, 100].map((n) => (
              <option key={n} value={n}>{n}</option>
            ))}
          </select>
        </label>
        <span class="count" role="status">
          {rows.loading ? "Loading…" : `${count} indicator(s)`}
        </span>
      </div>
      {writer && (
        <div class="toolbar bulk" aria-label="Bulk actions">
          <label>
            Tags{" "}
            <input value={tagText} placeholder="tag1, tag2" onInput={(e) => setTagText((e.target as HTMLInputElement).value)} />
          </label>
          <button type="button" disabled={!values.length || !tags.length} onClick={() => void editTags("add")}>Add tags</button>
          <button type="button" disabled={!values.length || !tags.length} onClick={() => void editTags("remove")}>Remove tags</button>
          <button type="button" disabled={!values.length} onClick={() => void retract()}>Retract</button>
          <button type="button" class="danger" disabled={!values.length} onClick={remove}>Delete</button>
          <span>{values.length} selected</span>
        </div>
      )}
      <Notice message={rows.error ?? message} />
      <Notice message={info} kind="info" />
      <table class="iocs">
        <caption>Indicators, page {page + 1} of {pages}</caption>
        <thead>
          <tr>
            {writer && (
              <th scope="col">
                <input
                  type="checkbox"
                  aria-label="Select every indicator of the page"
                  checked={items.length > 0 && items.every((i) => selected.has(i.value))}
                  onChange={(e) => setSelected((e.target as HTMLInputElement).checked ? new Set(items.map((i) => i.value)) : new Set())}
                />
              </th>
            )}
            <th scope="col">Value</th>
            <th scope="col">Type</th>
            <th scope="col">Severity</th>
            <th scope="col">Reputation</th>
            <th scope="col">Sources</th>
            <th scope="col">Tags</th>
            <th scope="col">Shared with</th>
            <th scope="col">Last Seen</th>
          </tr>
        </thead>
        <tbody>
          {items.map((i) => (
            <tr key={i.value} data-value={i.value}>
              {writer && (
                <td>
                  <input type="checkbox" aria-label={`Select ${i.value}`} checked={selected.has(i.value)} onChange={() => toggle(i.value)} />
                </td>
              )}
              <td class="value-cell">
                <button type="button" class="link value" onClick={() => setDetail(i)}>{i.value}</button>
              </td>
              <td>{i.type}</td>
              <td>{i.severity}</td>
              <td>{i.reputation ?? "—"}</td>
              <td>{i.sources.map((s) => s.source).join(", ")}</td>
              <td class="tags">{i.tags.map((t) => <span class="tag" key={t}>{t}</span>)}</td>
              <td>{i.sharedWith.join(", ") || "—"}</td>
              <td>{formatDate(i.lastSeen)}</td>
            </tr>
          ))}
          {!rows.loading && items.length === 0 && (
            <tr>
              <td colSpan={9}>No indicator matches.</td>
            </tr>
          )}
        </tbody>
      </table>
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={page === 0} onClick={() => setPage(page - 1)}>Previous page</button>
        <span>Page {page + 1} of {pages}</span>
        <button type="button" disabled={page + 1 >= pages} onClick={() => setPage(page + 1)}>Next page</button>
      </nav>
      {detail && (
        <Modal title={detail.value} onClose={() => setDetail(null)}>
          <IndicatorDetail indicator={detail} />
        </Modal>
      )}
    </Page>
  );
}

function IndicatorDetail({ indicator: i }: { indicator: Indicator }) {
  return (
    <div class="detail">
      <dl class="figures">
        <dt>Type</dt><dd>{i.type}</dd>
        <dt>Severity</dt><dd>{i.severity}</dd>
        <dt>Reputation</dt><dd>{i.reputation ?? "—"}</dd>
        <dt>Active</dt><dd>{i.active ? "yes" : "no"}</dd>
        <dt>Test</dt><dd>{i.test ? "yes" : "no"}</dd>
        <dt>Safe</dt><dd>{i.safe ? "yes" : "no"}</dd>
        <dt>Expires</dt><dd>{formatDate(i.expiresAt)}</dd>
        <dt>First Seen</dt><dd>{formatDate(i.firstSeen)}</dd>
        <dt>Last Seen</dt><dd>{formatDate(i.lastSeen)}</dd>
        <dt>Hits (internal / external)</dt><dd>{i.internalHits} / {i.externalHits}</dd>
        <dt>Tags</dt><dd>{i.tags.join(", ") || "—"}</dd>
        <dt>Shared with</dt><dd>{i.sharedWith.join(", ") || "—"}</dd>
      </dl>
      <table>
        <caption>Sources</caption>
        <thead>
          <tr>
            <th scope="col">Source</th>
            <th scope="col">Severity</th>
            <th scope="col">Reputation</th>
            <th scope="col">Tags</th>
            <th scope="col">First Seen</th>
            <th scope="col">Last Seen</th>
            <th scope="col">Retracted</th>
            <th scope="col">Comments</th>
          </tr>
        </thead>
        <tbody>
          {i.sources.map((s) => (
            <tr key={s.source}>
              <td>{s.source}</td>
              <td>{s.severity}</td>
              <td>{s.reputation ?? "—"}</td>
              <td>{(s.tags ?? []).join(", ")}</td>
              <td>{formatDate(s.firstSeen)}</td>
              <td>{formatDate(s.lastSeen)}</td>
              <td>{s.retracted ? "yes" : "no"}</td>
              <td>{s.comments}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
