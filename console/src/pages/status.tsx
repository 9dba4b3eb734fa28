// Each list's live status (GET /api/cte/sharing/status): what the tenant holds, fill, foreign entries,
// what is left out and why, the last push and the last error.
import { api, ok, type Schemas } from "../api";
import { Notice, formatBytes, formatDate, useLoad } from "../ui";

export type ListStatus = Schemas["SharingListStatus"];

export function useListStatus() {
  return useLoad(() => ok(api.GET("/api/cte/sharing/status")));
}

const STATES: Record<ListStatus["state"], string> = {
  ok: "OK",
  pending: "Pending push",
  failed: "Failed",
  credentials_rejected: "Credentials rejected",
};

export function ListStatusTable() {
  const status = useListStatus();
  return (
    <>
      <Notice message={status.error} />
      <div class="toolbar">
        <button type="button" onClick={() => void status.reload()}>
          Refresh status
        </button>
      </div>
      <table class="list-status">
        <caption>Lists on the tenants</caption>
        <thead>
          <tr>
            <th scope="col">List</th>
            <th scope="col">Tenant</th>
            <th scope="col">State</th>
            <th scope="col">Entries</th>
            <th scope="col">Bytes / cap</th>
            <th scope="col">Fill</th>
            <th scope="col">Foreign entries</th>
            <th scope="col">Left out (cap / tenant limit / invalid / rejected)</th>
            <th scope="col">Pending changes</th>
            <th scope="col">Last push</th>
            <th scope="col">Last error</th>
          </tr>
        </thead>
        <tbody>
          {(status.data ?? []).map((s) => (
            <tr key={s.sharingId} data-list={s.listName}>
              <td>
                {s.listName} <small>({s.listType === "url" ? "URL list" : "file hash list"})</small>
              </td>
              <td>{s.tenant}</td>
              <td class={`state-${s.state}`}>{STATES[s.state]}</td>
              <td data-testid="entries">{s.entries}</td>
              <td>
                {formatBytes(s.bytes)} / {formatBytes(s.capBytes)}
              </td>
              <td>
                <meter min={0} max={1} value={s.fill} aria-label={`Fill of ${s.listName}`} /> {(s.fill * 100).toFixed(1)}%
              </td>
              <td>
                {s.foreign.entries} ({formatBytes(s.foreign.bytes)})
              </td>
              <td>
                {s.leftOut.cap} / {s.leftOut.tenantLimit} / {s.leftOut.invalid} / {s.leftOut.rejected}
              </td>
              <td>{s.pendingChanges}</td>
              <td>{formatDate(s.lastPushAt)}</td>
              <td>
                {s.lastError ?? "—"}
                {s.failures > 0 && ` (${s.failures} failures; next attempt ${formatDate(s.nextAttemptAt)})`}
              </td>
            </tr>
          ))}
          {status.data?.length === 0 && (
            <tr>
              <td colSpan={11}>No list shared yet.</td>
            </tr>
          )}
        </tbody>
      </table>
    </>
  );
}
