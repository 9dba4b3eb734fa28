"""Kafka plumbing: the broker every service builds, keyed publishing that waits for acks, and where each
partition of some topics starts and ends (for consumer lag)."""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import AIOKafkaConnection, CloseReason
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import RecordMetadata
from faststream.kafka import KafkaBroker

from cte_common.metrics import record_publish
from cte_common.settings import CommonSettings
from cte_common.startup import until_reachable

__all__ = [
    "Outgoing",
    "PatientKafkaBroker",
    "check_reachable",
    "group_by_partition",
    "group_indexes_by_partition",
    "make_broker",
    "murmur2",
    "murmur2_many",
    "partition_groups",
    "partition_of",
    "publish_all",
    "topic_offsets",
]


def _closed_connection_raises_a_connection_error() -> None:
    """Under uvloop, writing to a connection the broker closed raises RuntimeError ("the handler is
    closed"), not an OSError; aiokafka turns only OSError into KafkaConnectionError
    (https://github.com/aio-libs/aiokafka/issues/1038). The RuntimeError ends the producer's sender for
    good: every later send fails with "Unexpected error during batch delivery" until the process
    restarts (after a broker restart the API answered 500 to every write). Raised as what asyncio's
    closed connection raises, the write is retried on a new connection like any other broken one."""
    send = AIOKafkaConnection.send
    if getattr(send, "closed_is_broken", False):
        return

    def send_or_connection_error(self: Any, request: Any, expect_response: bool = True) -> Any:
        try:
            return send(self, request, expect_response)
        except RuntimeError as err:
            writer = self._writer
            if writer is not None and not writer.transport.is_closing():
                raise
            self.close(reason=CloseReason.CONNECTION_BROKEN)
            raise KafkaConnectionError(f"Connection at {self.host}:{self.port} broken: {err}") from err

    send_or_connection_error.closed_is_broken = True  # type: ignore[attr-defined]
    AIOKafkaConnection.send = send_or_connection_error


_closed_connection_raises_a_connection_error()


@dataclass(frozen=True)
class Outgoing:
    key: bytes
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    # None: the partition the key hashes to.
    partition: int | None = None


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS: dict[int, Callable[[bytes], tuple[int, ...]]] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of a key, as the Java client and aiokafka compute it, about five times faster
    than aiokafka's: it reads the key's 32-bit words in one unpack instead of byte by byte."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    if words:
        unpack = _WORDS.get(words)
        if unpack is None:
            unpack = _WORDS[words] = struct.Struct(f"<{words}I").unpack_from
        for k in unpack(data):
            k = (k * _M) & _MASK
            # (h * m) ^ (k * m), masked once: the low 32 bits of a product or a xor depend only on
            # the low 32 bits of its operands.
            h = ((h * _M) ^ ((k ^ (k >> 24)) * _M)) & _MASK
    tail = length & 3
    if tail:
        i = length & ~3
        if tail == 3:
            h ^= data[i + 2] << 16
        if tail >= 2:
            h ^= data[i + 1] << 8
        h = ((h ^ data[i]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


_LANE = b"\xff\xff\xff\xff\0\0\0\0"  # the low 32 bits of a 64-bit lane
_SEED = 0x9747B28C


def murmur2_many(keys: Sequence[bytes]) -> list[int]:
    """:func:`murmur2` of every key, several times cheaper per key for a batch: the keys with the same
    number of 32-bit words are hashed together, each in a 64-bit lane of one Python integer, so each
    step of the hash (a multiplication by m, a shift, a xor, a mask) is one operation on the integer
    for all of them. A 32-bit lane times m fits its 64 bits, and the lanes are cut back to 32 bits
    before every shift and multiplication, so no lane spills into another."""
    out = [0] * len(keys)
    lengths = [len(k) for k in keys]
    by_words: dict[int, list[int]] = {}
    for i, length in enumerate(lengths):
        group = by_words.get(length >> 2)
        if group is None:
            by_words[length >> 2] = [i]
        else:
            group.append(i)
    for words, positions in by_words.items():
        n = len(positions)
        stride = 4 * words + 4  # every key padded to its words and a word for the tail
        padded = b"".join([keys[i].ljust(stride, b"\0") for i in positions])
        pack = struct.Struct(f"<{n}Q").pack
        low = int.from_bytes(_LANE * n, "little")
        lane_bytes = bytearray(8 * n)
        h = int.from_bytes(pack(*[_SEED ^ lengths[i] for i in positions]), "little")
        for j in range(words):
            k = (_lane_words(padded, stride, 4 * j, lane_bytes) * _M) & low
            h = ((h * _M) ^ (((k ^ (k >> 24)) & low) * _M)) & low
        tails = [_MASK if lengths[i] & 3 else 0 for i in positions]
        if any(tails):
            # The tail's bytes xored in (zeros past a key's end change nothing), then a multiplication
            # by m in the lanes of the keys that have a tail.
            h ^= _lane_words(padded, stride, 4 * words, lane_bytes)
            with_tail = int.from_bytes(pack(*tails), "little")
            h = ((h * _M) & with_tail) | (h & ~with_tail & low)
        h = (h ^ (h >> 13)) & low
        h = (h * _M) & low
        h = (h ^ (h >> 15)) & low
        for i, value in zip(positions, struct.unpack(f"<{n}Q", h.to_bytes(8 * n, "little")), strict=True):
            out[i] = value
    return out


def _lane_words(padded: bytes, stride: int, at: int, lane_bytes: bytearray) -> int:
    """The 32-bit word at ``at`` of each key (every ``stride`` bytes of ``padded``), each in a 64-bit
    lane: its four bytes gathered by strided slices into the low half of each lane of ``lane_bytes``."""
    lane_bytes[0::8] = padded[at::stride]
    lane_bytes[1::8] = padded[at + 1 :: stride]
    lane_bytes[2::8] = padded[at + 2 :: stride]
    lane_bytes[3::8] = padded[at + 3 :: stride]
    return int.from_bytes(lane_bytes, "little")


def partition_of(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """aiokafka's DefaultPartitioner with the faster murmur2: the same partition for every key, so
    records keyed before and after it keep their order."""
    if key is None:
        return random.choice(available or all_partitions)  # noqa: S311 (spreading load, not a secret)
    return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


class PatientKafkaBroker(KafkaBroker):
    """A broker whose start waits for Kafka, and which owns the service's producer.

    FastStream runs the subscribers and describes them in the AsyncAPI document; it creates no producer
    of its own (``consumer_only``). The producer is aiokafka's, built from ``producer_options`` through
    its public API, and lives as long as the broker: started before the subscribers, so a handler that
    publishes finds it, and stopped after them, so their last publishes are acknowledged. A failed start
    is undone (the producer, the subscribers started so far) and tried again, so no consumer is ever
    started twice.
    """

    def __init__(self, *args: Any, startup_timeout: float, producer_options: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, consumer_only=True, **kwargs)
        self.startup_timeout = startup_timeout
        self.producer_options = dict(producer_options)
        # None until started, and again once stopped.
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        await until_reachable("Kafka", self._start_once, give_up_after=self.startup_timeout, undo=self.stop)

    async def _start_once(self) -> None:
        self.producer = AIOKafkaProducer(**self.producer_options)
        await self.producer.start()
        await super().start()

    async def stop(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        try:
            await super().stop(exc_type, exc_val, exc_tb)
        finally:
            producer, self.producer = self.producer, None
            if producer is not None:
                await producer.stop()


def make_broker(settings: CommonSettings, *, client_id: str, middlewares: Sequence[Any] = ()) -> PatientKafkaBroker:
    return PatientKafkaBroker(
        settings.kafka_bootstrap,
        startup_timeout=settings.startup_timeout_seconds,
        # Idempotent producer with acks=all: a publish that returned is durable on the broker and a
        # retried send cannot duplicate it. linger_ms lets concurrent sends share a batch.
        producer_options={
            "bootstrap_servers": settings.kafka_bootstrap,
            "client_id": client_id,
            "enable_idempotence": True,
            "acks": "all",
            "linger_ms": 5,
            "partitioner": partition_of,
            "max_batch_size": 512 * 1024,
            "max_request_size": 4 * 1024 * 1024,
            "request_timeout_ms": 30_000,
        },
        client_id=client_id,
        request_timeout_ms=30_000,
        middlewares=middlewares,
        graceful_timeout=30.0,
        allow_auto_create_topics=False,
    )


def _producer(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """The broker's own started producer, or None: not started, or a test double (FastStream's
    TestKafkaBroker replaces ``start``, so ours never runs)."""
    return broker.producer if isinstance(broker, PatientKafkaBroker) else None


async def check_reachable(broker: KafkaBroker) -> None:
    """A metadata round trip to the brokers through the broker's producer; raises a KafkaError when no
    broker answers (the caller bounds the wait). Without a producer of its own (a test double) there is
    nothing to reach."""
    if isinstance(broker, PatientKafkaBroker) and broker.producer is None:
        raise KafkaConnectionError("the producer is not started")
    producer = _producer(broker)
    if producer is not None:
        await producer.client.fetch_all_metadata()


async def publish_all(broker: KafkaBroker, topic: str, messages: Iterable[Outgoing]) -> list[RecordMetadata]:
    """Send every message, keyed, and return once the broker has acknowledged all of them.

    Sends are issued without awaiting each one, so they batch per partition; the acks are awaited
    together. If any send fails the exception propagates and the caller must not report success.
    Sends go to the broker's own aiokafka producer: FastStream's per-message publish (middlewares, a
    correlation id, codec) cost several times the send itself on the hot paths.
    """
    producer = _producer(broker)
    if producer is None:
        # A test double (FastStream's publish hands each message to the subscribers in process), or a
        # broker not started (FastStream's publish raises).
        return [
            await broker.publish(m.value, topic, key=m.key, partition=m.partition, headers=m.headers or None)
            for m in messages
        ]
    started = time.perf_counter()
    send = producer.send
    futures: list[asyncio.Future[RecordMetadata]] = []
    handed = futures.append
    try:
        for m in messages:
            headers = [(k, v.encode()) for k, v in m.headers.items()] or None
            handed(await send(topic, m.value, m.key, partition=m.partition, headers=headers))
        if not futures:
            return []
        acks = list(await asyncio.gather(*futures))
    except Exception as exc:
        record_publish(topic, len(futures), time.perf_counter() - started, exc)
        raise
    record_publish(topic, len(acks), time.perf_counter() - started, None)
    return acks


async def group_by_partition(
    broker: KafkaBroker, topic: str, keys: Sequence[str]
) -> list[tuple[int | None, list[str]]]:
    """The keys grouped by the partition each one hashes to, as the producer's partitioner puts them.

    Without a producer of the broker's own (a test double) every key is a group of its own, to be sent
    keyed.
    """
    return [(p, [keys[i] for i in group]) for p, group in await group_indexes_by_partition(broker, topic, keys)]


async def group_indexes_by_partition(
    broker: KafkaBroker, topic: str, keys: Sequence[str]
) -> list[tuple[int | None, list[int]]]:
    """The positions of ``keys`` grouped by the partition each key hashes to (in order within a group),
    as the producer's partitioner puts them; a group of its own per key without a producer of the
    broker's own (a test double)."""
    producer = _producer(broker)
    if producer is None:
        return [(None, [i]) for i in range(len(keys))]
    # A list of the set, in the order aiokafka's producer hands its partitioner.
    partitions = list(await producer.partitions_for(topic))
    return [(partition, group) for partition, group in partition_groups(keys, partitions)]


def partition_groups(keys: Sequence[str], partitions: Sequence[int]) -> list[tuple[int, list[int]]]:
    """The positions of ``keys`` grouped by the partition :func:`partition_of` gives each (one murmur2
    per key, :func:`murmur2_many`), in order within a group, the groups by partition."""
    count = len(partitions)
    groups: dict[int, list[int]] = {}
    for i, hashed in enumerate(murmur2_many([k.encode() for k in keys])):
        partition = partitions[(hashed & 0x7FFFFFFF) % count]
        group = groups.get(partition)
        if group is None:
            groups[partition] = [i]
        else:
            group.append(i)
    return sorted(groups.items())


async def topic_offsets(
    bootstrap: str, topics: Sequence[str], client_id: str
) -> dict[tuple[str, int], tuple[int, int]]:
    """(first offset still held, end offset) of every partition of ``topics`` that exists, read outside
    any consumer group: a consumer's lag is the end minus its recorded position."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    partitions = [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if not t.get("error_code")
        for p in t["partitions"]
    ]
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, client_id=client_id, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        begins = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): (int(begins[tp]), int(ends[tp])) for tp in partitions}
