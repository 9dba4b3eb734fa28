"""SQL of the dashboards: grouped counts over the read model (read only)."""

from __future__ import annotations

from typing import Any, Final

import asyncpg

from cte_common.db import Connection
from cte_common.indicator_schema import FILTER_FIELD_PATHS, FilterField

# group_by fields of the reference: paths of filter fields (their column, and their name is the key in
# "_id"). A per-source field needs the sources join.
GROUPABLE: Final = (
    "value",
    "type",
    "test",
    "active",
    "internalHits",
    "externalHits",
    "expiresAt",
    "sources.source",
    "sources.comments",
    "sources.reputation",
    "sources.firstSeen",
    "sources.lastSeen",
)


def dashboard_query(group_by: list[str], count_by: str | None, where: str, limit_param: str) -> str:
    """SQL of GET /api/cte/dashboards/: group the filtered indicators and count (or sum hits).

    Per-source fields group per source entry (MongoDB would group by the whole array of values); an
    indicator then counts once in each of its sources' groups.
    """
    unknown = [g for g in group_by if g not in GROUPABLE]
    if unknown:
        raise ValueError(f"group_by: unknown field {unknown[0]!r}; allowed: {', '.join(GROUPABLE)}")
    if count_by not in (None, "internalHits", "externalHits"):
        raise ValueError("count_by: must be internalHits or externalHits")
    fields = [FILTER_FIELD_PATHS[g] for g in group_by]
    per_source = any(f.per_source for f in fields)
    if count_by is None and "value" in group_by:
        count_by = "externalHits"  # the reference's default when grouping by value
    if count_by is None:
        measure = "count(DISTINCT i.value)" if per_source else "count(*)"
    else:
        summed = FILTER_FIELD_PATHS[f"sources.{count_by}" if per_source else count_by]
        measure = f"sum({_qualified(summed)})::bigint"
    keys = ", ".join(f"{_qualified(f)} AS k{n}" for n, f in enumerate(fields)) or "NULL AS k0"
    group = ", ".join(f"k{n}" for n in range(len(fields))) or "k0"
    join = "JOIN indicator_sources s ON s.value = i.value" if per_source else ""
    return (
        f"SELECT {keys}, {measure} AS count FROM indicators i {join} WHERE {where} "
        f"GROUP BY {group} ORDER BY count {{direction}}, {group} LIMIT {limit_param}"
    )


def _qualified(field: FilterField) -> str:
    return f"{'s' if field.per_source else 'i'}.{field.column}"


def dashboard_ids(group_by: list[str]) -> list[str]:
    """The keys of "_id", one per group_by field: the field's name without ``sources.``."""
    return [FILTER_FIELD_PATHS[g].name for g in group_by]


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


async def shared_counts(conn: Connection, rule: str, source: str, destination: str | None) -> list[asyncpg.Record]:
    """Per type, the values the rule-engine decided to share through the sharings of ``rule`` from
    ``source`` (to ``destination`` when given)."""
    return list(
        await conn.fetch(
            """
            SELECT i.type, count(DISTINCT d.value) AS shared
            FROM sharings s JOIN share_decisions d ON d.sharing_id = s.id JOIN indicators i ON i.value = d.value
            WHERE s.rule = $1 AND s.source = $2 AND ($3::text IS NULL OR s.destination = $3)
            GROUP BY i.type
            """,
            rule,
            source,
            destination,
        )
    )
