"""Exactly-once effects on at-least-once delivery, for every batch consumer.

Delivery semantics shared by all consumers built on this module:
- Kafka delivers at least once. A consumer records, per (consumer, topic, partition), the next
  offset it has applied, in the same PostgreSQL transaction as the writes those records caused.
- Before applying a batch it locks those position rows and drops records below them, so a batch
  replayed after a crash, a rebalance or a failed commit changes nothing. The row lock also
  serialises two group members that briefly both hold a partition during a rebalance.
- Kafka offsets are committed only after the database commit (the subscriber's ack policy), so a
  crash in between only causes a replay, which the positions absorb.
- Records that cannot be decoded go to the dead-letter topic with the reason and count as applied,
  so one poison message never blocks a partition and none is dropped silently (``decode_or_park``);
  ``cte-dlq`` can replay what was parked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import TypeAdapter, ValidationError

from cte_common.db import Connection, Pool
from cte_common.kafka import Outgoing, publish_all
from cte_common.logs import bind
from cte_common.metrics import CONSUMER_ERRORS, CONSUMER_LAG, CONSUMER_RECORDS
from cte_common.positions_repository import advance_positions, lock_positions

__all__ = [
    "Decoded",
    "Record",
    "Rejected",
    "apply_exactly_once",
    "decode_batch",
    "decode_or_park",
    "park",
    "publish_dead_letters",
    "register_batch_consumer",
    "short_reason",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


# Named tuples, not frozen dataclasses: a batch creates thousands, and a frozen dataclass's __init__
# costs several times a tuple's.
class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


class Decoded(NamedTuple, Generic[T]):
    record: Record
    event: T


class Rejected(NamedTuple):
    record: Record
    reason: str


def decode_batch(records: Sequence[Record], adapter: TypeAdapter[T]) -> tuple[list[Decoded[T]], list[Rejected]]:
    decoded: list[Decoded[T]] = []
    rejected: list[Rejected] = []
    for r in records:
        if r.value is None:
            rejected.append(Rejected(r, "empty value"))
            continue
        try:
            decoded.append(Decoded(r, adapter.validate_json(r.value)))
        except ValidationError as exc:
            rejected.append(Rejected(r, short_reason(exc)))
    return decoded, rejected


def short_reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


async def publish_dead_letters(broker: KafkaBroker, topic: str, consumer: str, rejected: Sequence[Rejected]) -> None:
    """Park undecodable records with where they came from and why, for inspection and replay."""
    await publish_all(
        broker,
        topic,
        (
            Outgoing(
                key=rj.record.key or b"",
                value=rj.record.value or b"",
                headers={
                    "dlq-consumer": consumer,
                    "dlq-reason": rj.reason[:1000],
                    "dlq-topic": rj.record.topic,
                    "dlq-partition": str(rj.record.partition),
                    "dlq-offset": str(rj.record.offset),
                },
            )
            for rj in rejected
        ),
    )


async def decode_or_park(
    broker: KafkaBroker, dead_letter_topic: str, consumer: str, records: Sequence[Record], adapter: TypeAdapter[T]
) -> list[Decoded[T]]:
    """The records ``adapter`` decodes; the others parked on the dead-letter topic with the reason (in
    the caller's transaction: a failed publish rolls the batch back, and it is delivered again)."""
    decoded, rejected = decode_batch(records, adapter)
    await park(broker, dead_letter_topic, consumer, rejected)
    return decoded


async def park(broker: KafkaBroker, dead_letter_topic: str, consumer: str, rejected: Sequence[Rejected]) -> None:
    """Records that do not decode, on the dead-letter topic with the reason, counted and logged."""
    if rejected:
        await publish_dead_letters(broker, dead_letter_topic, consumer, rejected)
        CONSUMER_RECORDS.labels(consumer, "dead_letter").inc(len(rejected))
        log.warning("%s parked %d undecodable records: %s", consumer, len(rejected), rejected[0].reason[:200])


async def apply_exactly_once(
    pool: Pool,
    consumer: str,
    records: Sequence[Record],
    apply: Callable[[Connection, list[Record]], Awaitable[None]],
) -> list[Record]:
    """Apply the records not applied before, and record the new positions, in one transaction.

    Returns the records that were applied now (the rest had been applied by an earlier delivery).
    """
    if not records:
        return []
    partitions = sorted({(r.topic, r.partition) for r in records})
    async with pool.acquire() as conn, conn.transaction():
        position = await lock_positions(conn, consumer, partitions)
        fresh = [r for r in records if r.offset >= position[(r.topic, r.partition)]]
        if fresh:
            await apply(conn, fresh)
        ends: dict[tuple[str, int], int] = {}
        for r in records:
            ends[(r.topic, r.partition)] = max(ends.get((r.topic, r.partition), 0), r.offset + 1)
        await advance_positions(conn, consumer, ends)
    if len(fresh) < len(records):
        log.info("skipped %d records already applied", len(records) - len(fresh))
    return fresh


async def _no_decode(msg: Any) -> None:
    return None


def register_batch_consumer(
    broker: KafkaBroker,
    *,
    topic: str,
    group_id: str,
    consumer: str,
    handle: Callable[[Sequence[Record]], Awaitable[None]],
    max_records: int,
    batch_timeout_ms: int,
    max_partition_fetch_bytes: int = 1024 * 1024,
) -> None:
    """Subscribe ``handle`` to ``topic`` as a batch consumer with the delivery semantics above.

    ``max_partition_fetch_bytes`` bounds what one fetch takes from a partition (aiokafka's default is
    1 MiB): a consumer that has fallen behind gets batches of about that many bytes per partition, so a
    topic whose records are envelopes of many events needs more to make a behind consumer's batches
    larger (fewer transactions, commits and lock waits per event).

    NACK_ON_ERROR: Kafka offsets are committed after ``handle`` returned (its database commit is
    done by then); if it raises, the consumer seeks back and the batch is delivered again.
    """

    @broker.subscriber(
        topic,
        group_id=group_id,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        max_partition_fetch_bytes=max_partition_fetch_bytes,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        # The handler reads the raw records; FastStream's default decoder would parse every body as
        # JSON first, for nothing.
        decoder=_no_decode,
        title=f"{consumer}:{topic}",
        description=f"Batch consumer {consumer} (group {group_id}).",
    )
    async def on_batch(msg: KafkaMessage) -> None:
        raw = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        records = [Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp) for r in raw]
        # Log lines about this batch name its partitions and offsets, and the first keys (indicator
        # values on the indicator topic, list keys on the share topic); never every value.
        keys = sorted({r.key.decode(errors="replace") for r in records[:20] if r.key})
        try:
            with bind(consumer=consumer, batch_first_offset=records[0].offset if records else None, keys=keys):
                await handle(records)
        except Exception:
            CONSUMER_ERRORS.labels(consumer).inc()
            log.exception("batch of %d records failed; it will be redelivered", len(records))
            raise
        _observe_lag(msg, consumer, records)


def _observe_lag(msg: KafkaMessage, consumer: str, records: Sequence[Record]) -> None:
    kafka_consumer = getattr(msg, "consumer", None)
    if kafka_consumer is None or not hasattr(kafka_consumer, "highwater"):
        return
    ends: dict[tuple[str, int], int] = {}
    for r in records:
        ends[(r.topic, r.partition)] = max(ends.get((r.topic, r.partition), 0), r.offset + 1)
    for (topic, partition), end in ends.items():
        highwater = kafka_consumer.highwater(TopicPartition(topic, partition))
        if highwater is not None:
            CONSUMER_LAG.labels(consumer, topic, str(partition)).set(max(highwater - end, 0))
