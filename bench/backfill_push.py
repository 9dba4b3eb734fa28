"""A backfill into a URL list at its cap, through the sink's own SQL: values older than everything the
list keeps (priority lastSeen), so each lands beyond the cut. The list gets ``--members`` values, is
pushed (prepare and record, no tenant) until its cut is trusted with half of them kept, then takes
``--new`` values below the cut in batches of 5,000 (one transaction each, as the consumer applies them)
and one more push. Reports the PostgreSQL backend's CPU per new value for the intents and for that push,
read from /proc, and how many change rows the push found (bench/notes.md, "values beyond the cut").

    CTE_DATABASE_URL=postgresql://... uv run --frozen python bench/backfill_push.py

Any migrated database will do (``make up`` leaves one, as does ``deploy/stack.sh up postgres`` followed
by ``cte-migrate``); the list it uses is removed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

import asyncpg

from cte_common.events import ShareIntent
from cte_common.indicators import IndicatorType
from netskope_sink.lists import repository

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds

KEY = "bench-backfill/url/backfill"
BATCH = 5000
TABLES = ("list_members", "list_changes", "list_pushed", "list_state", "list_outcomes", "list_push_cuts")


async def apply(conn: asyncpg.Connection, items: list[tuple[str, float]]) -> None:
    intents = [
        ShareIntent(list_key=KEY, value=v, type=IndicatorType.DOMAIN, add=True, priority=p, cost_bytes=len(v) + 3)
        for v, p in items
    ]
    for start in range(0, len(intents), BATCH):
        async with conn.transaction():
            await repository.apply_intents(conn, intents[start : start + BATCH])


async def push(conn: asyncpg.Connection, cap: int) -> repository.PreparedPush:
    version = await repository.list_version(conn, KEY)
    await repository.mark_uncertain(conn, KEY)  # as the flusher does before it calls the tenant
    prepared = await repository.prepare_push(
        conn, KEY, cap_bytes=cap, max_entries=300_000, url_list=True, uncertain=False
    )
    async with conn.transaction():
        await repository.record_push(
            conn, KEY, version=version, prepared=prepared, uncertain=False, refused={}, cap=cap
        )
    await repository.forget_push(conn, KEY)
    return prepared


async def run(dsn: str, members: int, new: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        for table in TABLES:
            await conn.execute(f"DELETE FROM {table} WHERE list_key = $1", KEY)
        rnd = random.Random(7)
        base = [(f"d{i}.example.com", 1000.0 + rnd.random()) for i in range(members)]
        cap = 1 + sum(len(v) + 3 for v, _ in base[: members // 2])
        await apply(conn, base)
        await push(conn, cap)  # worked out whole: the cut is trusted from here
        await push(conn, cap)
        await conn.execute("VACUUM ANALYZE list_members")
        await conn.execute("VACUUM ANALYZE list_changes")
        older = [(f"old{i}.example.com", 500.0 + rnd.random()) for i in range(new)]
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        await apply(conn, older)
        apply_cpu, apply_wall = cpu_seconds(pid) - cpu, time.perf_counter() - wall
        changes = await conn.fetchval("SELECT count(*) FROM list_changes WHERE list_key = $1", KEY)
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        prepared = await push(conn, cap)
        push_cpu, push_wall = cpu_seconds(pid) - cpu, time.perf_counter() - wall
        left_out = await conn.fetchval("SELECT left_out FROM list_state WHERE list_key = $1", KEY)
        print(
            f"intents: {apply_cpu / new * 1e6:.1f} µs of backend CPU per value ({apply_wall:.1f} s); "
            f"push: {push_cpu / new * 1e6:.1f} µs per value ({push_wall:.2f} s), {changes:,} change rows; "
            f"kept {prepared.kept:,}, left out {left_out:,}"
        )
    finally:
        for table in TABLES:
            await conn.execute(f"DELETE FROM {table} WHERE list_key = $1", KEY)
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("CTE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5433/cte"))
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--new", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(run(args.dsn, args.members, args.new))


if __name__ == "__main__":
    main()
