"""The netskope-sink's metrics. Labels: list keys and tenant names (bounded by configuration)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INTENTS = Counter("cte_sink_intents_total", "Share intents applied to the desired list state.", ["action"])
TENANT_REQUESTS = Counter(
    "cte_tenant_requests_total", "Requests to a Netskope tenant, by API and status.", ["tenant", "api", "status"]
)
TENANT_RETRIES = Counter(
    "cte_tenant_retries_total", "Retried tenant requests (429, 5xx, transport).", ["tenant", "api"]
)
PUSHES = Counter("cte_sink_pushes_total", "List pushes, by outcome.", ["list", "outcome"])
PUSH_SECONDS = Histogram(
    "cte_sink_push_duration_seconds",
    "Time to push one list (all its calls).",
    ["list"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PUSH_STEP_SECONDS = Histogram(
    "cte_sink_push_step_seconds",
    "Time a push spends in each step: start, read back, list names, limits, prepare, read list, body, "
    "the changing call (create, append, replace), deploy (once per tenant and round), record.",
    ["step"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEPLOYS = Counter("cte_sink_deploys_total", "URL-list deploys, by tenant and outcome.", ["tenant", "outcome"])
LIST_ENTRIES = Gauge("cte_list_entries", "Entries the list holds on the tenant.", ["list"])
LIST_BYTES = Gauge("cte_list_bytes", "Bytes the list holds, counted as the reference counts them.", ["list"])
LIST_CAP_BYTES = Gauge("cte_list_cap_bytes", "The list's cap in bytes.", ["list"])
UNSHARED = Counter("cte_sink_unshared_total", "Values left out of a list by its cap (tagged Unshared).", ["list"])
INVALID = Counter("cte_sink_invalid_total", "Values the tenant refused (tagged Invalid host).", ["list"])
LIST_FAILED = Gauge("cte_list_failed", "1 while the tenant refuses the list (state failed).", ["list"])
CREDENTIALS_REJECTED = Gauge(
    "cte_tenant_credentials_rejected", "1 while the tenant rejects its credentials (401/403).", ["tenant"]
)
LIST_FOREIGN = Gauge("cte_list_foreign_entries", "Entries on the list the sink did not put there.", ["list"])
FOREIGN_ADDED = Counter(
    "cte_sink_foreign_added_total", "Foreign entries found on a list that the last read-back did not see.", ["list"]
)
LIST_RESTORED = Counter(
    "cte_sink_restored_total", "Entries of ours found missing from a list on read-back (pushed again).", ["list"]
)
TENANT_LIMIT_LEFT_OUT = Gauge(
    "cte_list_left_out_tenant_limit", "Values left out of the list by the tenant's limits across its lists.", ["list"]
)

# Alert polling (labels: tenant and configuration names, alert and indicator types).
POLL_ALERTS = Counter("cte_poll_alerts_total", "Alerts taken from a tenant's alert export.", ["tenant", "type"])
POLL_INDICATORS = Counter(
    "cte_poll_indicators_total",
    "Indicator sightings published from polled alerts.",
    ["configuration", "indicator_type"],
)
POLL_INVALID = Counter(
    "cte_poll_invalid_total",
    "Alert values skipped as no valid indicator of their type (kind 'alert': not an alert object).",
    ["configuration", "kind"],
)
POLL_PAGES = Counter(
    "cte_poll_pages_total",
    "Iterator pages, by outcome: taken, empty, repeated (a resend of a page already taken), "
    "recovered (published again after a crash, only what was missing), lost (the tenant no longer had it).",
    ["configuration", "type", "outcome"],
)
POLL_RECOVERED = Counter(
    "cte_poll_recovered_sightings_total",
    "Sightings of interrupted pages found on the topic (found) or published by the recovery (published).",
    ["configuration", "outcome"],
)
POLL_ERRORS = Counter(
    "cte_poll_errors_total", "Failed polls of an iterator (retried next round).", ["configuration", "type"]
)
POLL_LAST_SUCCESS = Gauge(
    "cte_poll_last_success_timestamp_seconds",
    "When the iterator was last polled successfully.",
    ["configuration", "type"],
)
POLL_LAG = Gauge(
    "cte_poll_iterator_lag_seconds",
    "Now minus the iterator's timestamp_hwm (the newest alert time it delivered), at the last poll.",
    ["configuration", "type"],
)
POLL_BACKLOG = Gauge(
    "cte_poll_backlog",
    "1 when the tenant said more alerts were waiting (wait_time 0) at the end of a round.",
    ["configuration", "type"],
)
