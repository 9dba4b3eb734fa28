"""SQL of the dashboards: grouped counts over the read model (read only)."""

from __future__ import annotations

from typing import Any

import asyncpg

from cte_common.db import Connection

# group_by fields of the reference, to (SQL expression, the key in "_id", needs the sources join).
GROUP_FIELDS: dict[str, tuple[str, str, bool]] = {
    "value": ("i.value", "value", False),
    "type": ("i.type", "type", False),
    "test": ("i.test", "test", False),
    "active": ("i.active", "active", False),
    "internalHits": ("i.internal_hits", "internalHits", False),
    "externalHits": ("i.external_hits", "externalHits", False),
    "expiresAt": ("i.expires_at", "expiresAt", False),
    "sources.source": ("s.source", "source", True),
    "sources.comments": ("s.comments", "comments", True),
    "sources.reputation": ("s.reputation", "reputation", True),
    "sources.firstSeen": ("s.first_seen", "firstSeen", True),
    "sources.lastSeen": ("s.last_seen", "lastSeen", True),
}


def dashboard_query(group_by: list[str], count_by: str | None, where: str, limit_param: str) -> str:
    """SQL of GET /api/cte/dashboards/: group the filtered indicators and count (or sum hits).

    Per-source fields group per source entry (MongoDB would group by the whole array of values); an
    indicator then counts once in each of its sources' groups.
    """
    unknown = [g for g in group_by if g not in GROUP_FIELDS]
    if unknown:
        raise ValueError(f"group_by: unknown field {unknown[0]!r}; allowed: {', '.join(GROUP_FIELDS)}")
    if count_by not in (None, "internalHits", "externalHits"):
        raise ValueError("count_by: must be internalHits or externalHits")
    fields = [GROUP_FIELDS[g] for g in group_by]
    per_source = any(f[2] for f in fields)
    if count_by is None and "value" in group_by:
        count_by = "externalHits"  # the reference's default when grouping by value
    column = {"internalHits": "internal_hits", "externalHits": "external_hits"}.get(count_by or "")
    if column is None:
        measure = "count(DISTINCT i.value)" if per_source else "count(*)"
    else:
        measure = f"sum({'s' if per_source else 'i'}.{column})::bigint"
    keys = ", ".join(f"{expr} AS k{n}" for n, (expr, _, _) in enumerate(fields)) or "NULL AS k0"
    group = ", ".join(f"k{n}" for n in range(len(fields))) or "k0"
    join = "JOIN indicator_sources s ON s.value = i.value" if per_source else ""
    return (
        f"SELECT {keys}, {measure} AS count FROM indicators i {join} WHERE {where} "
        f"GROUP BY {group} ORDER BY count {{direction}}, {group} LIMIT {limit_param}"
    )


def dashboard_ids(group_by: list[str]) -> list[str]:
    return [GROUP_FIELDS[g][1] for g in group_by]


def ordered_dashboard_query(
    group_by: list[str], count_by: str | None, where: str, params: list[Any], ascending: bool
) -> str:
    """:func:`dashboard_query` after the filter's ``params`` (the limit is the next one), in the given order."""
    sql = dashboard_query(group_by, count_by, where, f"${len(params) + 1}")
    return sql.replace("{direction}", "ASC" if ascending else "DESC")


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
