"""The ager's metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EXPIRE_COMMANDS = Counter("cte_ager_expire_commands_total", "Expire commands published.")
DUE_LAG = Histogram(
    "cte_ager_dispatch_lag_seconds",
    "Time from an indicator's due time to the publication of its expire command.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
LAST_SWEEP = Gauge("cte_ager_last_sweep_timestamp_seconds", "When the last sweep finished (Unix time).")
DELETES = Counter("cte_ager_delete_commands_total", "Inactive indicators deleted (deleteInactiveIndicators).")
