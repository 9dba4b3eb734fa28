"""Envelopes on the indicator topic, against real Kafka and PostgreSQL: a POST publishes one record per
partition its values hash to, each event on the partition of its own value; the rule-engine reads
envelopes and the single-event records older producers write (a rolling upgrade), in order; a poison
envelope is parked whole with the reason, and ``cte-dlq replay`` hands an envelope parked by a
rule-engine that did not know envelopes back to one that does."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from cte_common.consumer import Record, Rejected, publish_dead_letters
from cte_common.dlq import read_dead_letters, replay
from cte_common.envelope import envelope_values
from cte_common.events import IndicatorDelete, IndicatorSighting, encode
from cte_common.indicators import IndicatorType
from cte_common.kafka import Outgoing, murmur2, publish_all
from cte_common.settings import CommonSettings
from cte_common.topics import INDICATOR_EVENTS
from rule_engine.handlers import CONSUMER
from tests.conftest import Env
from tests.support.component import System

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def sighting(value: str, source: str) -> IndicatorSighting:
    return IndicatorSighting(
        value=value, type=IndicatorType.DOMAIN, source=source, first_seen=NOW, last_seen=NOW, from_api=True
    )


def partition(value: str) -> int:
    return (murmur2(value.encode()) & 0x7FFFFFFF) % INDICATOR_EVENTS.partitions


async def records_after(env: Env, topic: str, ends: dict[int, int]) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every record past ``ends`` (the topic's end offsets before)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=env.stack.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(INDICATOR_EVENTS.partitions)]
        consumer.assign(tps)
        latest = await consumer.end_offsets(tps)
        out = []
        for tp in tps:
            if latest[tp] > ends.get(tp.partition, 0):
                consumer.seek(tp, ends.get(tp.partition, 0))
                while (await consumer.position(tp)) < latest[tp]:
                    for r in (await consumer.getmany(tp, timeout_ms=2000)).get(tp, []):
                        out.append((tp.partition, r.key, r.value))
        return out
    finally:
        await consumer.stop()


async def end_offsets(env: Env, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=env.stack.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(INDICATOR_EVENTS.partitions)]
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def test_a_post_publishes_one_envelope_per_partition(env: Env, system: System) -> None:
    await system.configure({"name": "ENV"})
    topic = system.topics.indicator_events
    before = await end_offsets(env, topic)
    values = [f"env-{i}.example" for i in range(60)]
    r = await system.api.post(
        "/api/cte/indicators/", json=[{"value": v, "type": "domain", "source": "ENV"} for v in values]
    )
    assert r.status_code == 201, r.text
    assert [i["value"] for i in r.json()] == values
    records = await records_after(env, topic, before)
    assert len(records) == len({partition(v) for v in values}) < len(values)
    seen = []
    for p, key, value in records:
        envelope = json.loads(value)
        assert envelope["envelope"] == 2
        in_it = [e["value"] for e in envelope["events"]]
        assert key.decode() == in_it[0]
        assert {partition(v) for v in in_it} == {p}
        assert in_it == [v for v in values if partition(v) == p], "in the request's order"
        seen += in_it
    assert sorted(seen) == sorted(values)
    await system.apply_pending()
    assert all([await system.indicator(v) for v in values[:5]])


async def test_the_rule_engine_reads_single_events_and_envelopes_in_order(env: Env, system: System) -> None:
    """What an old ingest-api (one event a record) and a new one (envelopes) write, read alike."""
    await system.configure({"name": "MIXED"})
    topic = system.topics.indicator_events
    old, new, gone = "old-producer.example", "new-producer.example", "deleted-in-envelope.example"
    same = [v for v in (f"pad-{i}.example" for i in range(200)) if partition(v) == partition(gone)][:1]
    # An old record, an envelope, and an envelope in which an indicator is sighted and then deleted.
    await publish_all(system.broker, topic, [Outgoing(key=old.encode(), value=encode(sighting(old, "MIXED")))])
    [(_, envelope)] = envelope_values([encode(sighting(new, "MIXED"))])
    await publish_all(system.broker, topic, [Outgoing(key=new.encode(), value=envelope)])
    events = [encode(sighting(gone, "MIXED")), encode(sighting(same[0], "MIXED")), encode(IndicatorDelete(value=gone))]
    [(_, ordered)] = envelope_values(events)
    await publish_all(system.broker, topic, [Outgoing(key=gone.encode(), value=ordered)])
    await system.apply_pending()
    assert await system.indicator(old) is not None
    assert await system.indicator(new) is not None
    assert await system.indicator(same[0]) is not None
    assert await system.indicator(gone) is None, "the delete after the sighting, in the envelope's order"


async def test_a_poison_envelope_is_parked_whole_with_the_reason(env: Env, system: System) -> None:
    await system.configure({"name": "POISON"})
    topic = system.topics.indicator_events
    good = encode(sighting("good-in-poison.example", "POISON"))
    [(_, envelope)] = envelope_values([good, b'{"kind": "sighting", "value": "no-type.example"}'])
    [ack] = await publish_all(system.broker, topic, [Outgoing(key=b"good-in-poison.example", value=envelope)])
    await system.apply_pending()
    letters = [d for d in await read_dead_letters(env.stack.kafka_bootstrap, system.topics) if d.consumer == CONSUMER]
    [letter] = [d for d in letters if d.origin_offset == ack.offset and d.partition == ack.partition]
    assert letter.value == envelope, "the whole envelope, as it was"
    assert "events.1" in letter.reason
    assert await system.indicator("good-in-poison.example") is None, "nothing of a parked envelope is applied"


async def test_an_envelope_parked_before_an_upgrade_is_applied_once_replayed(env: Env, system: System) -> None:
    """A rule-engine that does not know envelopes parks them (an unknown shape); replayed to one that
    does, each event is applied."""
    await system.configure({"name": "UPGRADE"})
    topic = system.topics.indicator_events
    value = "parked-by-an-old-consumer.example"
    [(_, envelope)] = envelope_values([encode(sighting(value, "UPGRADE"))])
    record = Record(topic, partition(value), 10**9, value.encode(), envelope, 0)
    old_reason = "kind: Unable to extract tag using discriminator 'kind'"
    await publish_dead_letters(system.broker, system.topics.dead_letter, CONSUMER, [Rejected(record, old_reason)])
    settings = CommonSettings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_bootstrap=env.stack.kafka_bootstrap,
        topic_prefix=env.topic_prefix,
    )
    assert await replay(settings, consumer=CONSUMER, topic=topic) >= 1
    await system.apply_pending()
    assert await system.indicator(value) is not None
