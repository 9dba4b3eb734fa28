"""Applying share intents (repository.apply_intents), in PostgreSQL: the members, the changes a push
reads (each member as it was at the last push), the outcomes, the list made due; and a plan that reads
only the rows the intents name, however large the lists are."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from cte_common.db import Connection, Pool
from cte_common.events import ShareIntent
from cte_common.indicators import IndicatorType
from netskope_sink.lists import repository
from tests.support.lists import drop_list

KEY = "intents-tenant/url/tracked"
UNTRUSTED = "intents-tenant/url/untrusted"


def _add(
    key: str, value: str, priority: float, cost: int = 20, kind: IndicatorType = IndicatorType.DOMAIN
) -> ShareIntent:
    return ShareIntent(list_key=key, value=value, type=kind, add=True, priority=priority, cost_bytes=cost)


def _remove(key: str, value: str) -> ShareIntent:
    return ShareIntent(list_key=key, value=value, type=IndicatorType.DOMAIN, add=False)


async def _apply(conn: Connection, intents: list[ShareIntent]) -> None:
    async with conn.transaction():
        await repository.apply_intents(conn, intents)


async def _members(conn: Connection, key: str) -> dict[str, tuple[float, int, bool]]:
    rows = await conn.fetch("SELECT value, priority, cost_bytes, invalid FROM list_members WHERE list_key = $1", key)
    return {r["value"]: (r["priority"], r["cost_bytes"], r["invalid"]) for r in rows}


async def _changes(conn: Connection, key: str) -> dict[str, tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT value, seq, old_priority, old_cost, old_type, old_candidate FROM list_changes WHERE list_key = $1", key
    )
    return {r["value"]: (r["old_priority"], r["old_cost"], r["old_type"], r["old_candidate"], r["seq"]) for r in rows}


async def _version(conn: Connection, key: str) -> int:
    version: int = await conn.fetchval("SELECT version FROM list_state WHERE list_key = $1", key)
    return version


async def test_each_change_is_tracked_as_the_member_was_at_the_last_push(db: Pool) -> None:
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO list_state (list_key, cut_trusted) VALUES ($1, true)", KEY)
        try:
            await _apply(conn, [_add(KEY, "a.example", 1), _add(KEY, "b.example", 2), _add(KEY, "c.example", 1)])
            assert await _version(conn, KEY) == 1
            first = await _changes(conn, KEY)
            added = ("a.example", "b.example", "c.example")
            assert {v: c[:4] for v, c in first.items()} == dict.fromkeys(added, (None, None, None, True))
            # The push: its changes consumed; the tenant refused c.example.
            await conn.execute("DELETE FROM list_changes WHERE list_key = $1", KEY)
            await conn.execute(
                "INSERT INTO list_outcomes (list_key, value, outcome) VALUES ($1, 'c.example', 'rejected')",
                KEY,
            )

            await _apply(
                conn,
                [
                    _add(KEY, "a.example", 3),  # re-prioritised
                    _add(KEY, "b.example", 2),  # the same: no change
                    _remove(KEY, "c.example"),  # refused, then removed
                    _remove(KEY, "d.example"),  # never a member: no change
                    _add(KEY, "bad host.example", 1),  # the pre-check refuses it
                    _add(KEY, "2001:db8::1", 1, kind=IndicatorType.IPV6),  # no IPv6 in a URL list
                ],
            )
            assert await _version(conn, KEY) == 2
            assert await _members(conn, KEY) == {
                "a.example": (3.0, 20, False),
                "b.example": (2.0, 20, False),
                "bad host.example": (1.0, 20, True),
                "2001:db8::1": (1.0, 20, True),
            }
            second = await _changes(conn, KEY)
            assert {v: c[:4] for v, c in second.items()} == {
                "a.example": (1.0, 20, "domain", True),
                "c.example": (1.0, 20, "domain", False),  # refused at the push: it was no candidate
                "bad host.example": (None, None, None, True),
                "2001:db8::1": (None, None, None, True),
            }
            assert not await conn.fetchval("SELECT count(*) FROM list_outcomes WHERE list_key = $1", KEY)

            # A second change since the push keeps what the member was at the push, under a new seq;
            # a change back to the same is no change; a removed value added again keeps its first record.
            await _apply(conn, [_add(KEY, "a.example", 5, cost=30), _add(KEY, "c.example", 4)])
            third = await _changes(conn, KEY)
            assert third["a.example"][:4] == (1.0, 20, "domain", True)
            assert third["a.example"][4] > second["a.example"][4]
            assert third["c.example"][:4] == (1.0, 20, "domain", False)
            assert third["c.example"][4] > second["c.example"][4]
            await _apply(conn, [_add(KEY, "a.example", 5, cost=30), _remove(KEY, "e.example")])
            assert await _changes(conn, KEY) == third
            assert await _version(conn, KEY) == 4
            assert (await _members(conn, KEY))["a.example"] == (5.0, 30, False)
            assert (await _members(conn, KEY))["c.example"] == (4.0, 20, False)

            # A member the pre-check refused is a changed member once its entry is one the list holds.
            await conn.execute("DELETE FROM list_changes WHERE list_key = $1", KEY)
            await _apply(conn, [_add(KEY, "a.example", 5, cost=30)])
            assert await _changes(conn, KEY) == {}
            await conn.execute(
                "UPDATE list_members SET invalid = true WHERE list_key = $1 AND value = 'a.example'", KEY
            )
            await _apply(conn, [_add(KEY, "a.example", 5, cost=30)])
            assert {v: c[:4] for v, c in (await _changes(conn, KEY)).items()} == {
                "a.example": (5.0, 30, "domain", False)
            }
            assert (await _members(conn, KEY))["a.example"] == (5.0, 30, False)
        finally:
            await drop_list(conn, KEY)


async def test_a_list_whose_cut_is_not_trusted_yet_tracks_its_changes_too(db: Pool) -> None:
    """Its next push is worked out whole, but the changes made while that push is under way are what
    lets the push after it be incremental (a list fed without a pause would never get there)."""
    async with db.acquire() as conn:
        try:
            await _apply(conn, [_add(UNTRUSTED, "a.example", 1), _add(UNTRUSTED, "b.example", 1)])
            assert not await conn.fetchval("SELECT cut_trusted FROM list_state WHERE list_key = $1", UNTRUSTED)
            await conn.execute("DELETE FROM list_changes WHERE list_key = $1", UNTRUSTED)  # (a push took them)
            await _apply(conn, [_add(UNTRUSTED, "a.example", 2), _remove(UNTRUSTED, "b.example")])
            assert await _members(conn, UNTRUSTED) == {"a.example": (2.0, 20, False)}
            assert {v: c[:4] for v, c in (await _changes(conn, UNTRUSTED)).items()} == {
                "a.example": (1.0, 20, "domain", True),
                "b.example": (1.0, 20, "domain", True),
            }
            assert await _version(conn, UNTRUSTED) == 2
        finally:
            await drop_list(conn, UNTRUSTED)


async def test_a_value_beyond_the_cut_between_pushes_only_moves_the_left_out_count(db: Pool) -> None:
    """Beyond the trusted cut before and after, with no change row yet, between two pushes: nothing
    the tenant holds changes, so no change row, and list_state.left_out counts the candidates. A
    value that crosses the cut, one already tracked, and every change while a push is under way
    (the list marked uncertain) are tracked."""
    key = "intents-tenant/url/beyond"
    async with db.acquire() as conn:
        try:
            # The last push kept everything down to (priority 5, 'm.example') and left 2 candidates out.
            await conn.execute(
                "INSERT INTO list_state (list_key, cut_trusted, cut_priority, cut_value, left_out) "
                "VALUES ($1, true, 5, 'm.example', 2)",
                key,
            )
            await _apply(
                conn,
                [
                    _add(key, "a.example", 4),  # beyond: counted, not tracked
                    _add(key, "z.example", 5),  # the cut's priority, after its value: beyond
                    _add(key, "b.example", 5),  # the cut's priority, before its value: kept
                    _add(key, "c.example", 9),  # kept
                    _add(key, "bad host.example", 1),  # beyond, and no candidate: not counted
                ],
            )
            assert set(await _changes(conn, key)) == {"b.example", "c.example"}
            left_out = "SELECT left_out FROM list_state WHERE list_key = $1"
            assert await conn.fetchval(left_out, key) == 4
            statuses = dict(await conn.fetch("SELECT value, status FROM list_value_status WHERE list_key = $1", key))
            assert statuses["a.example"] == statuses["z.example"] == "left_out"
            assert statuses["b.example"] == statuses["c.example"] == "pending"

            await _apply(
                conn,
                [
                    _add(key, "a.example", 3),  # beyond to beyond
                    _remove(key, "z.example"),  # beyond, removed: one candidate fewer
                    _add(key, "c.example", 1),  # kept to beyond: tracked already, renewed
                    _add(key, "bad host.example", 8),  # crosses the cut: tracked
                ],
            )
            assert set(await _changes(conn, key)) == {"b.example", "c.example", "bad host.example"}
            assert await conn.fetchval(left_out, key) == 3

            # A push under way, its cut not known yet: every change is tracked.
            await conn.execute("UPDATE list_state SET uncertain = true WHERE list_key = $1", key)
            await _apply(conn, [_add(key, "a.example", 2), _add(key, "y.example", 1)])
            assert {"a.example", "y.example"} <= set(await _changes(conn, key))
            assert await conn.fetchval(left_out, key) == 3
            # Its cut known, further down the order: beyond both cuts, or tracked.
            await conn.execute("INSERT INTO list_push_cuts VALUES ($1, 3, 'm.example')", key)
            await _apply(conn, [_add(key, "d.example", 4), _add(key, "e.example", 2)])
            changes = set(await _changes(conn, key))
            assert "d.example" in changes  # beyond the last cut, kept by the push under way
            assert "e.example" not in changes
            assert await conn.fetchval(left_out, key) == 4
        finally:
            await drop_list(conn, key)


CONCURRENT = "intents-tenant/url/concurrent"


async def _lock_wait(conn: Connection, pid: int) -> bool:
    """Whether backend ``pid`` waits for a lock, asked until it does (10 s at most)."""
    for _ in range(100):
        if await conn.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
            return True
        await asyncio.sleep(0.1)
    return False


async def _prepare(conn: Connection, key: str) -> repository.PreparedPush:
    return await repository.prepare_push(conn, key, cap_bytes=10_000, max_entries=100, url_list=True, uncertain=False)


async def test_a_push_publishes_its_cut_without_waiting_for_an_intents_batch(db: Pool) -> None:
    """An intents batch under way holds its list's state row until it commits. A push prepared meanwhile
    (the list marked by the flusher already) neither waits for it nor loses its change: the change,
    committed after the push's snapshot, stays tracked for the next push."""
    async with db.acquire() as flusher, db.acquire() as intents:
        await flusher.execute("INSERT INTO list_state (list_key) VALUES ($1)", CONCURRENT)
        try:
            await _apply(flusher, [_add(CONCURRENT, "a.example", 1)])
            await repository.mark_uncertain(flusher, CONCURRENT)
            batch = intents.transaction()
            await batch.start()
            try:
                await repository.apply_intents(intents, [_add(CONCURRENT, "b.example", 2)])
                prepared = await asyncio.wait_for(_prepare(flusher, CONCURRENT), timeout=30)
                published = await flusher.fetchval("SELECT value FROM list_push_cuts WHERE list_key = $1", CONCURRENT)
                assert published == prepared.cut.value == "a.example"  # b.example not in its snapshot
            finally:
                await batch.commit()
            async with flusher.transaction():
                await repository.record_push(
                    flusher, CONCURRENT, version=1, prepared=prepared, uncertain=False, refused={}, cap=10_000
                )
            await repository.forget_push(flusher, CONCURRENT)
            assert set(await _changes(flusher, CONCURRENT)) == {"b.example"}
            assert not await flusher.fetchval("SELECT count(*) FROM list_push_cuts WHERE list_key = $1", CONCURRENT)
        finally:
            await drop_list(flusher, CONCURRENT)


async def test_a_push_prepared_again_waits_for_a_batch_that_read_its_first_cut(db: Pool) -> None:
    """A push prepared a second time (its first cut published) waits for an intents batch under way,
    which may have compared with that cut: the batch's change is in the new snapshot."""
    async with db.acquire() as flusher, db.acquire() as intents:
        await flusher.execute("INSERT INTO list_state (list_key) VALUES ($1)", CONCURRENT)
        try:
            await _apply(flusher, [_add(CONCURRENT, "a.example", 1)])
            await repository.mark_uncertain(flusher, CONCURRENT)
            await _prepare(flusher, CONCURRENT)
            assert await flusher.fetchval("SELECT count(*) FROM list_push_cuts WHERE list_key = $1", CONCURRENT)
            batch = intents.transaction()
            await batch.start()
            try:
                await repository.apply_intents(intents, [_add(CONCURRENT, "b.example", 2)])
                again = asyncio.create_task(_prepare(flusher, CONCURRENT))
                async with db.acquire() as observer:
                    pid = flusher.get_server_pid()
                    assert await _lock_wait(observer, pid), "the second preparation waits for the batch"
                assert not again.done()
            finally:
                await batch.commit()
            prepared = await asyncio.wait_for(again, timeout=30)
            assert prepared.cut.value == "a.example"  # b.example (priority 2) first, then a.example
            assert prepared.kept == 2
        finally:
            await repository.forget_push(flusher, CONCURRENT)
            await drop_list(flusher, CONCURRENT)


def _scans_per_row(node: dict[str, Any], inner: bool = False) -> list[str]:
    """The relations read whole (a sequential scan) by the plan: on the inner side of a nested loop
    (once per row of the outer side) or, for list_members, anywhere."""
    found = []
    if node["Node Type"] == "Seq Scan" and (inner or node["Relation Name"] == "list_members"):
        found.append(node["Relation Name"])
    for child in node.get("Plans", []):
        loops = node["Node Type"] == "Nested Loop" and child.get("Parent Relationship") == "Inner"
        found.extend(_scans_per_row(child, inner or loops))
    return found


async def test_applying_intents_reads_only_the_rows_they_name(db: Pool) -> None:
    """A batch of a few thousand intents against a list of many members: one probe per intent (with
    the statistics of a large list the planner would rather hash every member), the members never
    scanned whole and no join scanning a table once per row."""
    big, n = "plans-tenant/url/big", 2000
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO list_state (list_key, cut_trusted) VALUES ($1, true)", big)
        await conn.execute(
            "INSERT INTO list_members (list_key, value, type, priority, cost_bytes) "
            "SELECT $1, 'v' || g || '.example', 'domain', g % 7, 20 FROM generate_series(1, 50000) g",
            big,
        )
        await conn.execute(
            "INSERT INTO list_outcomes (list_key, value, outcome) "
            "SELECT $1, 'v' || g || '.example', 'rejected' FROM generate_series(1, 50000, 50) g",
            big,
        )
        for table in ("list_members", "list_changes", "list_outcomes"):
            await conn.execute(f"ANALYZE {table}")
        intents = [_add(big, f"v{g}.example", 9) for g in range(1, n)]  # changes
        intents += [_remove(big, f"v{g}.example") for g in range(n, 2 * n)]  # removals
        intents += [_add(big, f"new{g}.example", 1) for g in range(n)]  # new members
        args = (
            [i.list_key for i in intents],
            [i.value for i in intents],
            [i.type.value for i in intents],
            [i.priority if i.add else None for i in intents],
            [i.cost_bytes for i in intents],
            [False for _ in intents],
        )
        try:
            plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + repository._APPLY_INTENTS, *args)
            plan = json.loads(plan) if isinstance(plan, str) else plan  # the pool may decode json
            assert _scans_per_row(plan[0]["Plan"]) == [], json.dumps(plan, indent=1)
            async with conn.transaction():
                await conn.execute(repository._APPLY_INTENTS, *args)
            assert await conn.fetchval("SELECT count(*) FROM list_members WHERE list_key = $1", big) == 50000
            assert await conn.fetchval("SELECT count(*) FROM list_changes WHERE list_key = $1", big) == 3 * n - 1
        finally:
            await drop_list(conn, big)
