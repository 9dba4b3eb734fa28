"""SQL of business_rules (the ingest-api owns it), of a rule test's candidates in the read model, and of the
rule-engine's reevaluations (read only)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from cte_common.db import Connection
from cte_common.query import Node, SqlParams, to_sql
from ingest_api.configurations.repository import update_row
from ingest_api.indicators.repository import stream_indicators

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


# Row locks a caller may take, by name (the SQL stays here).
_ROW_LOCKS = {None: "", "update": "FOR UPDATE", "key share": "FOR KEY SHARE"}


async def get_rule(
    conn: Connection, name: str, *, lock: Literal["update", "key share"] | None = None
) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_RULE_COLUMNS} FROM business_rules WHERE name = $1 {_ROW_LOCKS[lock]}", name)
    return dict(row) if row else None


async def update_rule(conn: Connection, name: str, columns: dict[str, Any]) -> dict[str, Any] | None:
    return await update_row(conn, "business_rules", name, columns, _RULE_COLUMNS)


async def delete_rule(conn: Connection, name: str) -> bool:
    status = await conn.execute("DELETE FROM business_rules WHERE name = $1", name)
    return bool(status.endswith(" 1"))


def rule_test_candidates(
    conn: Connection, node: Node, since: datetime, source: str | None
) -> AsyncIterator[list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
    """A rule test's candidates: the active indicators the rule's filter ``node`` selects with an entry (of
    ``source``, when given) last seen after ``since``, each with its source rows, in chunks; ``conn`` must
    be inside a transaction."""
    params = SqlParams(start=1)
    rule_sql = to_sql(node, params)
    entry = f"s.value = i.value AND s.last_seen > {params.add(since)}"
    if source is not None:
        entry += f" AND s.source = {params.add(source)}"
    where = f"i.active AND {rule_sql} AND EXISTS (SELECT 1 FROM indicator_sources s WHERE {entry})"
    return stream_indicators(conn, where=where, params=params.values)


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
