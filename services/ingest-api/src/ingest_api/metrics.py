"""The ingest-api's metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INDICATORS_ACCEPTED = Counter(
    "cte_ingest_indicators_accepted_total", "Indicators accepted (durable in Kafka), by type.", ["type"]
)
INDICATORS_REJECTED = Counter(
    "cte_ingest_indicators_rejected_total", "Indicators refused with a 4xx, by reason.", ["reason"]
)
IGNORED_FIELDS = Counter(
    "cte_ingest_ignored_fields_total",
    "Keys of an indicator written that the reference's input model ignores (a field of its answer by name, "
    "else other), ignored here too.",
    ["field"],
)
HTTP_REQUESTS = Counter(
    "cte_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "cte_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SIGNIN_FAILURES = Counter("cte_auth_failures_total", "Failed sign-ins on /api/auth.")
