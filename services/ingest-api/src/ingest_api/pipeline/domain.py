"""Consumer lag from recorded positions and the topics' offsets (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ingest_api.pipeline.schemas import ConsumerLag


def consumer_lags(
    positions: Sequence[Mapping[str, Any]], offsets: Mapping[tuple[str, int], tuple[int, int]]
) -> list[ConsumerLag]:
    """Per consumer and topic, the records between its position and the end of every partition. A
    partition the consumer never recorded counts from its first offset still held (nothing applied)."""
    recorded: dict[tuple[str, str], dict[int, int]] = {}
    applied_at: dict[tuple[str, str], datetime | None] = {}
    for row in positions:
        key = (row["consumer"], row["topic"])
        recorded.setdefault(key, {})[row["partition"]] = row["next_offset"]
        last = applied_at.get(key)
        applied_at[key] = row["updated_at"] if last is None else max(last, row["updated_at"])
    out = []
    for (consumer, topic), position in recorded.items():
        partitions = {p: begin_end for (t, p), begin_end in offsets.items() if t == topic}
        lag = sum(max(end - max(position.get(p, begin), begin), 0) for p, (begin, end) in partitions.items())
        out.append(
            ConsumerLag(
                consumer=consumer,
                topic=topic,
                lag=lag,
                partitions=len(partitions),
                lastAppliedAt=applied_at[(consumer, topic)],
            )
        )
    return out
