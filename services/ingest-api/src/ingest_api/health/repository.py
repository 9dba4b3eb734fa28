from __future__ import annotations

from cte_common.db import Connection


async def ping(conn: Connection) -> None:
    await conn.fetchval("SELECT 1")
