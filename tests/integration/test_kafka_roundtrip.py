"""The first real-broker test: keyed produce, batch consume through FastStream on aiokafka, commit,
stop mid-stream, restart, replay; nothing lost and nothing applied twice."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from cte_common.consumer import Record, apply_exactly_once, register_batch_consumer
from cte_common.kafka import Outgoing, group_by_partition, make_broker, publish_all
from cte_common.settings import CommonSettings
from tests.conftest import Env

PARTITIONS = 6


async def _topic(env: Env, partitions: int = PARTITIONS) -> str:
    name = f"{env.topic_prefix}.roundtrip-{secrets.token_hex(3)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=env.stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


class Applier:
    """Writes each record's (key, seq) into a table; a second application of a record would add a row."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        table: str,
        consumer: str,
        fail_after_commit: int = 0,
        delay: float = 0.0,
    ) -> None:
        self.pool = pool
        self.delay = delay
        self.table = table
        self.consumer = consumer
        self.batches = 0
        self.fail_after_commit = fail_after_commit

    async def handle(self, records: Sequence[Record]) -> None:
        async def apply(conn: Any, fresh: list[Record]) -> None:
            await conn.executemany(
                f"INSERT INTO {self.table} (k, seq) VALUES ($1, $2)",
                [(r.key.decode(), int(r.value)) for r in fresh if r.key and r.value],
            )

        await apply_exactly_once(self.pool, self.consumer, records, apply)
        self.batches += 1
        await asyncio.sleep(self.delay)
        if self.fail_after_commit and self.batches == self.fail_after_commit:
            # The database committed but Kafka did not: the batch is redelivered and must be skipped.
            raise RuntimeError("injected failure between the database commit and the offset commit")


def _broker(env: Env) -> KafkaBroker:
    return make_broker(CommonSettings(kafka_bootstrap=env.stack.kafka_bootstrap), client_id="roundtrip-test")


async def _consume(env: Env, topic: str, group: str, applier: Applier) -> KafkaBroker:
    broker = _broker(env)
    register_batch_consumer(
        broker,
        topic=topic,
        group_id=group,
        consumer=applier.consumer,
        handle=applier.handle,
        max_records=50,
        batch_timeout_ms=20,
    )
    await broker.start()
    return broker


async def _count(pool: asyncpg.Pool[Any], table: str) -> tuple[int, int]:
    row = await pool.fetchrow(f"SELECT count(*) AS n, count(DISTINCT (k, seq)) AS d FROM {table}")
    assert row is not None
    return row["n"], row["d"]


async def _wait_rows(pool: asyncpg.Pool[Any], table: str, at_least: int, timeout: float = 30.0) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        n, _ = await _count(pool, table)
        if n >= at_least:
            return n
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {(await _count(pool, table))[0]} of {at_least} rows after {timeout} s")


async def _produce(env: Env, topic: str, seqs: range) -> None:
    producer = _broker(env)
    await producer.start()
    try:
        # 40 keys: every key's records land on one partition and stay in order.
        await publish_all(
            producer, topic, (Outgoing(key=f"key-{s % 40}".encode(), value=str(s).encode()) for s in seqs)
        )
    finally:
        await producer.stop()


async def test_the_brokers_own_producer_lands_keys_where_group_by_partition_says(env: Env) -> None:
    topic = await _topic(env)
    broker = make_broker(CommonSettings(kafka_bootstrap=env.stack.kafka_bootstrap), client_id="producer-test")
    assert broker.producer is None
    await broker.start()
    try:
        assert broker.producer is not None
        keys = [f"value-{i}.example" for i in range(300)]
        groups = await group_by_partition(broker, topic, keys)
        assert len(groups) == PARTITIONS
        acks = await publish_all(broker, topic, [Outgoing(k.encode(), b"x") for k in keys])
        expected = {k: p for p, members in groups for k in members}
        assert {k: ack.partition for k, ack in zip(keys, acks, strict=True)} == expected
        published = REGISTRY.get_sample_value(
            "cte_kafka_published_records_total", {"topic": topic, "status": "success"}
        )
        assert published == len(keys)

        # A record over max_request_size is refused by the send: the publish raises and is counted.
        with pytest.raises(MessageSizeTooLargeError):
            await publish_all(broker, topic, [Outgoing(b"big", b"x" * (5 * 1024 * 1024))])
        labels = {"topic": topic, "exception_type": "MessageSizeTooLargeError"}
        assert REGISTRY.get_sample_value("cte_kafka_publish_failures_total", labels) == 1
    finally:
        await broker.stop()
    assert broker.producer is None


@pytest.fixture
async def table(db: asyncpg.Pool[Any]) -> str:
    name = "roundtrip_" + secrets.token_hex(4)
    await db.execute(f"CREATE TABLE {name} (id bigserial PRIMARY KEY, k text NOT NULL, seq int NOT NULL)")
    return name


async def test_stop_mid_stream_and_restart_loses_nothing_and_applies_nothing_twice(
    env: Env, db: asyncpg.Pool[Any], table: str
) -> None:
    topic = await _topic(env)
    await _produce(env, topic, range(600))

    # A slow first consumer, stopped while most of the stream is still ahead of it.
    first = await _consume(env, topic, "roundtrip", Applier(db, table, "roundtrip", delay=0.05))
    await _wait_rows(db, table, 100)
    await first.stop()
    applied_before_restart, _ = await _count(db, table)
    assert 100 <= applied_before_restart < 600

    await _produce(env, topic, range(600, 1000))
    second = await _consume(env, topic, "roundtrip", Applier(db, table, "roundtrip"))
    try:
        await _wait_rows(db, table, 1000)
        await asyncio.sleep(0.5)  # anything applied twice would show up now
    finally:
        await second.stop()

    total, distinct = await _count(db, table)
    assert (total, distinct) == (1000, 1000)
    # Per key, the records were applied in the order they were produced.
    rows = await db.fetch(f"SELECT k, array_agg(seq ORDER BY id) AS seqs FROM {table} GROUP BY k")
    for row in rows:
        assert row["seqs"] == sorted(row["seqs"])


async def test_replay_from_the_beginning_changes_nothing(env: Env, db: asyncpg.Pool[Any], table: str) -> None:
    topic = await _topic(env)
    await _produce(env, topic, range(300))
    first = await _consume(env, topic, "replay-a", Applier(db, table, "replay"))
    try:
        await _wait_rows(db, table, 300)
    finally:
        await first.stop()

    # A new Kafka group has no committed offsets and reads the topic again from the start; the
    # positions recorded in PostgreSQL (same consumer name) make every record a no-op.
    applier = Applier(db, table, "replay")
    again = await _consume(env, topic, "replay-b", applier)
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while applier.batches == 0 or await _lag(env, topic, "replay-b") > 0:
            assert asyncio.get_running_loop().time() < deadline, "replay did not finish"
            await asyncio.sleep(0.1)
    finally:
        await again.stop()
    assert await _count(db, table) == (300, 300)


async def test_failure_after_database_commit_is_redelivered_and_skipped(
    env: Env, db: asyncpg.Pool[Any], table: str
) -> None:
    topic = await _topic(env)
    await _produce(env, topic, range(400))
    applier = Applier(db, table, "fail-once", fail_after_commit=2)
    broker = await _consume(env, topic, "fail-once", applier)
    try:
        await _wait_rows(db, table, 400)
        await asyncio.sleep(0.5)
    finally:
        await broker.stop()
    assert applier.batches > 2  # the failed batch came back
    assert await _count(db, table) == (400, 400)


async def _lag(env: Env, topic: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=env.stack.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    done = sum(meta.offset for tp, meta in committed.items() if tp.topic == topic and meta.offset >= 0)
    return 300 - done


async def test_a_consumer_behind_takes_batches_as_large_as_its_partition_fetch_bytes(env: Env) -> None:
    """Records of 150 KiB waiting on one partition (as a list's envelopes of share intents wait for a sink
    that has fallen behind): with 256 KiB per partition and fetch a batch holds one producer batch (at
    most three records of 512 KiB), with 8 MiB one batch can take them all."""
    topic = await _topic(env, partitions=1)
    records = 24
    producer = _broker(env)
    await producer.start()
    try:
        await publish_all(producer, topic, [Outgoing(b"list", bytes([65 + i]) * (150 * 1024)) for i in range(records)])
    finally:
        await producer.stop()

    async def batch_sizes(fetch_bytes: int) -> list[int]:
        sizes: list[int] = []

        async def handle(batch: Sequence[Record]) -> None:
            sizes.append(len(batch))

        broker = _broker(env)
        register_batch_consumer(
            broker,
            topic=topic,
            group_id=f"{topic}.fetch-{fetch_bytes}",
            consumer=f"fetch-{fetch_bytes}",
            handle=handle,
            max_records=1000,
            batch_timeout_ms=200,
            max_partition_fetch_bytes=fetch_bytes,
        )
        await broker.start()
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while sum(sizes) < records:
                assert asyncio.get_running_loop().time() < deadline, f"consumed {sum(sizes)} of {records}"
                await asyncio.sleep(0.05)
        finally:
            await broker.stop()
        assert sum(sizes) == records
        return sizes

    assert max(await batch_sizes(256 * 1024)) <= 3
    assert max(await batch_sizes(8 * 1024 * 1024)) >= 12
