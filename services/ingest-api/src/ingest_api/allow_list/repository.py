"""SQL of allow_list (the ingest-api owns it) and of the rule-engine's allow_list_hits (read only)."""

from __future__ import annotations

from typing import Any

from cte_common.db import Connection
from cte_common.sharing import AllowEntry

_ALLOW_COLUMNS = "id, kind, pattern, comment, created_at"


async def insert_allow_entry(conn: Connection, kind: str, pattern: str, comment: str) -> dict[str, Any] | None:
    """Insert and return the row; None if the same (kind, pattern) exists."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO allow_list (kind, pattern, comment) VALUES ($1, $2, $3)
        ON CONFLICT (kind, pattern) DO NOTHING RETURNING {_ALLOW_COLUMNS}
        """,
        kind,
        pattern,
        comment,
    )
    return dict(row) if row else None


_ALLOW_WITH_HITS = """
SELECT a.id, a.kind, a.pattern, a.comment, a.created_at, coalesce(h.hits, 0) AS hits, h.last_hit_at
FROM allow_list a LEFT JOIN allow_list_hits h ON h.entry_id = a.id
"""


async def list_allow_entries(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"{_ALLOW_WITH_HITS} ORDER BY a.id")]


async def get_allow_entry(conn: Connection, entry_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"{_ALLOW_WITH_HITS} WHERE a.id = $1", entry_id)
    return dict(row) if row else None


async def delete_allow_entry(conn: Connection, entry_id: int) -> bool:
    status = await conn.execute("DELETE FROM allow_list WHERE id = $1", entry_id)
    return bool(status.endswith(" 1"))


async def allow_entries(conn: Connection) -> list[AllowEntry]:
    return [
        AllowEntry(r["id"], r["kind"], r["pattern"])
        for r in await conn.fetch(f"SELECT {_ALLOW_COLUMNS} FROM allow_list")
    ]
