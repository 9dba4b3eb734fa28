"""The rule-engine's domain metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INDICATORS_WRITTEN = Counter("cte_read_model_indicators_written_total", "Indicator rows created or changed.")
MERGES = Counter("cte_read_model_merges_total", "Events merged into an indicator that already existed.")
READ_MODEL_WRITE_SECONDS = Histogram(
    "cte_read_model_write_duration_seconds",
    "Time to load, merge and write one batch in the read model.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
