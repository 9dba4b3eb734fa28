"""Metrics every consumer and producer shares, and the /metrics endpoint of the non-HTTP services.

Names follow Prometheus conventions (base units, ``_total`` counters). Labels are bounded: consumer,
topic and partition names, never indicator values.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

__all__ = [
    "CONSUMER_BATCH_SECONDS",
    "CONSUMER_BATCH_SIZE",
    "CONSUMER_ERRORS",
    "CONSUMER_LAG",
    "CONSUMER_RECORDS",
    "KAFKA_PUBLISHED",
    "KAFKA_PUBLISH_FAILURES",
    "KAFKA_PUBLISH_SECONDS",
    "record_publish",
    "serve_metrics",
]

# The *_created series double the output and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONSUMER_RECORDS = Counter(
    "cte_consumer_records_total",
    "Records seen by a consumer, by outcome (applied, duplicate: applied before, dead_letter).",
    ["consumer", "outcome"],
)
CONSUMER_BATCH_SIZE = Histogram(
    "cte_consumer_batch_records",
    "Records per consumed batch.",
    ["consumer"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
CONSUMER_BATCH_SECONDS = Histogram(
    "cte_consumer_batch_duration_seconds",
    "Time to apply one batch, database commit included.",
    ["consumer"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "cte_consumer_lag_records",
    "Records behind the partition's high watermark after the last batch.",
    ["consumer", "topic", "partition"],
)
CONSUMER_ERRORS = Counter(
    "cte_consumer_batch_errors_total",
    "Batches that failed and will be redelivered.",
    ["consumer"],
)
KAFKA_PUBLISHED = Counter(
    "cte_kafka_published_records_total",
    "Records published to Kafka, by topic and status (success: acknowledged; error: part of a publish "
    "that failed, so the caller reports no success and retries or redelivers them all).",
    ["topic", "status"],
)
KAFKA_PUBLISH_SECONDS = Histogram(
    "cte_kafka_publish_duration_seconds",
    "Time from a publish's first send until the broker acknowledged its last record (or it failed).",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
KAFKA_PUBLISH_FAILURES = Counter(
    "cte_kafka_publish_failures_total",
    "Publishes that failed (a send refused or an acknowledgement not received), by topic and exception type.",
    ["topic", "exception_type"],
)


def record_publish(topic: str, records: int, seconds: float, error: BaseException | None) -> None:
    """Count one publish of ``records`` records that took ``seconds`` until acknowledged or failed."""
    if error is not None:
        KAFKA_PUBLISH_FAILURES.labels(topic, type(error).__name__).inc()
    KAFKA_PUBLISH_SECONDS.labels(topic).observe(seconds)
    KAFKA_PUBLISHED.labels(topic, "error" if error is not None else "success").inc(records)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve the default registry on ``host:port/metrics`` from a background thread."""
    start_http_server(port, addr=host)
