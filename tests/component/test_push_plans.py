"""The plans of the sink's push statements stay linear in the change, whatever the statistics say.

Temporary work tables are never analysed, and list_changes may have been analysed before a list had any
change: the planner then believes the list has none and, without an index on the work table, scans it
once per change (seconds a push at a few thousand changes). Checked on the plans PostgreSQL executes."""

from __future__ import annotations

import json
from typing import Any

from cte_common.db import Pool
from netskope_sink.lists import repository

KEY = "plans-tenant/url/plan-list"
OTHER = "plans-tenant/file/plan-other"
CHANGES = 2000


def _scanned(node: dict[str, Any], *, loops: int = 0) -> list[str]:
    """Relations under a sequential scan run at least ``loops`` times in the executed plan (0: any
    sequential scan in it, run or not)."""
    found = [node["Relation Name"]] if node["Node Type"] == "Seq Scan" and node.get("Actual Loops", 0) >= loops else []
    for child in node.get("Plans", []):
        found.extend(_scanned(child, loops=loops))
    return found


async def test_consuming_a_push_s_changes_never_rescans_a_table(db: Pool) -> None:
    async with db.acquire() as conn:
        # list_changes analysed while only another list had changes: its statistics say KEY has none.
        await conn.execute(
            "INSERT INTO list_changes (list_key, value) SELECT $1, 'h' || g FROM generate_series(1, $2) g",
            OTHER,
            CHANGES,
        )
        await conn.execute("ANALYZE list_changes")
        await conn.execute(
            "INSERT INTO list_changes (list_key, value, old_priority, old_cost, old_type) "
            "SELECT $1, 'https://v' || g || '.example', 50, 20, 'url' FROM generate_series(1, $2) g",
            KEY,
            CHANGES,
        )
        try:
            await repository.forget_push(conn, KEY)  # the work tables, as the flusher's connection has them
            await conn.execute(
                "INSERT INTO push_seen SELECT list_key, value, seq, old_priority, old_cost, old_type, true, "
                "60, 20, 'url', true FROM list_changes WHERE list_key = $1",
                KEY,
            )
            tx = conn.transaction()
            await tx.start()
            try:
                plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + repository._CONSUME_CHANGES, KEY)
            finally:
                await tx.rollback()
            plan = json.loads(plan) if isinstance(plan, str) else plan  # the pool may decode json
            assert _scanned(plan[0]["Plan"], loops=2) == [], json.dumps(plan, indent=1)
        finally:
            await repository.forget_push(conn, KEY)
            await conn.execute("DELETE FROM list_changes WHERE list_key = ANY ($1::text[])", [KEY, OTHER])


async def test_the_diff_of_a_push_reads_the_list_only_where_its_changes_are(db: Pool) -> None:
    """A list at its cap takes new values at the top, and its cut moves back over members: the diff
    (one statement: the moved values, the appends and removals, the left-out counts) probes what the
    tenant holds and the list's members per moved value, and reads neither whole. (At 600,000 members
    the planner hashed all that the tenant holds for the appends' anti-join: one of the probes is kept
    a probe whatever the estimates.)"""
    members, change = CHANGES * 10, CHANGES // 2
    async with db.acquire() as conn:
        # Every member was kept and pushed at the last push; a twentieth of them have priorities 0 to 4.
        await conn.execute(
            "INSERT INTO list_members (list_key, value, type, priority, cost_bytes) "
            "SELECT $1, 'v' || g || '.example', 'domain', g % 100, 20 FROM generate_series(1, $2) g",
            KEY,
            members,
        )
        await conn.execute(
            "INSERT INTO list_pushed (list_key, value) SELECT $1, 'v' || g || '.example' FROM generate_series(1, $2) g",
            KEY,
            members,
        )
        await conn.execute("ANALYZE list_members")
        await conn.execute("ANALYZE list_pushed")
        try:
            await repository.forget_push(conn, KEY)
            await conn.execute(
                "INSERT INTO push_seen SELECT $1, 'n' || g || '.example', g, NULL, NULL, NULL, true, "
                "99, 20, 'domain', true FROM generate_series(1, $2) g",
                KEY,
                change,
            )
            # The cut moves from the last member back to the last of priority 5: priorities 0 to 4 go.
            old_cut, new_cut = (0.0, "~"), (5.0, "~")
            statement = repository._diff_moved(cut_moved=True, range_from_start=False)
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.execute(repository._CUSTOM_PLANS)
                plan = await conn.fetchval(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + statement,
                    KEY,
                    True,
                    *old_cut,
                    *new_cut,
                    False,
                    *old_cut,
                    *new_cut,
                )
                made = await conn.fetch("SELECT change, count(*) AS n FROM push_changes GROUP BY change")
            finally:
                await tx.rollback()
            plan = json.loads(plan) if isinstance(plan, str) else plan
            assert {r["change"]: r["n"] for r in made} == {"append": change, "remove": members // 20}
            read_whole = [r for r in _scanned(plan[0]["Plan"]) if r in ("list_pushed", "list_members")]
            assert read_whole == [], json.dumps(plan, indent=1)
        finally:
            await repository.forget_push(conn, KEY)
            for table in ("list_members", "list_pushed"):
                await conn.execute(f"DELETE FROM {table} WHERE list_key = $1", KEY)


async def test_a_push_s_entries_are_planned_for_the_push_at_hand(db: Pool) -> None:
    """The entries of a whole push are read with a plan made for the list as it is, never with one the
    connection kept from pushes of an empty list: a generic plan made then joined what the tenant holds
    with the removals as a nested loop reading every removal per entry held (a file hash list of 152,275
    entries timed out after 60 s in the benchmark)."""
    held, removed = CHANGES * 2, CHANGES // 2
    async with db.acquire() as conn:
        try:
            await repository.forget_push(conn, KEY)  # the work tables, as the flusher's connection has them
            # PostgreSQL may keep a generic plan after five executions, or not, by its estimates: here it
            # keeps the first, unless the push plans its own statement.
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            # A push of the empty list: a generic plan would be made now, with the list empty.
            empty = await repository.entries_text(conn, KEY, whole=True, uncertain=False, exclude=[], json_items=False)
            assert empty == ""
            await conn.execute(
                "INSERT INTO list_pushed (list_key, value) SELECT $1, 'h' || g FROM generate_series(1, $2) g",
                KEY,
                held,
            )
            await conn.execute(
                "INSERT INTO push_changes (list_key, change, value, entry) "
                "SELECT $1, 'remove', 'h' || g, 'h' || g FROM generate_series(1, $2) g",
                KEY,
                removed,
            )
            text = await repository.entries_text(conn, KEY, whole=True, uncertain=False, exclude=[], json_items=False)
            assert sorted(text.split(",")) == sorted(f"h{g}" for g in range(removed + 1, held + 1))
            plans = await conn.fetchrow(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
                repository._ENTRIES_TEXT.format(entries=repository._WHOLE, exclude=3, json=4),
            )
            # (The pool's connection may have run the statement for an earlier test: at least these two.)
            assert plans["generic_plans"] == 0
            assert plans["custom_plans"] >= 2
        finally:
            await conn.execute("RESET plan_cache_mode")
            await repository.forget_push(conn, KEY)
            await conn.execute("DELETE FROM list_pushed WHERE list_key = $1", KEY)


async def test_a_read_back_is_planned_for_the_entries_read(db: Pool) -> None:
    """A read-back's statements compare the list with the tenant's entries, a parameter: planned for the
    entries at hand, never with a generic plan the connection kept from earlier read-backs, in which `=
    ANY` of the entries searches them one by one for every row (quadratic in the list)."""
    read_backs = 3  # of a list that grows: a generic plan kept from the first would serve the others
    async with db.acquire() as conn:
        try:
            await conn.execute("SET plan_cache_mode = force_generic_plan")  # as in the test above
            for n in range(read_backs):
                entries = [f"r{g}.example" for g in range(n * 10)]
                await conn.execute(
                    "INSERT INTO list_pushed (list_key, value) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                    KEY,
                    entries[: n * 5],
                )
                done = await repository.reconcile(
                    conn, KEY, entries, uncertain=False, placeholder="placeholder.example", costs=len
                )
                assert (done.missing, len(done.foreign)) == (0, len(entries) - n * 5)
            rows = await conn.fetch(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = ANY ($1::text[])",
                [repository._ADOPT, repository._MISSING, repository._FOREIGN],
            )
            assert len(rows) == 3
            assert all(r["generic_plans"] == 0 and r["custom_plans"] >= read_backs for r in rows), rows
        finally:
            await conn.execute("RESET plan_cache_mode")
            for table in ("list_pushed", "list_foreign"):
                await conn.execute(f"DELETE FROM {table} WHERE list_key = $1", KEY)


def _work(node: dict[str, Any]) -> float:
    """Rows the executed plan handled, over every node and loop: the rows each node returned and those
    its filters removed (EXPLAIN gives both per loop)."""
    per_loop = sum(node.get(k, 0) for k in ("Actual Rows", "Rows Removed by Filter", "Rows Removed by Join Filter"))
    return per_loop * node.get("Actual Loops", 0) + sum(_work(child) for child in node.get("Plans", []))


async def test_a_push_reads_each_row_once_whatever_the_statistics(db: Pool) -> None:
    """The whole diff of a push, the entries of a whole push (what the tenant holds less the removals,
    plus the appends) and the record of the removals handle each member, entry held and removal a few
    times at most: even when list_pushed and list_members were analysed before the list had anything,
    so that the planner believes it has nothing, no side is read once per row of the other (as joins,
    they were: a whole file hash list's push took 50 to 60 s)."""
    held, removed, members = CHANGES * 5, CHANGES, CHANGES * 6
    async with db.acquire() as conn:
        try:
            await conn.execute(
                "INSERT INTO list_pushed (list_key, value) SELECT $1, 'o' || g FROM generate_series(1, $2) g",
                OTHER,
                CHANGES,
            )
            await conn.execute(
                "INSERT INTO list_members (list_key, value, type, priority, cost_bytes) "
                "SELECT $1, 'o' || g, 'md5', 1, 33 FROM generate_series(1, $2) g",
                OTHER,
                CHANGES,
            )
            await conn.execute("ANALYZE list_pushed")
            await conn.execute("ANALYZE list_members")
            await conn.execute(
                "INSERT INTO list_pushed (list_key, value) SELECT $1, 'h' || g FROM generate_series(1, $2) g",
                KEY,
                held,
            )
            # Members h1.. kept (h1 to h{held} held already), and held entries h{held+1}.. none makes.
            await conn.execute(
                "INSERT INTO list_pushed (list_key, value) SELECT $1, 'x' || g FROM generate_series(1, $2) g",
                KEY,
                removed,
            )
            await conn.execute(
                "INSERT INTO list_members (list_key, value, type, priority, cost_bytes) "
                "SELECT $1, 'h' || g, 'domain', 1, 20 FROM generate_series(1, $2) g",
                KEY,
                members,
            )
            await repository.forget_push(conn, KEY)
            await conn.execute(
                "INSERT INTO push_changes (list_key, change, value, entry) "
                "SELECT $1, 'remove', 'x' || g, 'x' || g FROM generate_series(1, $2) g",
                KEY,
                removed,
            )
            whole = repository._ENTRIES_TEXT.format(entries=repository._WHOLE, exclude=3, json=4)
            # statement, its arguments, and (pushed entries left, push_changes rows) after it
            statements = {
                repository._DIFF_WHOLE: (
                    (KEY, True, 0.0, "~", False),
                    (held + removed, removed + members - held + removed),
                ),
                whole: (
                    (KEY, False, [], False),
                    (held + removed, removed),
                ),
                repository._RECORD_REMOVED: ((KEY,), (held, removed)),
            }
            bound = 20 * (held + removed + members)
            for statement, (args, after) in statements.items():
                tx = conn.transaction()
                await tx.start()
                try:
                    await conn.execute(repository._CUSTOM_PLANS)
                    if statement == whole:
                        await conn.execute(repository._HASHED_JOINS)  # as entries_text plans it
                    plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *args)
                    left = await conn.fetchval("SELECT count(*) FROM list_pushed WHERE list_key = $1", KEY)
                    changes = await conn.fetchval("SELECT count(*) FROM push_changes WHERE list_key = $1", KEY)
                finally:
                    await tx.rollback()
                plan = json.loads(plan) if isinstance(plan, str) else plan
                assert _work(plan[0]["Plan"]) <= bound, json.dumps(plan, indent=1)
                assert (left, changes) == after
        finally:
            await repository.forget_push(conn, KEY)
            for table in ("list_pushed", "list_members"):
                await conn.execute(f"DELETE FROM {table} WHERE list_key = ANY ($1::text[])", [KEY, OTHER])


def _loops(node: dict[str, Any], relation: str) -> list[int]:
    """How many times each node of the executed plan that reads ``relation`` ran."""
    found = [node.get("Actual Loops", 0)] if node.get("Relation Name") == relation else []
    for child in node.get("Plans", []):
        found.extend(_loops(child, relation))
    return found


async def test_a_whole_push_s_entries_read_what_is_held_and_the_changes_once_each(db: Pool) -> None:
    """The entries of a whole push (a file hash list's every push) are what the tenant holds less the
    removals, plus the appends: one pass over each, the removals hashed, never looked up once per entry
    held (2 µs an entry, most of the statement at a list's cap: bench/notes.md). An entry appended for
    two values is sent once; what is sent is exactly what the tenant is to hold."""
    held, removed, appended = CHANGES * 3, CHANGES, CHANGES // 2
    async with db.acquire() as conn:
        try:
            await repository.forget_push(conn, OTHER)  # the work tables, as the flusher's connection has them
            await conn.execute(
                "INSERT INTO list_pushed (list_key, value) SELECT $1, 'h' || g FROM generate_series(1, $2) g",
                OTHER,
                held,
            )
            await conn.execute(
                "INSERT INTO push_changes (list_key, change, value, entry) "
                "SELECT $1, 'remove', 'h' || g, 'h' || g FROM generate_series(1, $2) g",
                OTHER,
                removed,
            )
            # Each new entry appended for two values (as a URL with and without its scheme would be).
            await conn.execute(
                "INSERT INTO push_changes (list_key, change, value, entry) "
                "SELECT $1, 'append', v || g, 'n' || g FROM generate_series(1, $2) g, unnest(ARRAY['a', 'b']) v",
                OTHER,
                appended,
            )
            text = await repository.entries_text(
                conn, OTHER, whole=True, uncertain=False, exclude=["n1"], json_items=False
            )
            expected = {f"h{g}" for g in range(removed + 1, held + 1)} | {f"n{g}" for g in range(2, appended + 1)}
            assert sorted(text.split(",")) == sorted(expected)
            async with conn.transaction():
                await conn.execute(repository._CUSTOM_PLANS)
                await conn.execute(repository._HASHED_JOINS)
                plan = await conn.fetchval(
                    "EXPLAIN (ANALYZE, FORMAT JSON) "
                    + repository._ENTRIES_TEXT.format(entries=repository._WHOLE, exclude=3, json=4),
                    OTHER,
                    False,
                    [],
                    False,
                )
            plan = json.loads(plan) if isinstance(plan, str) else plan
            assert _loops(plan[0]["Plan"], "push_changes") == [1, 1], json.dumps(plan, indent=1)
            assert _loops(plan[0]["Plan"], "list_pushed") == [1], json.dumps(plan, indent=1)
        finally:
            await repository.forget_push(conn, OTHER)
            await conn.execute("DELETE FROM list_pushed WHERE list_key = $1", OTHER)
