"""Every consumer parks what it cannot decode on the dead-letter topic, with the reason and where it came
from, and goes on with what follows; ``cte-dlq replay`` hands a letter back to its consumer.

The poison is published straight onto each consumer's topic, behind the API's validation, and the
system's own step gives it to the consumer's handler, as Kafka would: the rule-engine's indicator and
configuration consumers (``apply_pending``) and the sink's share-intent consumer (``push_lists``).
"""

from __future__ import annotations

from typing import Any

from cte_common.consumer import Record, Rejected, publish_dead_letters
from cte_common.db import Pool
from cte_common.dlq import DeadLetter, read_dead_letters, replay
from cte_common.envelope import envelope_values
from cte_common.events import ConfigChange, ShareIntentRecord, encode, encode_share_intent
from cte_common.indicators import IndicatorType
from cte_common.kafka import Outgoing, publish_all
from cte_common.settings import CommonSettings
from netskope_sink.lists.handlers import CONSUMER as SHARE_INTENTS_CONSUMER
from rule_engine.handlers import CONFIG_CONSUMER
from rule_engine.handlers import CONSUMER as INDICATORS_CONSUMER
from tests.conftest import Env
from tests.support.component import System

NOT_JSON = b"{not json"


async def letters(env: Env, system: System, consumer: str) -> list[DeadLetter]:
    return [d for d in await read_dead_letters(env.stack.kafka_bootstrap, system.topics) if d.consumer == consumer]


async def poison(system: System, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
    """The record published as it is; its partition and offset."""
    [ack] = await publish_all(system.broker, topic, [Outgoing(key=key, value=value)])
    return ack.partition, ack.offset


def parked(letter: DeadLetter, topic: str, origin: tuple[int, int], key: bytes, value: bytes) -> None:
    assert (letter.topic, (letter.partition, letter.origin_offset)) == (topic, origin)
    assert (letter.key, letter.value) == (key, value)
    assert letter.reason


async def test_the_indicator_consumer_parks_what_it_cannot_decode(env: Env, system: System) -> None:
    topic = system.topics.indicator_events
    origin = await poison(system, topic, b"poison.example", NOT_JSON)
    await system.configure({"name": "DLQ"})
    await system.post_indicators([{"value": "after-poison.example", "type": "domain", "source": "DLQ"}])
    [letter] = await letters(env, system, INDICATORS_CONSUMER)
    parked(letter, topic, origin, b"poison.example", NOT_JSON)
    assert "json" in letter.reason.lower()
    assert await system.indicator("after-poison.example") is not None, "the event behind the poison is applied"


async def test_the_configuration_consumer_parks_what_it_cannot_decode(env: Env, system: System) -> None:
    topic = system.topics.config_changes
    missing_key = b'{"resource": "business_rule"}'
    origin = await poison(system, topic, b"business_rule:poison", missing_key)
    await system.apply_pending()
    [letter] = await letters(env, system, CONFIG_CONSUMER)
    parked(letter, topic, origin, b"business_rule:poison", missing_key)
    assert "key: Field required" in letter.reason
    # The change behind it is applied: an allow-list entry requests a re-evaluation.
    r = await system.api.post("/api/cte/allow_list", json={"kind": "exact", "pattern": "behind-poison.example"})
    assert r.status_code == 201, r.text
    await system.apply_pending()
    assert any("allow_list:" in job["reason"] for job in await reevaluations(system))


async def test_the_share_intent_consumer_parks_what_it_cannot_decode(env: Env, system: System) -> None:
    topic = system.topics.share_intents
    origin = await poison(system, topic, b"list:poison", b'{"add": "maybe"}')
    await system.push_lists()
    [letter] = await letters(env, system, SHARE_INTENTS_CONSUMER)
    parked(letter, topic, origin, b"list:poison", b'{"add": "maybe"}')


async def test_a_replayed_letter_reaches_its_consumer_again(env: Env, system: System) -> None:
    """A letter parked by a bug since fixed (a valid change) is applied once replayed; the poison,
    replayed with it, is parked again and harms nothing."""
    topic = system.topics.config_changes
    fixed = encode(ConfigChange(resource="allow_list", key="replayed-entry", body=None))
    record = Record(topic, 0, 10**9, b"allow_list:replayed-entry", fixed, 0)
    await publish_dead_letters(system.broker, system.topics.dead_letter, CONFIG_CONSUMER, [Rejected(record, "a bug")])
    before = await letters(env, system, CONFIG_CONSUMER)

    settings = CommonSettings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_bootstrap=env.stack.kafka_bootstrap,
        topic_prefix=env.topic_prefix,
    )
    assert await replay(settings, consumer=CONFIG_CONSUMER, topic=None) == len(before)
    await system.apply_pending()

    assert any(job["reason"] == "allow_list:replayed-entry" for job in await reevaluations(system))
    after = await letters(env, system, CONFIG_CONSUMER)
    again = after[len(before) :]
    assert [d.value for d in again] == [d.value for d in before if d.value != fixed]
    assert all(d.topic == topic for d in again)


async def reevaluations(system: System) -> list[dict[str, Any]]:
    r = await system.api.get("/api/cte/reevaluations")
    assert r.status_code == 200, r.text
    return list(r.json())


async def test_the_share_intent_consumer_reads_single_intents_and_envelopes_and_parks_a_bad_envelope_whole(
    env: Env, system: System, db: Pool
) -> None:
    """What an older rule-engine (one intent a record) and a newer one (envelopes) write, read alike and in
    order; an envelope with one bad intent is parked whole, and none of its intents is applied."""
    topic = system.topics.share_intents
    key = "dlq-tenant/url/dlq-mixed"

    def intent(value: str, *, add: bool = True) -> bytes:
        return encode_share_intent(ShareIntentRecord(list_key=key, value=value, type=IndicatorType.DOMAIN, add=add))

    single = intent("single.example")
    [(_, envelope)] = envelope_values([intent("enveloped.example"), intent("single.example", add=False)])
    [(_, bad)] = envelope_values(
        [intent("in-bad-envelope.example"), intent("x.example").replace(b'"add":true', b'"add":"maybe"')]
    )
    [(_, later)] = envelope_values([intent("after-bad.example")])
    acks = await publish_all(
        system.broker, topic, [Outgoing(key=key.encode(), value=v) for v in (single, envelope, bad, later)]
    )
    await system.take_intents()
    members = await db.fetch("SELECT value FROM list_members WHERE list_key = $1", key)
    assert sorted(m["value"] for m in members) == ["after-bad.example", "enveloped.example"]
    bad_ack = acks[2]
    [letter] = [
        d
        for d in await letters(env, system, SHARE_INTENTS_CONSUMER)
        if (d.partition, d.origin_offset) == (bad_ack.partition, bad_ack.offset)
    ]
    parked(letter, topic, (bad_ack.partition, bad_ack.offset), key.encode(), bad)
    assert letter.reason.startswith("events.1.add")
