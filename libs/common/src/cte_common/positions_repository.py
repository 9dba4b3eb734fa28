"""SQL of the consumer positions: each consumer's rows of ``consumer_offsets``, the next offset it has
applied per (consumer, topic, partition), written in the same transaction as the consumer's own writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cte_common.db import Connection

__all__ = [
    "advance_positions",
    "lock_positions",
]

_LOCK_POSITIONS = """
INSERT INTO consumer_offsets (consumer, topic, partition, next_offset)
SELECT $1, t, p, 0 FROM unnest($2::text[], $3::int[]) AS x(t, p)
ON CONFLICT (consumer, topic, partition) DO NOTHING
"""
_SELECT_POSITIONS = """
SELECT topic, partition, next_offset FROM consumer_offsets
WHERE consumer = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
ORDER BY topic, partition
FOR UPDATE
"""
_ADVANCE_POSITIONS = """
UPDATE consumer_offsets AS c SET next_offset = x.o, updated_at = now()
FROM unnest($2::text[], $3::int[], $4::bigint[]) AS x(t, p, o)
WHERE c.consumer = $1 AND c.topic = x.t AND c.partition = x.p AND c.next_offset < x.o
"""


async def lock_positions(
    conn: Connection, consumer: str, partitions: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The next offset to apply per (topic, partition), 0 for a partition never seen, with the rows locked
    until the transaction ends."""
    topics = [t for t, _ in partitions]
    parts = [p for _, p in partitions]
    await conn.execute(_LOCK_POSITIONS, consumer, topics, parts)
    rows = await conn.fetch(_SELECT_POSITIONS, consumer, topics, parts)
    return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}


async def advance_positions(conn: Connection, consumer: str, ends: Mapping[tuple[str, int], int]) -> None:
    """Move each partition's position forward to its end offset (never backward)."""
    await conn.execute(
        _ADVANCE_POSITIONS,
        consumer,
        [t for t, _ in ends],
        [p for _, p in ends],
        list(ends.values()),
    )
