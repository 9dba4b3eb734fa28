"""SQL of the dashboards: grouped counts over the read model (read only)."""

from __future__ import annotations

from typing import Any

import asyncpg

from cte_common.db import Connection


async def run_dashboard(conn: Connection, sql: str, params: list[Any]) -> list[asyncpg.Record]:
    return list(await conn.fetch(sql, *params))


async def pull_counts(conn: Connection) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """
            SELECT i.type, s.source, count(*) FILTER (WHERE s.retracted) AS retracted,
                   count(*) FILTER (WHERE NOT s.retracted) AS unretracted, count(*) AS total
            FROM indicator_sources s JOIN indicators i USING (value)
            GROUP BY i.type, s.source ORDER BY i.type, s.source
            """
        )
    )
