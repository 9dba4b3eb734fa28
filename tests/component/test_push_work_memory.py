"""A push's work tables stay in the memory the sink's connections give them.

A push works out its changes in session-local tables (push_seen, push_changes), whose pages live in the
connection's temporary buffers. At PostgreSQL's default (temp_buffers, 8 MB) a push of a list at its cap
fed without a pause filled them, and PostgreSQL wrote the pages out and read them back within the push
(bench/notes.md, "a push's work tables in memory"). The sink's pool sets them larger."""

from __future__ import annotations

from cte_common.db import Pool, create_pool
from cte_common.events import ShareIntentRecord
from cte_common.indicators import IndicatorType
from netskope_sink.lists import repository
from netskope_sink.settings import Settings
from tests.conftest import Env

KEY = "work-memory/url/list"
MEMBERS = 40_000
DEFAULT_TEMP_BUFFERS = 8 * 1024 * 1024


async def test_a_large_push_works_in_memory_on_the_sink_s_connections(env: Env, db: Pool) -> None:
    settings = Settings(database_url=env.database_url)
    pool = await create_pool(settings, server_settings=settings.pool_settings())
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_setting('temp_buffers')") == "64MB"
            values = sorted(f"https://member{i}.example.com/{'p' * 60}/{i}" for i in range(MEMBERS))
            for start in range(0, MEMBERS, 5000):
                async with conn.transaction():
                    await repository.apply_intents(
                        conn,
                        [
                            ShareIntentRecord(
                                list_key=KEY, value=v, type=IndicatorType.URL, add=True, priority=1.0, cost_bytes=len(v)
                            )
                            for v in values[start : start + 5000]
                        ],
                    )
            version = await repository.list_version(conn, KEY)
            await repository.mark_uncertain(conn, KEY)
            prepared = await repository.prepare_push(
                conn, KEY, cap_bytes=10**9, max_entries=MEMBERS, url_list=True, uncertain=False
            )
            assert (prepared.kept, prepared.appends) == (MEMBERS, MEMBERS)
            async with conn.transaction():
                await repository.record_push(
                    conn, KEY, version=version, prepared=prepared, uncertain=False, refused={}, cap=10**9
                )
            # The temporary buffers the push filled, all of them in memory: twice what the default
            # holds (past its size, pages are written out to make room).
            held = await conn.fetchval(
                "SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'LocalBufferContext'"
            )
            assert held > 2 * DEFAULT_TEMP_BUFFERS, held
            await repository.forget_push(conn, KEY)
            assert await conn.fetchval("SELECT entries FROM list_state WHERE list_key = $1", KEY) == MEMBERS
    finally:
        await pool.close()
        for table in ("list_members", "list_changes", "list_pushed", "list_push_cuts", "list_state"):
            await db.execute(f"DELETE FROM {table} WHERE list_key = $1", KEY)
