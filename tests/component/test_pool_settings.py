"""The consumers' pools run without PostgreSQL's JIT compiler; the API's keeps the server's setting.

The consumers' batch statements take their rows from unnest() and COPY, whose row counts the planner
guesses, so a plan's estimated cost sometimes passes jit_above_cost and one execution compiles
expressions for a few thousand rows (bench/notes.md, "PostgreSQL's JIT, the broker's heap"). A cost threshold
of 0 below makes every plan expensive enough."""

from __future__ import annotations

import json
from typing import Any

from cte_common.db import BATCH_WRITER_SETTINGS, Pool, create_pool
from cte_common.settings import CommonSettings
from tests.conftest import Env

_QUERY = "SELECT sum(x) FROM generate_series(1, 1000) AS g(x)"


async def _compiled(pool: Pool) -> tuple[bool, str]:
    """Whether the query's execution was compiled, and the connection's application_name."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL jit_above_cost = 0")
        plan: Any = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {_QUERY}")
        name: str = await conn.fetchval("SELECT current_setting('application_name')")
    top = (json.loads(plan) if isinstance(plan, str) else plan)[0]
    return "JIT" in top, name


async def test_a_batch_writers_pool_never_compiles_and_keeps_the_url_settings(env: Env) -> None:
    settings = CommonSettings(database_url=f"{env.database_url}?application_name=pool-settings-test")
    writers = await create_pool(settings, server_settings=BATCH_WRITER_SETTINGS)
    api = await create_pool(settings)
    try:
        assert await _compiled(writers) == (False, "pool-settings-test")
        async with api.acquire() as conn:
            server_jit = await conn.fetchval("SELECT current_setting('jit') = 'on' AND pg_jit_available()")
        # The API's pool is left to the server: compiled exactly when the server compiles.
        assert await _compiled(api) == (server_jit, "pool-settings-test")
    finally:
        await writers.close()
        await api.close()
