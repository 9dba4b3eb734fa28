"""libs/common's producer, without a broker: the settings it is built with, publish_all's semantics
(every record sent before any ack is awaited, acks in order, a failure propagates and is counted),
group_by_partition, and FastStream's test double still served. tests/integration/test_kafka_roundtrip.py
runs the same against a real Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import RecordMetadata, TopicPartition
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import REGISTRY

from cte_common.kafka import Outgoing, PatientKafkaBroker, group_by_partition, make_broker, partition_of, publish_all
from cte_common.settings import CommonSettings

PARTITIONS = {0, 1, 2, 3, 4, 5}


class Producer:
    """aiokafka's producer as publish_all sees it: ``send`` queues a record and returns a future the
    broker's acknowledgement resolves. Here nothing is acknowledged before ``batch`` records were sent,
    so a publish that awaited each record before sending the next would wait forever."""

    def __init__(self, batch: int, fail_at: int | None = None) -> None:
        self.batch = batch
        self.fail_at = fail_at
        self.sent: list[tuple[str, bytes, bytes | None, int | None, Any]] = []
        self.futures: list[asyncio.Future[RecordMetadata]] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, *, partition: int | None = None, headers: Any = None
    ) -> asyncio.Future[RecordMetadata]:
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, value, key, partition, headers))
        self.futures.append(future)
        if len(self.sent) == self.batch:
            for offset, (f, (t, _, k, p, _)) in enumerate(zip(self.futures, self.sent, strict=True)):
                if offset == self.fail_at:
                    f.set_exception(KafkaTimeoutError())
                    continue
                chosen = p if p is not None else partition_of(k, sorted(PARTITIONS), sorted(PARTITIONS))
                f.set_result(RecordMetadata(t, chosen, TopicPartition(t, chosen), offset, None, 0, 0))
        return future

    async def partitions_for(self, topic: str) -> set[int]:
        return PARTITIONS


def broker_with(producer: Producer) -> PatientKafkaBroker:
    broker = make_broker(CommonSettings.model_construct(), client_id="unit")
    broker.producer = producer
    return broker


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_producer_is_idempotent_acks_all_with_our_partitioner() -> None:
    broker = make_broker(CommonSettings.model_construct(kafka_bootstrap="kafka:9092"), client_id="svc")
    assert broker.producer is None  # created by start, not before
    options = broker.producer_options
    assert (options["bootstrap_servers"], options["client_id"]) == ("kafka:9092", "svc")
    # Durable once acknowledged, never duplicated by a retry, keys where aiokafka's default puts them.
    assert (options["enable_idempotence"], options["acks"], options["partitioner"]) == (True, "all", partition_of)


async def test_every_record_is_sent_before_the_acks_are_awaited() -> None:
    producer = Producer(batch=3)
    messages = [
        Outgoing(b"a.example", b"1"),
        Outgoing(b"b.example", b"2", headers={"dlq-reason": "why"}),
        Outgoing(b"c.example", b"3", partition=4),
    ]
    sent_before = sample("cte_kafka_published_records_total", topic="t.unit", status="success")
    observed_before = sample("cte_kafka_publish_duration_seconds_count", topic="t.unit")

    acks = await asyncio.wait_for(publish_all(broker_with(producer), "t.unit", messages), timeout=5)

    assert [a.offset for a in acks] == [0, 1, 2]  # in the order of the messages
    assert acks[2].partition == 4
    assert producer.sent == [
        ("t.unit", b"1", b"a.example", None, None),
        ("t.unit", b"2", b"b.example", None, [("dlq-reason", b"why")]),
        ("t.unit", b"3", b"c.example", 4, None),
    ]
    assert sample("cte_kafka_published_records_total", topic="t.unit", status="success") == sent_before + 3
    assert sample("cte_kafka_publish_duration_seconds_count", topic="t.unit") == observed_before + 1


async def test_a_failed_ack_propagates_and_is_counted() -> None:
    producer = Producer(batch=4, fail_at=2)
    failed_before = sample("cte_kafka_publish_failures_total", topic="t.fail", exception_type="KafkaTimeoutError")
    errors_before = sample("cte_kafka_published_records_total", topic="t.fail", status="error")

    with pytest.raises(KafkaTimeoutError):
        await publish_all(broker_with(producer), "t.fail", [Outgoing(f"k{i}".encode(), b"v") for i in range(4)])

    assert len(producer.sent) == 4
    after = sample("cte_kafka_publish_failures_total", topic="t.fail", exception_type="KafkaTimeoutError")
    assert after == failed_before + 1
    assert sample("cte_kafka_published_records_total", topic="t.fail", status="error") == errors_before + 4
    assert sample("cte_kafka_published_records_total", topic="t.fail", status="success") == 0


async def test_nothing_to_publish_sends_nothing() -> None:
    producer = Producer(batch=1)
    assert await publish_all(broker_with(producer), "t.none", []) == []
    assert producer.sent == []


async def test_keys_are_grouped_by_the_partition_the_producer_gives_them() -> None:
    keys = [f"value-{i}.example" for i in range(300)]
    groups = await group_by_partition(broker_with(Producer(batch=0)), "t.unit", keys)
    assert [p for p, _ in groups] == sorted(PARTITIONS)
    partitions = list(PARTITIONS)
    for partition, members in groups:
        assert members
        assert all(partition_of(k.encode(), partitions, partitions) == partition for k in members)
    assert sorted(k for _, members in groups for k in members) == sorted(keys)


async def test_a_broker_not_started_refuses_to_publish() -> None:
    broker = make_broker(CommonSettings.model_construct(), client_id="unit")
    with pytest.raises(Exception, match="connect"):
        await publish_all(broker, "t.unit", [Outgoing(b"k", b"v")])


async def test_faststreams_test_broker_still_delivers() -> None:
    broker = make_broker(CommonSettings.model_construct(), client_id="unit")
    received: list[tuple[bytes, dict[str, str]]] = []

    @broker.subscriber("t.double")
    async def on_message(msg: KafkaMessage) -> None:
        received.append((msg.body, {k: v for k, v in msg.headers.items() if k == "h"}))

    async with TestKafkaBroker(broker) as double:
        await publish_all(double, "t.double", [Outgoing(b"k1", b"v1"), Outgoing(b"k2", b"v2", headers={"h": "x"})])
        assert await group_by_partition(double, "t.double", ["a", "b"]) == [(None, ["a"]), (None, ["b"])]
    assert received == [(b"v1", {}), (b"v2", {"h": "x"})]
