"""Poison messages: an undecodable or invalid event goes to the dead-letter topic with the reason,
the consumer keeps going, and an operator can list and replay dead letters (cte-dlq)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from cte_common.events import IndicatorSighting, encode
from cte_common.indicators import IndicatorType
from cte_common.kafka import Outgoing, make_broker, publish_all
from cte_common.settings import CommonSettings
from cte_common.topics import Topics
from tests.conftest import Env, Running
from tests.support.processes import VENV_BIN


def dlq(env: Env, *args: str) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "cte-dlq"), *args],
        env={**os.environ, **env.service_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


async def wait_for(db: asyncpg.Pool[Any], sql: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await db.fetchval(sql):
        assert time.monotonic() < deadline, sql
        time.sleep(0.1)


def sighting(value: str) -> IndicatorSighting:
    now = datetime.now(UTC)
    return IndicatorSighting(value=value, type=IndicatorType.DOMAIN, source="dlq-src", first_seen=now, last_seen=now)


async def test_poison_goes_to_the_dead_letter_topic_and_can_be_replayed(
    env: Env, services: Running, db: asyncpg.Pool[Any]
) -> None:
    topics = Topics(env.topic_prefix)
    broker = make_broker(CommonSettings(kafka_bootstrap=env.stack.kafka_bootstrap), client_id="dlq-test")
    await broker.start()
    try:
        await publish_all(
            broker,
            topics.indicator_events,
            [
                Outgoing(b"poison-1", b"\xff not json"),
                Outgoing(b"poison-2", json.dumps({"kind": "sighting", "value": "x"}).encode()),
                Outgoing(b"after.dlq.example", encode(sighting("after.dlq.example"))),
            ],
        )
        # The consumer went on past the poison: the good event behind it is applied.
        await wait_for(db, "SELECT count(*) FROM indicators WHERE value = 'after.dlq.example'")
        parked = [json.loads(line) for line in dlq(env, "list").splitlines()]
        poison = {p["key"]: p for p in parked}
        assert {"poison-1", "poison-2"} <= set(poison)
        assert poison["poison-1"]["consumer"] == "rule-engine.indicators"
        assert "Invalid JSON" in poison["poison-1"]["reason"] or "json" in poison["poison-1"]["reason"].lower()
        assert "type" in poison["poison-2"]["reason"]  # the missing fields are named
        assert poison["poison-2"]["origin"].startswith(topics.indicator_events)

        # A letter parked by a bug since fixed: a valid event with dead-letter headers. Replay applies it.
        fixed = sighting("fixed.dlq.example")
        await publish_all(
            broker,
            topics.dead_letter,
            [
                Outgoing(
                    b"fixed.dlq.example",
                    encode(fixed),
                    headers={
                        "dlq-consumer": "rule-engine.indicators",
                        "dlq-reason": "a bug, since fixed",
                        "dlq-topic": topics.indicator_events,
                        "dlq-partition": "0",
                        "dlq-offset": "0",
                    },
                )
            ],
        )
    finally:
        await broker.stop()
    assert "replayed" in dlq(env, "replay", "--consumer", "rule-engine.indicators")
    await wait_for(db, "SELECT count(*) FROM indicators WHERE value = 'fixed.dlq.example'")
    # The poison is still poison: replayed, it is parked again, with nothing else harmed.
    keys = [json.loads(line)["key"] for line in dlq(env, "list").splitlines()]
    assert keys.count("poison-1") == 2
