from __future__ import annotations

from cte_common.settings import CommonSettings


class Settings(CommonSettings):
    consumer_group: str = "rule-engine"
    rule_engine_metrics_port: int = 9101
    batch_max_records: int = 2000
    batch_timeout_ms: int = 50
    reevaluation_batch_size: int = 2000
