from __future__ import annotations

from cte_common.settings import CommonSettings


class Settings(CommonSettings):
    consumer_group: str = "netskope-sink"
    sink_metrics_port: int = 9102
    batch_max_records: int = 5000
    batch_timeout_ms: int = 100
