"""Answer of ``GET /api/cte/pipeline``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ConsumerLag(BaseModel):
    """One consumer on one topic: records on the topic it has not applied yet."""

    consumer: str
    topic: str
    lag: int
    partitions: int
    # When the consumer last recorded a position on this topic (None: never).
    lastAppliedAt: datetime | None


class PipelineOut(BaseModel):
    consumers: list[ConsumerLag]
    measuredAt: datetime
