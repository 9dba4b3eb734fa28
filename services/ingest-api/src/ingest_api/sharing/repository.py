"""SQL of sharings (the ingest-api owns it), of a dry run's candidates in the read model, and of the sink's
list tables (read only: list_members, list_state, list_changes, the view list_value_status)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from cte_common.db import Connection
from cte_common.query import SqlParams
from ingest_api.indicators.repository import stream_indicators

_SHARING_COLUMNS = "id, source, rule, destination, action, parameters, list_key, priority, created_at, updated_at"


async def insert_sharing(conn: Connection, values: dict[str, Any]) -> dict[str, Any] | None:
    """Insert and return the row; None if its list is already the target of another sharing."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO sharings (source, rule, destination, action, parameters, list_key, priority)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (list_key) DO NOTHING RETURNING {_SHARING_COLUMNS}
        """,
        values["source"],
        values["rule"],
        values["destination"],
        values["action"],
        values["parameters"],
        values["list_key"],
        values["priority"],
    )
    return dict(row) if row else None


async def list_sharings(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_SHARING_COLUMNS} FROM sharings ORDER BY id")]


async def get_sharing(conn: Connection, sharing_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
    lock = "FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_SHARING_COLUMNS} FROM sharings WHERE id = $1 {lock}", sharing_id)
    return dict(row) if row else None


async def sharing_on_list(conn: Connection, key: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_SHARING_COLUMNS} FROM sharings WHERE list_key = $1", key)
    return dict(row) if row else None


async def update_sharing(conn: Connection, sharing_id: int, columns: dict[str, Any]) -> dict[str, Any] | None:
    sets = ", ".join(f"{col} = ${n + 2}" for n, col in enumerate(columns))
    row = await conn.fetchrow(
        f"UPDATE sharings SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_SHARING_COLUMNS}",
        sharing_id,
        *columns.values(),
    )
    return dict(row) if row else None


async def delete_sharing(conn: Connection, sharing_id: int) -> bool:
    status = await conn.execute("DELETE FROM sharings WHERE id = $1", sharing_id)
    return bool(status.endswith(" 1"))


async def sharings_of_rule(conn: Connection, name: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT id, source, destination FROM sharings WHERE rule = $1 ORDER BY id", name)
    return [dict(r) for r in rows]


async def sharings_to(conn: Connection, destination: str) -> list[int]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM sharings WHERE destination = $1", destination)]


def dry_run_candidates(
    conn: Connection, source: str
) -> AsyncIterator[list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
    """A dry run's candidates: the active indicators with an entry of ``source``, each with its source rows,
    in chunks; ``conn`` must be inside a transaction."""
    params = SqlParams(start=1)
    where = (
        "i.active AND EXISTS (SELECT 1 FROM indicator_sources s "
        f"WHERE s.value = i.value AND s.source = {params.add(source)})"
    )
    return stream_indicators(conn, where=where, params=params.values)


async def stream_list_members(conn: Connection, key: str, chunk: int = 10_000) -> AsyncIterator[list[asyncpg.Record]]:
    """The sink's desired members of one list (read only); ``conn`` must be inside a transaction."""
    batch: list[asyncpg.Record] = []
    async for row in conn.cursor(
        "SELECT value, priority, cost_bytes FROM list_members WHERE list_key = $1", key, prefetch=chunk
    ):
        batch.append(row)
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


# Each sharing's list as the sink last left it (no row: never touched), counted set-wise per list, and
# whether its tenant rejects the credentials it has now (tenant_state, the sink's). The
# 'pending' values of list_value_status are the additions and changes not pushed yet; a change whose
# member is gone is a removal not pushed yet; 'unfit' values are kept but cannot be written in the list.
_LIST_STATUS = """
SELECT s.id, s.source, s.rule, s.destination, s.action, s.parameters, s.list_key,
       st.list_key IS NOT NULL AS known, coalesce(st.version > st.flushed_version, true) AS due,
       coalesce(st.entries, 0) AS entries, coalesce(st.bytes, 0) AS bytes, coalesce(st.left_out, 0) AS left_out,
       coalesce(st.rejected, 0) AS rejected, coalesce(st.failures, 0) AS failures, st.last_error,
       st.last_push_at, st.next_attempt_at, st.last_read_back_at,
       coalesce(st.refused, false) AS refused, st.settle_at IS NOT NULL AS settling,
       coalesce(st.foreign_entries, 0) AS foreign_entries,
       coalesce(st.foreign_bytes, 0) AS foreign_bytes, coalesce(st.left_out_tenant, 0) AS left_out_tenant,
       ts.rejected_message AS credentials_rejected,
       coalesce(v.pending, 0) + coalesce(r.removals, 0) AS pending_changes, coalesce(v.unfit, 0) AS unfit
FROM sharings s
LEFT JOIN list_state st ON st.list_key = s.list_key
LEFT JOIN tenant_state ts ON ts.tenant = split_part(s.list_key, '/', 1)
     AND ts.rejected_credentials = tenant_credentials(ts.tenant)
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE status = 'pending') AS pending, count(*) FILTER (WHERE status = 'unfit') AS unfit
    FROM list_value_status WHERE list_key = s.list_key
) v ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS removals FROM list_changes c
    WHERE c.list_key = s.list_key
      AND NOT EXISTS (SELECT 1 FROM list_members m WHERE m.list_key = c.list_key AND m.value = c.value)
) r ON true
WHERE $1::bigint IS NULL OR s.id = $1
ORDER BY s.id
"""


async def list_statuses(conn: Connection, sharing_id: int | None = None) -> list[dict[str, Any]]:
    """Every sharing's list status row (or one sharing's: an empty list when it does not exist)."""
    return [dict(r) for r in await conn.fetch(_LIST_STATUS, sharing_id)]
