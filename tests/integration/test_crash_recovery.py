"""kill -9 of the rule-engine: what was accepted is applied once, with the right content, after restart."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx

from tests.conftest import Running
from tests.integration.test_api_first_path import token


async def _wait_count(db: asyncpg.Pool[Any], sql: str, expected: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = await db.fetchval(sql)
        if got == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"{sql!r} gave {got}, expected {expected}")


async def test_killed_rule_engine_applies_accepted_indicator_exactly_once(
    services: Running, db: asyncpg.Pool[Any]
) -> None:
    client = httpx.Client(base_url=services.api_url, headers={"Authorization": f"Bearer {token(services.api_url)}"})
    client.post("/api/cte/configurations", json={"name": "crash-src", "plugin": "api_source", "ageAfterDays": 0})

    services.rule_engine.kill()
    r = client.post(
        "/api/cte/indicators/",
        params={"wait": "false"},  # accepted while nothing projects: nothing to wait for
        json=[{"value": "crash.example", "type": "domain", "source": "crash-src", "severity": "critical"}],
    )
    assert r.status_code == 201  # accepted while nothing projects: Kafka holds it
    time.sleep(0.3)
    assert await db.fetchval("SELECT count(*) FROM indicators WHERE value = 'crash.example'") == 0

    services.rule_engine.start()
    await _wait_count(db, "SELECT count(*) FROM indicators WHERE value = 'crash.example'", 1)
    row = await db.fetchrow(
        "SELECT i.external_hits, i.expires_at, s.severity, s.external_hits AS source_hits "
        "FROM indicators i JOIN indicator_sources s USING (value) WHERE value = 'crash.example'"
    )
    assert row is not None
    assert (row["external_hits"], row["source_hits"], row["severity"]) == (1, 1, "critical")
    assert row["expires_at"] is None  # Aging Criteria 0: never expires


async def test_kill_during_a_large_batch_applies_each_event_once(services: Running, db: asyncpg.Pool[Any]) -> None:
    client = httpx.Client(
        base_url=services.api_url, headers={"Authorization": f"Bearer {token(services.api_url)}"}, timeout=60
    )
    client.post("/api/cte/configurations", json={"name": "bulk-src", "plugin": "api_source"})
    values = [f"host-{n}.bulk.example" for n in range(6000)]
    for start in range(0, len(values), 1000):
        chunk = [{"value": v, "type": "hostname", "source": "bulk-src"} for v in values[start : start + 1000]]
        assert client.post("/api/cte/indicators/", params={"wait": "false"}, json=chunk).status_code == 201
    # Kill while it is projecting (whatever it has done so far), then restart.
    deadline = time.monotonic() + 20
    while await db.fetchval("SELECT count(*) FROM indicators WHERE source = 'bulk-src'") < 500:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    services.rule_engine.kill()
    services.rule_engine.start()
    await _wait_count(db, "SELECT count(*) FROM indicators WHERE source = 'bulk-src'", 6000)
    # Every indicator was sighted once: a re-applied event would have made a hit count of 2.
    assert await db.fetchval("SELECT max(external_hits) FROM indicators WHERE source = 'bulk-src'") == 1
    assert await db.fetchval("SELECT sum(external_hits) FROM indicator_sources WHERE source = 'bulk-src'") == 6000
