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


def _rescanned(node: dict[str, Any]) -> list[str]:
    """Relations read by a sequential scan more than once in the executed plan."""
    found = []
    if node["Node Type"] == "Seq Scan" and node.get("Actual Loops", 0) > 1:
        found.append(node["Relation Name"])
    for child in node.get("Plans", []):
        found.extend(_rescanned(child))
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
            for statement in repository._CONSUME_CHANGES:
                tx = conn.transaction()
                await tx.start()
                try:
                    plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, KEY)
                finally:
                    await tx.rollback()
                plan = json.loads(plan) if isinstance(plan, str) else plan  # the pool may decode json
                assert _rescanned(plan[0]["Plan"]) == [], json.dumps(plan, indent=1)
        finally:
            await repository.forget_push(conn, KEY)
            await conn.execute("DELETE FROM list_changes WHERE list_key = ANY ($1::text[])", [KEY, OTHER])
