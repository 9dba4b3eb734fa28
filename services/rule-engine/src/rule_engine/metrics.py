"""The rule-engine's domain metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INDICATORS_WRITTEN = Counter("cte_read_model_indicators_written_total", "Indicator rows created or changed.")
MERGES = Counter("cte_read_model_merges_total", "Events merged into an indicator that already existed.")
READ_MODEL_WRITE_SECONDS = Histogram(
    "cte_read_model_write_duration_seconds",
    "Time to load, merge and write one batch in the read model.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DECISIONS = Counter(
    "cte_rule_decisions_total",
    "Sharing decisions taken, by sharing and outcome (selected, rule, ...).",
    ["sharing", "outcome"],
)
SHARE_INTENTS = Counter("cte_share_intents_published_total", "Share intents published, by action.", ["action"])
ALLOW_LIST_HITS = Counter(
    "cte_allow_list_hits_total", "Indicators kept out of every list by an allow-list entry.", ["entry"]
)
REEVALUATED = Counter("cte_reevaluated_indicators_total", "Indicators decided again after a configuration change.")
REEVALUATION_PENDING = Gauge(
    "cte_reevaluation_pending", "Re-evaluation requests not finished yet (the one running included)."
)
EXPIRY_APPLY_LAG = Histogram(
    "cte_expiry_apply_lag_seconds",
    "Time from an indicator's due time to its expiry taking effect in the read model (and its lists' intents).",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
KEYED_REPEATS = Counter(
    "cte_keyed_sightings_repeated_total",
    "Sightings of a retried request sent with an Idempotency-Key, already applied and so skipped.",
)
INTENTS_REPUBLISHED = Counter(
    "cte_share_intents_republished_total",
    "Committed decisions published again for intents of a deciding transaction that did not commit.",
)
