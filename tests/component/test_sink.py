"""The sink's share-intent handler and list flusher against the fake tenant in process: what the
sharings select reaches the tenant's URL and file hash lists, removals and expiries leave them, and what
the cap leaves out or the tenant refuses shows as tags, sharedWith and destinations, derived from the
list state when indicators are read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cte_common.db import Pool
from cte_common.sharing import MIB, Candidate, cost_bytes, select_within_cap
from netskope_sink.lists import repository
from tests.support.component import System
from tests.support.lists import drop_list

MD5 = "0cc175b9c0f1b6a831c399e269772661"
SHA = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module", autouse=True)
async def destination(system: System) -> str:
    """The default rule "All" sharing "sink-src" to a new URL list and an existing file hash list."""
    assert (await system.tenant.post("/_sim/filehashlists", json={"name": "sink-hashes"})).status_code == 201
    destination = await system.netskope_destination("sink-tenant")
    await system.configure({"name": "sink-src", "ageAfterDays": 0})
    common = {"sourceConfiguration": "sink-src", "businessRule": "All", "destinationConfiguration": destination}
    await system.share({**common, "action": "url", "parameters": {"list": "create", "name": "sink-urls"}})
    await system.share({**common, "action": "file", "parameters": {"file_list": "sink-hashes"}})
    await system.apply_pending()
    return destination


async def post(system: System, items: list[dict[str, Any]], source: str = "sink-src") -> None:
    await system.post_indicators([{"source": source, **i} for i in items])


async def tenant_lists(system: System) -> dict[str, set[str]]:
    """Every list on the tenant: a URL list as deployed, a file hash list as held."""
    state = (await system.tenant.get("/_sim/state")).json()
    urls = {name: set(lst["deployed"]) for name, lst in state["urllists"].items()}
    return {**urls, **{name: set(values) for name, values in state["filehashlists"].items()}}


async def tags(system: System, value: str) -> list[str]:
    item = await system.indicator(value)
    assert item is not None
    return list(item["tags"])


async def matching(system: System, filters: dict[str, Any], prefix: str) -> set[str]:
    """The values starting with ``prefix`` that GET /api/cte/indicators/ answers for ``filters``."""
    r = await system.api.get("/api/cte/indicators/", params={"filters": json.dumps(filters), "limit": 100})
    assert r.status_code == 200, r.text
    return {i["value"] for i in r.json() if i["value"].startswith(prefix)}


async def test_shared_indicators_reach_the_tenant_lists(system: System, db: Pool) -> None:
    await post(
        system,
        [
            {"value": "https://phish.example/login", "type": "url"},
            {"value": "bad-domain.example", "type": "domain"},
            {"value": "203.0.113.7", "type": "ipv4"},
            {"value": MD5, "type": "md5"},
            {"value": SHA, "type": "sha256"},
        ],
    )
    assert await system.push_lists() == 2
    lists = await tenant_lists(system)
    # A URL list holds URLs without their scheme.
    assert lists["sink-urls"] == {"phish.example/login", "bad-domain.example", "203.0.113.7"}
    assert lists["sink-hashes"] == {MD5, SHA}
    pushed = await db.fetchval("SELECT count(*) FROM list_pushed")
    assert pushed == 5
    # Nothing changed since: nothing is due, and the tenant hears nothing.
    calls = (await system.tenant.get("/_sim/requests")).json()["total"]
    assert await system.push_lists() == 0
    assert (await system.tenant.get("/_sim/requests")).json()["total"] == calls


async def test_retraction_and_deletion_leave_the_lists(system: System) -> None:
    body = {"value": "https://phish.example/login", "source": "sink-src", "retracted": True}
    assert (await system.api.patch("/api/cte/indicators/", json=body)).status_code == 201
    await system.api.request("DELETE", "/api/cte/indicators/bulk", json={"values": [MD5]})
    await system.apply_pending()
    assert await system.push_lists() == 2
    lists = await tenant_lists(system)
    assert lists["sink-urls"] == {"bad-domain.example", "203.0.113.7"}
    assert lists["sink-hashes"] == {SHA}


async def test_expiry_by_the_ager_leaves_the_lists(system: System) -> None:
    await post(
        system, [{"value": "expiring.example", "type": "domain", "expiresAt": (NOW + timedelta(hours=1)).isoformat()}]
    )
    await system.push_lists()
    assert "expiring.example" in (await tenant_lists(system))["sink-urls"]
    assert await system.sweep(NOW + timedelta(hours=2)) == 1
    assert await system.push_lists() == 1
    assert (await tenant_lists(system))["sink-urls"] == {"bad-domain.example", "203.0.113.7"}


async def test_an_entry_the_list_cannot_hold_is_tagged_invalid_host(system: System) -> None:
    # (the sink's pre-check leaves it out before any push; tests/component/test_url_precheck.py)
    await post(
        system, [{"value": "bad_host.example", "type": "domain"}, {"value": "good-host.example", "type": "domain"}]
    )
    await system.push_lists()
    urls = (await tenant_lists(system))["sink-urls"]
    assert "good-host.example" in urls
    assert "bad_host.example" not in urls
    assert await tags(system, "bad_host.example") == ["Invalid host"]
    assert await tags(system, "good-host.example") == []


async def test_what_the_cap_leaves_out_is_tagged_unshared_until_it_fits(system: System, destination: str) -> None:
    await system.configure({"name": "capped-src", "ageAfterDays": 0})
    values = [f"capped-{n}.example" for n in range(3)]  # equal lengths: equal costs
    cap_mb = (1 + 2 * cost_bytes(values[0]) + cost_bytes(values[0]) // 2) / MIB  # room for two
    await system.share(
        {
            "sourceConfiguration": "capped-src",
            "businessRule": "All",
            "destinationConfiguration": destination,
            "action": "url",
            "parameters": {"list": "capped-urls", "max_url_list_cap": cap_mb},
        }
    )
    # The priority is the last sighting: the oldest is left out.
    await post(
        system,
        [
            {"value": v, "type": "domain", "lastSeen": (NOW - timedelta(hours=n)).isoformat()}
            for n, v in enumerate(values)
        ],
        source="capped-src",
    )
    await system.push_lists()
    assert (await tenant_lists(system))["capped-urls"] == set(values[:2])
    assert await tags(system, values[2]) == ["Unshared"]
    assert await tags(system, values[0]) == []
    # sharedWith and the destinations are read from the list state too, and filters see them.
    kept, left = await system.indicator(values[0]), await system.indicator(values[2])
    assert kept is not None
    assert left is not None
    assert kept["sharedWith"] == [destination]
    assert kept["sources"][0]["destinations"] == [{"name": destination, "status": "shared"}]
    assert left["sharedWith"] == []
    assert left["sources"][0]["destinations"] == [{"name": destination, "status": "failed"}]
    assert await matching(system, {"sharedWith": {"$in": [destination]}}, "capped-") == set(values[:2])
    assert await matching(system, {"sharedWith": {"$nin": [destination]}}, "capped-") == {values[2]}
    unshared = {"sources": {"$elemMatch": {"tags": {"$in": ["Unshared"]}}}}
    assert await matching(system, unshared, "capped-") == {values[2]}
    not_unshared = {"sources": {"$elemMatch": {"tags": {"$nin": ["Unshared"]}}}}
    assert await matching(system, not_unshared, "capped-") == set(values[:2])
    # Room again: the one left out enters the list and loses its tag.
    await system.api.request("DELETE", "/api/cte/indicators/bulk", json={"values": [values[0]]})
    await system.apply_pending()
    await system.push_lists()
    assert (await tenant_lists(system))["capped-urls"] == set(values[1:])
    assert await tags(system, values[2]) == []


async def test_each_sharing_has_a_list_status(system: System) -> None:
    """GET /api/cte/sharing/status and /{id}/status: what each list holds on its tenant, as the sink
    recorded it, with what is left out and why."""
    r = await system.api.get("/api/cte/sharing/status")
    assert r.status_code == 200, r.text
    statuses = {s["listName"]: s for s in r.json()}
    lists = await tenant_lists(system)
    urls, hashes, capped = statuses["sink-urls"], statuses["sink-hashes"], statuses["capped-urls"]
    assert set(urls) == {
        "sharingId", "sharingName", "tenant", "listName", "listType", "state", "entries", "bytes", "capBytes",
        "fill", "foreign", "leftOut", "pendingChanges", "lastPushAt", "lastReadBackAt", "lastError", "failures",
        "nextAttemptAt",
    }  # fmt: skip
    assert (urls["listType"], hashes["listType"], urls["tenant"]) == ("url", "file_hash", "sink-tenant")
    assert urls["state"] == "ok"
    assert urls["pendingChanges"] == 0
    assert urls["entries"] == len(lists["sink-urls"])
    assert hashes["entries"] == len(lists["sink-hashes"])
    assert (urls["leftOut"]["invalid"], urls["leftOut"]["rejected"]) == (1, 0)  # bad_host.example
    assert capped["leftOut"]["cap"] == 0  # room again after the deletion
    assert urls["capBytes"] == 7 * MIB
    assert urls["fill"] == pytest.approx(urls["bytes"] / urls["capBytes"])
    assert urls["lastPushAt"] is not None
    assert urls["lastError"] is None
    one = await system.api.get(f"/api/cte/sharing/{urls['sharingId']}/status")
    assert one.status_code == 200
    assert one.json() == urls
    assert (await system.api.get("/api/cte/sharing/999999/status")).status_code == 404
    # A change not pushed yet is pending.
    await post(system, [{"value": "pending-status.example", "type": "domain"}])
    await system.take_intents()
    pending = (await system.api.get(f"/api/cte/sharing/{urls['sharingId']}/status")).json()
    assert (pending["state"], pending["pendingChanges"]) == ("pending", 1)
    assert pending["nextAttemptAt"] is not None
    await system.push_lists()


async def test_the_selection_in_postgresql_is_the_reference_selection(db: Pool) -> None:
    """prepare_push's selection from the start of the order (a running byte count in SQL, read only as
    far as the cap reaches) keeps exactly what select_within_cap keeps: ties broken by the value in code
    point order, refused values never candidates, the entry limit, URL entries without their scheme and
    no IPv6. (tests/component/test_list_cut.py compares the incremental push with it.)"""
    key = "sel-tenant/url/selection"
    rng = random.Random(7)
    values = [
        f"{rng.choice(['', 'http://', 'https://'])}{rng.choice(['a', 'B', 'é', 'z'])}{n}.example" for n in range(400)
    ]
    members = [(v, float(rng.choice([1, 2, 3])), cost_bytes(v)) for v in values]
    members.append(("2001:db8::7", 3.0, cost_bytes("2001:db8::7")))
    refused = {values[3], values[10]}
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO list_state (list_key) VALUES ($1)", key)
        await conn.executemany(
            "INSERT INTO list_members (list_key, value, type, priority, cost_bytes) VALUES ($1, $2, $3, $4, $5)",
            [(key, v, "ipv6" if ":" in v and "//" not in v else "url", p, c) for v, p, c in members],
        )
        await conn.executemany(
            "INSERT INTO list_outcomes (list_key, value, outcome, reason) VALUES ($1, $2, 'rejected', 'x')",
            [(key, v) for v in refused],
        )
        usable = [Candidate(v, p, c) for v, p, c in members if v not in refused]
        for cap, limit in ((1 + sum(c for _, _, c in members) // 3, 300_000), (10**9, 50)):
            prepared = await repository.prepare_push(
                conn, key, cap_bytes=cap, max_entries=limit, url_list=True, uncertain=True
            )
            kept, left = select_within_cap(usable, cap, limit)
            assert prepared.whole
            assert prepared.kept == len(kept)
            assert prepared.bytes == 1 + sum(c.cost for c in kept)
            assert (prepared.cut.priority, prepared.cut.value) == (kept[-1].priority, kept[-1].value)
            assert prepared.left_out == len(left)
            appended = await conn.fetch(
                "SELECT value, entry FROM push_changes WHERE list_key = $1 AND change = 'append'", key
            )
            want = {c.value: c.value.partition("://")[2] or c.value for c in kept if c.value != "2001:db8::7"}
            assert {r["value"]: r["entry"] for r in appended} == want
        await repository.forget_push(conn, key)
        await drop_list(conn, key)


async def test_a_tenant_s_url_lists_and_file_hash_lists_are_pushed_side_by_side(system: System) -> None:
    """A file hash list's call (v1, the whole list each time) does not hold back the URL lists' calls
    (v2), nor the other way round: with every tenant call held for a while, the two overlap in time
    (one after the other, they never would)."""
    await post(
        system,
        [
            {"value": "side-by-side.example", "type": "domain"},
            {"value": "9e107d9d372bb6826bd81d3542a419d6", "type": "md5"},
        ],
    )
    since = await system.tenant_calls()
    assert (await system.tenant.put("/_sim/faults", json={"latency_ms": 400})).status_code == 200
    try:
        assert await system.push_lists() == 2
    finally:
        assert (await system.tenant.put("/_sim/faults", json={})).status_code == 200
    calls = await system.tenant_calls_since(since)

    def held(c: dict[str, Any]) -> tuple[float, float]:
        return c["time"], c["time"] + c["duration_ms"] / 1000

    file_calls = [held(c) for c in calls if c["path"] == "/api/v1/updateFileHashList"]
    url_calls = [c for c in calls if c["path"].startswith("/api/v2/policy/urllist")]
    assert len(file_calls) == 1, calls
    assert {c["method"] for c in url_calls} >= {"GET", "PATCH", "POST"}, calls  # names, append, deploy
    file_start, file_end = file_calls[0]
    assert any(start < file_end and end > file_start for start, end in map(held, url_calls)), calls
    lists = await tenant_lists(system)
    assert "side-by-side.example" in lists["sink-urls"]
    assert "9e107d9d372bb6826bd81d3542a419d6" in lists["sink-hashes"]


async def test_a_file_hash_list_replaced_whole_waits_as_long_as_its_push_took(system: System, db: Pool) -> None:
    """Each push of a file hash list rewrites the whole list on the tenant: a list fed without a pause
    waits after a push in proportion to what it took (file_replace_pacing), and is pushed when that wait
    ends, without another wake and long before the flush interval."""
    first, second = "4a8a08f09d37b73795649038408b5f33", "8277e0910d750195b448797616e091ad"
    flusher = system.flusher
    saved = flusher.settings
    flusher.settings = saved.model_copy(update={"file_replace_pacing": 3.0, "flush_interval_seconds": 60.0})
    task: asyncio.Task[None] | None = None
    try:
        await post(system, [{"value": first, "type": "md5"}])
        assert (await system.tenant.put("/_sim/faults", json={"latency_ms": 1000})).status_code == 200
        try:
            await system.push_lists()
        finally:
            assert (await system.tenant.put("/_sim/faults", json={})).status_code == 200
        assert first in (await tenant_lists(system))["sink-hashes"]
        async with db.acquire() as conn:
            waits = await conn.fetchval(
                "SELECT extract(epoch FROM next_attempt_at - last_push_at) FROM list_state WHERE list_key = $1",
                "sink-tenant/file/sink-hashes",
            )
        assert waits >= 3.0  # three times the second the tenant took to answer, at least

        await post(system, [{"value": second, "type": "md5"}])
        await system.push_lists()  # the file hash list is not due yet
        assert second not in (await tenant_lists(system))["sink-hashes"]
        async with db.acquire() as conn:
            assert 0 < (await repository.next_attempt_in(conn) or 0) <= waits

        started = time.monotonic()
        task = asyncio.create_task(flusher.run_forever())
        while second not in (await tenant_lists(system))["sink-hashes"]:
            assert time.monotonic() - started < 20, "the paced list was not pushed when its wait ended"
            await asyncio.sleep(0.1)
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        flusher.settings = saved


async def test_intents_applied_while_a_round_runs_wake_the_next_round(system: System) -> None:
    """A round that found nothing due does not swallow the wake of intents applied while it ran: their
    list is pushed by the next round, not after the flush interval."""
    value = "woken-by-a-round.example"
    flusher = system.flusher
    saved = flusher.settings
    flusher.settings = saved.model_copy(update={"flush_interval_seconds": 60.0})
    own_round = flusher._flush_round
    rounds = 0

    async def intents_arrive_during_the_first_round() -> tuple[int, int]:
        nonlocal rounds
        rounds += 1
        result = await own_round()
        if rounds == 1:
            assert result == (0, 0)  # nothing was due when it looked
            await post(system, [{"value": value, "type": "domain"}])
            await system.take_intents()  # the consumer applies them and wakes the flusher
        return result

    await system.push_lists()  # nothing is due when the flusher starts
    flusher._flush_round = intents_arrive_during_the_first_round  # type: ignore[method-assign]
    task = asyncio.create_task(flusher.run_forever())
    try:
        started = time.monotonic()
        while value not in (await tenant_lists(system)).get("sink-urls", set()):
            assert time.monotonic() - started < 20, "the intents' wake was lost: the list waits for the interval"
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        del flusher._flush_round
        flusher.settings = saved


async def test_a_push_that_fails_outside_the_tenant_is_logged_with_its_type_and_traceback(
    system: System, db: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """A push that fails on anything but the tenant's answer (here the TimeoutError of a statement that
    outlasts the pool's command timeout, whose text is empty) is logged with the exception's type and
    traceback and recorded with its type: the failure can be told from the log alone."""
    key = "sink-tenant/file/sink-hashes"
    value = "9e107d9d372bb6826bd81d3542a419d6"
    flusher = system.flusher

    async def statement_timed_out(*args: Any, **kwargs: Any) -> None:
        raise TimeoutError

    await post(system, [{"value": value, "type": "md5"}])
    flusher._push_file = statement_timed_out  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.WARNING, logger="netskope_sink.lists.handlers"):
            await system.push_lists()
    finally:
        del flusher._push_file
    failed = [r for r in caplog.records if r.getMessage().startswith(f"push of {key} failed")]
    assert len(failed) == 1, [r.getMessage() for r in caplog.records]
    assert failed[0].getMessage().endswith("TimeoutError: "), failed[0].getMessage()
    assert failed[0].exc_info is not None
    assert failed[0].exc_info[0] is TimeoutError
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT last_error FROM list_state WHERE list_key = $1", key) == "TimeoutError: "
        await conn.execute("UPDATE list_state SET next_attempt_at = now() WHERE list_key = $1", key)
    await system.push_lists()  # the backoff over, the list is pushed
    assert value in (await tenant_lists(system))["sink-hashes"]
