from __future__ import annotations

from pydantic import Field

from cte_common.settings import CommonSettings


class Settings(CommonSettings):
    ager_metrics_port: int = 9103
    # How often the due index is checked; expiry takes effect within about this much of the due time.
    sweep_interval_seconds: float = Field(default=1.0, gt=0)
    sweep_batch_size: int = Field(default=5000, ge=1)
    # An expire command not yet applied after this long is published again (idempotent downstream).
    redispatch_after_seconds: float = Field(default=30.0, gt=0)
