"""SQL of business_rules (the ingest-api owns it), of a rule test's candidates in the read model, and of the
rule-engine's reevaluations (read only)."""

from __future__ import annotations

from typing import Any

from cte_common.db import Connection
from ingest_api.configurations.repository import update_row

_RULE_COLUMNS = "name, filter, filter_text, exceptions, muted, unmute_at, created_at, updated_at"


async def insert_rule(conn: Connection, name: str, columns: dict[str, Any]) -> dict[str, Any] | None:
    """Insert and return the row; None if the name is taken."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO business_rules (name, filter, filter_text, exceptions, muted, unmute_at)
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING {_RULE_COLUMNS}
        """,
        name,
        columns["filter"],
        columns["filter_text"],
        columns["exceptions"],
        columns.get("muted", False),
        columns.get("unmute_at"),
    )
    return dict(row) if row else None


async def list_rules(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_RULE_COLUMNS} FROM business_rules ORDER BY name")]


ROW_LOCKS = ("", "FOR UPDATE", "FOR KEY SHARE")


async def get_rule(conn: Connection, name: str, *, lock: str = "") -> dict[str, Any] | None:
    assert lock in ROW_LOCKS
    row = await conn.fetchrow(f"SELECT {_RULE_COLUMNS} FROM business_rules WHERE name = $1 {lock}", name)
    return dict(row) if row else None


async def update_rule(conn: Connection, name: str, columns: dict[str, Any]) -> dict[str, Any] | None:
    return await update_row(conn, "business_rules", name, columns, _RULE_COLUMNS)


async def delete_rule(conn: Connection, name: str) -> bool:
    status = await conn.execute("DELETE FROM business_rules WHERE name = $1", name)
    return bool(status.endswith(" 1"))


# Re-evaluations (the rule-engine's table, read only)


async def list_reevaluations(conn: Connection, skip: int, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT id, reason, requested_at, started_at, finished_at, processed, total
        FROM reevaluations ORDER BY id DESC OFFSET $1 LIMIT $2
        """,
        skip,
        limit,
    )
    return [dict(r) for r in rows]
