"""The rule-engine's writes of new indicators (``repository._save_states``: a COPY into ``indicators`` and
one into ``indicator_sources``, four or five times per indicator) as the client's CPU per indicator:
through a connection with asyncpg's own timestamptz codec, and through one of the services' pools
(cte_common.db, which sends timestamptz as an integer of microseconds). 20,000 new indicators of
bench/rule_engine_batch.py, 5,000 a COPY like the consumer's slices, each round in a transaction rolled
back; the two alternate, best of seven each. Needs a migrated database:

    CTE_DATABASE_URL=postgresql://... uv run --frozen python bench/copy_times.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from rule_engine import repository
from rule_engine.domain import apply_events

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rule_engine_batch import SLICE, sightings

from cte_common.db import create_pool
from cte_common.settings import CommonSettings

ROUNDS = 7


async def _round(conn: Any, slices: list[list[Any]]) -> float:
    tx = conn.transaction()
    await tx.start()
    try:
        started = time.process_time()
        for states in slices:
            await repository._save_states(conn, states, {})
        return time.process_time() - started
    finally:
        await tx.rollback()


async def main() -> None:
    url = os.environ["CTE_DATABASE_URL"]
    events = sightings(20_000)
    slices = [list(apply_events({}, events[s : s + SLICE]).values()) for s in range(0, len(events), SLICE)]
    plain = await asyncpg.connect(url)
    for name in ("json", "jsonb"):
        await plain.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    pool = await create_pool(CommonSettings(database_url=url))
    best = {"asyncpg's codec": float("inf"), "the services' pools": float("inf")}
    try:
        async with pool.acquire() as ours:
            for _ in range(ROUNDS):
                best["asyncpg's codec"] = min(best["asyncpg's codec"], await _round(plain, slices))
                best["the services' pools"] = min(best["the services' pools"], await _round(ours, slices))
    finally:
        await plain.close()
        await pool.close()
    for name, seconds in best.items():
        print(f"{name}: {seconds * 1e6 / len(events):.2f} µs of client CPU per new indicator (best of {ROUNDS})")


if __name__ == "__main__":
    asyncio.run(main())
