// Home: indicators by type and source, what each list shares and leaves out, and the pipeline's health.
import { api, ok } from "../api";
import { Notice, Page, formatBytes, formatDate, useLoad } from "../ui";
import { useListStatus } from "./status";

interface Readiness {
  status: string;
  checks: Record<string, string | null>;
}

export function Home() {
  const pull = useLoad(() => ok(api.GET("/api/cte/dashboard/pull")));
  const lists = useListStatus();
  const reevaluations = useLoad(() => ok(api.GET("/api/cte/reevaluations")));
  const pipeline = useLoad(() => ok(api.GET("/api/cte/pipeline")));
  const ready = useLoad(async (): Promise<Readiness> => {
    const response = await fetch("/readyz");
    return (await response.json()) as Readiness;
  });
  const counts = pull.data ?? {};
  const types = Object.keys(counts).sort();
  const sources = [...new Set(types.flatMap((t) => Object.keys(counts[t])))].sort();
  const total = (t: string) => Object.values(counts[t]).reduce((n, c) => n + c.unretractedCount, 0);
  const failed = (lists.data ?? []).filter((l) => l.state === "failed" || l.state === "credentials_rejected");
  const running = (reevaluations.data ?? []).filter((r) => !r.finishedAt);
  const behind = (pipeline.data?.consumers ?? []).reduce((n, c) => n + c.lag, 0);
  return (
    <Page title="Home">
      <section aria-labelledby="health-title" class="cards">
        <h2 id="health-title">Pipeline health</h2>
        <div class="card">
          <h3>API</h3>
          <p class={ready.data?.status === "ready" ? "good" : "bad"}>{ready.data ? ready.data.status : ready.error ?? "…"}</p>
          {ready.data && (
            <ul>
              {Object.entries(ready.data.checks).map(([name, problem]) => (
                <li key={name}>
                  {name}: {problem ?? "ok"}
                </li>
              ))}
            </ul>
          )}
        </div>
        <div class="card">
          <h3>Lists</h3>
          <p class={failed.length ? "bad" : "good"} data-testid="failed-lists">
            {failed.length ? `${failed.length} failed` : `${lists.data?.length ?? 0} list(s), none failed`}
          </p>
          <ul>
            {failed.map((l) => (
              <li key={l.sharingId}>
                {l.listName}: {l.lastError ?? l.state}
              </li>
            ))}
          </ul>
        </div>
        <div class="card">
          <h3>Consumer lag</h3>
          <p class={behind ? "bad" : "good"}>{pipeline.data ? (behind ? `${behind} record(s) behind` : "caught up") : pipeline.error ?? "…"}</p>
          <ul data-testid="consumer-lag">
            {(pipeline.data?.consumers ?? []).map((c) => (
              <li key={`${c.consumer} ${c.topic}`}>
                {c.consumer}: {c.lag}
              </li>
            ))}
          </ul>
          <p>Re-evaluations: {running.length ? `${running.length} running` : "none running"}</p>
        </div>
      </section>
      <Notice message={pull.error ?? lists.error} />
      <section aria-labelledby="counts-title">
        <h2 id="counts-title">Indicators by type and source</h2>
        <table>
          <caption>Active indicators (retracted ones in brackets)</caption>
          <thead>
            <tr>
              <th scope="col">Type</th>
              {sources.map((s) => (
                <th scope="col" key={s}>{s}</th>
              ))}
              <th scope="col">All sources</th>
            </tr>
          </thead>
          <tbody>
            {types.map((t) => (
              <tr key={t}>
                <th scope="row">{t}</th>
                {sources.map((s) => {
                  const c = counts[t][s];
                  return <td key={s}>{c ? `${c.unretractedCount}${c.retractedCount ? ` (${c.retractedCount})` : ""}` : "0"}</td>;
                })}
                <td>{total(t)}</td>
              </tr>
            ))}
            {types.length === 0 && (
              <tr>
                <td colSpan={2}>No indicator yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </section>
      <section aria-labelledby="lists-title">
        <h2 id="lists-title">Shared and left out, per list</h2>
        <table>
          <caption>One row per sharing</caption>
          <thead>
            <tr>
              <th scope="col">List</th>
              <th scope="col">Tenant</th>
              <th scope="col">Shared</th>
              <th scope="col">Fill</th>
              <th scope="col">Left out</th>
              <th scope="col">Pending</th>
              <th scope="col">Last push</th>
            </tr>
          </thead>
          <tbody>
            {(lists.data ?? []).map((l) => (
              <tr key={l.sharingId}>
                <td>{l.listName}</td>
                <td>{l.tenant}</td>
                <td>
                  {l.entries} ({formatBytes(l.bytes)})
                </td>
                <td>{(l.fill * 100).toFixed(1)}%</td>
                <td>{l.leftOut.cap + l.leftOut.tenantLimit + l.leftOut.invalid + l.leftOut.rejected}</td>
                <td>{l.pendingChanges}</td>
                <td>{formatDate(l.lastPushAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </Page>
  );
}
