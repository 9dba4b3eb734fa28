"""SQL of tags (the ingest-api owns it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cte_common.db import Connection


async def ensure_tags(conn: Connection, names: Sequence[str]) -> None:
    """Create missing tags with the reference's default colour (feeds bring new tags)."""
    if names:
        await conn.execute(
            "INSERT INTO tags (name) SELECT DISTINCT unnest($1::text[]) ON CONFLICT (name) DO NOTHING",
            list(names),
        )


async def insert_tag(conn: Connection, name: str, color: str) -> bool:
    status = await conn.execute(
        "INSERT INTO tags (name, color) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, color
    )
    return bool(status.endswith(" 1"))


async def missing_tags(conn: Connection, names: Sequence[str]) -> list[str]:
    rows = await conn.fetch(
        "SELECT n FROM unnest($1::text[]) AS n WHERE NOT EXISTS (SELECT 1 FROM tags WHERE name = n) ORDER BY n",
        list(names),
    )
    return [r["n"] for r in rows]


async def delete_tag(conn: Connection, name: str) -> bool:
    status = await conn.execute("DELETE FROM tags WHERE name = $1", name)
    return bool(status.endswith(" 1"))


async def tags_with_usage(conn: Connection, *, where: str, params: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """Every tag with how many of the filtered indicators carry it (on any source), and their total."""
    rows = await conn.fetch(
        f"""
        WITH f AS (SELECT i.value FROM indicators i WHERE {where}),
             used AS (SELECT t, count(DISTINCT s.value) AS c
                      FROM indicator_sources s JOIN f ON f.value = s.value, unnest(s.tags) AS t GROUP BY t)
        SELECT tags.name, tags.color, coalesce(used.c, 0) AS count,
               (SELECT count(*) FROM f) AS total
        FROM tags LEFT JOIN used ON used.t = tags.name
        ORDER BY tags.name
        """,
        *params,
    )
    total = rows[0]["total"] if rows else 0
    return [dict(r) for r in rows], total


async def lock_tags(conn: Connection, names: Sequence[str]) -> list[str]:
    """Which of ``names`` exist, locked against deletion until the transaction ends (a tag that a rule
    names cannot be deleted: the deletion waits for this transaction, then sees the rule)."""
    rows = await conn.fetch("SELECT name FROM tags WHERE name = ANY($1::text[]) ORDER BY name FOR SHARE", list(names))
    return [r["name"] for r in rows]
