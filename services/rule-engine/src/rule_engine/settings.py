from __future__ import annotations

from pydantic import Field

from cte_common.settings import CommonSettings


class Settings(CommonSettings):
    consumer_group: str = "rule-engine"
    rule_engine_metrics_port: int = 9101
    batch_max_records: int = 2000
    batch_timeout_ms: int = 50
    reevaluation_batch_size: int = 2000
    # Intents of a deciding transaction that did not commit are corrected once this old (see
    # handlers.republish_dead_intents): more than the producer's request timeout.
    republish_intents_after_seconds: float = Field(default=120.0, ge=0)
