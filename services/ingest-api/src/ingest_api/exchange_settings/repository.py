"""SQL of cte_settings (one row; the ingest-api owns it)."""

from __future__ import annotations

from typing import Any

from cte_common.db import Connection


async def criterion(conn: Connection) -> str:
    value: str = await conn.fetchval("SELECT criterion FROM cte_settings")
    return value


async def get_cte_settings(conn: Connection) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT criterion, delete_inactive_indicators FROM cte_settings")
    assert row is not None
    return dict(row)


async def update_cte_settings(conn: Connection, criterion: str | None, delete_inactive: bool | None) -> dict[str, Any]:
    row = await conn.fetchrow(
        """
        UPDATE cte_settings SET criterion = coalesce($1, criterion),
            delete_inactive_indicators = coalesce($2, delete_inactive_indicators)
        RETURNING criterion, delete_inactive_indicators
        """,
        criterion,
        delete_inactive,
    )
    assert row is not None
    return dict(row)
