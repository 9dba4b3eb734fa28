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
DEPLOYS = Counter("cte_sink_deploys_total", "URL-list deploys, by tenant and outcome.", ["tenant", "outcome"])
LIST_ENTRIES = Gauge("cte_list_entries", "Entries the list holds on the tenant.", ["list"])
LIST_BYTES = Gauge("cte_list_bytes", "Bytes the list holds, counted as the reference counts them.", ["list"])
LIST_CAP_BYTES = Gauge("cte_list_cap_bytes", "The list's cap in bytes.", ["list"])
UNSHARED = Counter("cte_sink_unshared_total", "Values left out of a list by its cap (tagged Unshared).", ["list"])
INVALID = Counter("cte_sink_invalid_total", "Values the tenant refused (tagged Invalid host).", ["list"])
