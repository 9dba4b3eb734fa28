"""SQL over the read model (indicators, indicator_sources: the rule-engine writes it, the ingest-api only
reads it) and over the consumers' positions in it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from cte_common.db import Connection


async def list_indicators(
    conn: Connection, *, where: str, params: list[Any], order_by: str, skip: int, limit: int
) -> list[dict[str, Any]]:
    n = len(params)
    rows = await conn.fetch(
        f"SELECT i.* FROM indicators i WHERE {where} {order_by} OFFSET ${n + 1} LIMIT ${n + 2}",
        *params,
        skip,
        limit,
    )
    return [dict(r) for r in rows]


async def count_indicators(conn: Connection, *, where: str, params: list[Any]) -> int:
    count: int = await conn.fetchval(f"SELECT count(*) FROM indicators i WHERE {where}", *params)
    return count


async def sources_of(conn: Connection, values: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    rows = await conn.fetch(
        "SELECT * FROM indicator_sources WHERE value = ANY($1::text[]) ORDER BY value, source", list(values)
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["value"], []).append(dict(r))
    return out


async def list_status_of(conn: Connection, values: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Where each value stands in the lists of the sharings that still exist (list_value_status,
    the netskope-sink's state): its source and destination configurations and its status."""
    rows = await conn.fetch(
        "SELECT value, source, destination, status FROM list_value_status "
        "WHERE value = ANY($1::text[]) AND destination IS NOT NULL ORDER BY value, destination",
        list(values),
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["value"], []).append(dict(r))
    return out


async def list_indicators_by_value(conn: Connection, values: list[str]) -> list[dict[str, Any]]:
    """The rows of ``values`` that exist, in value order."""
    return await list_indicators(
        conn,
        where="i.value = ANY($1::text[])",
        params=[values],
        order_by="ORDER BY i.value",
        skip=0,
        limit=len(values),
    )


# Sort keys of the reference's GET /indicators/, mapped to SQL over indicators i. Per-source
# fields sort like MongoDB sorts arrays: by the smallest element ascending, the largest descending.
SORT_FIELDS: dict[str, tuple[str, str]] = {
    "value": ("i.value", "i.value"),
    "type": ("i.type", "i.type"),
    "test": ("i.test", "i.test"),
    "active": ("i.active", "i.active"),
    "internalHits": ("i.internal_hits", "i.internal_hits"),
    "externalHits": ("i.external_hits", "i.external_hits"),
    "expiresAt": ("i.expires_at", "i.expires_at"),
    "sources.source": (
        "(SELECT min(source) FROM indicator_sources s WHERE s.value = i.value)",
        "(SELECT max(source) FROM indicator_sources s WHERE s.value = i.value)",
    ),
    "sources.comments": (
        "(SELECT min(comments) FROM indicator_sources s WHERE s.value = i.value)",
        "(SELECT max(comments) FROM indicator_sources s WHERE s.value = i.value)",
    ),
    "sources.reputation": (
        "(SELECT min(reputation) FROM indicator_sources s WHERE s.value = i.value)",
        "(SELECT max(reputation) FROM indicator_sources s WHERE s.value = i.value)",
    ),
    # Both seen-times are kept as min/max over sources on the indicator row, and indexed there.
    "sources.firstSeen": ("i.first_seen", "i.first_seen"),
    "sources.lastSeen": ("i.last_seen", "i.last_seen"),
    "sources.severity": (
        "(SELECT min(array_position(ARRAY['unknown','low','medium','high','critical'], severity))"
        " FROM indicator_sources s WHERE s.value = i.value)",
        "(SELECT max(array_position(ARRAY['unknown','low','medium','high','critical'], severity))"
        " FROM indicator_sources s WHERE s.value = i.value)",
    ),
}


def sort_clause(sort: str | None, ascending: bool) -> str:
    """ORDER BY text from the whitelist; an unknown field means no sort, as in the reference.

    The value breaks ties in the same direction, so (column, value) indexes serve the sort, forwards or
    backwards, and pages are stable. NULLs (only expiresAt has them) sort as PostgreSQL's index does:
    last ascending, first descending.
    """
    if not sort or sort not in SORT_FIELDS:
        return "ORDER BY i.value"
    asc_expr, desc_expr = SORT_FIELDS[sort]
    if ascending:
        return f"ORDER BY {asc_expr} ASC, i.value ASC"
    return f"ORDER BY {desc_expr} DESC, i.value DESC"


async def positions_reached(conn: Connection, consumer: str, marks: Sequence[tuple[str, int, int]]) -> bool:
    """True once ``consumer`` has applied every (topic, partition, offset) in ``marks``."""
    if not marks:
        return True
    pending: int = await conn.fetchval(
        """
        SELECT count(*) FROM unnest($2::text[], $3::int[], $4::bigint[]) AS m(t, p, o)
        LEFT JOIN consumer_offsets c ON c.consumer = $1 AND c.topic = m.t AND c.partition = m.p
        WHERE coalesce(c.next_offset, 0) <= m.o
        """,
        consumer,
        [m[0] for m in marks],
        [m[1] for m in marks],
        [m[2] for m in marks],
    )
    return pending == 0


# Resolving locators to stored values (streamed: a query may match millions)


async def _stream(conn: Connection, query: str, *params: Any, chunk: int = 10_000) -> AsyncIterator[list[str]]:
    """The ``value`` column of ``query`` in chunks; ``conn`` must be inside a transaction (a cursor)."""
    batch: list[str] = []
    async for row in conn.cursor(query, *params, prefetch=chunk):
        batch.append(row["value"])
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def stream_values(conn: Connection, *, where: str, params: list[Any]) -> AsyncIterator[list[str]]:
    """Values of the indicators matching the compiled filter ``where``."""
    return _stream(conn, f"SELECT i.value FROM indicators i WHERE {where}", *params)


def values_with_source(conn: Connection, source: str) -> AsyncIterator[list[str]]:
    return _stream(conn, "SELECT value FROM indicator_sources WHERE source = $1", source)


def values_with_tag(conn: Connection, tag: str) -> AsyncIterator[list[str]]:
    return _stream(conn, "SELECT DISTINCT value FROM indicator_sources WHERE tags @> ARRAY[$1::text]", tag)


async def existing_values(conn: Connection, candidates: Sequence[str], source: str | None) -> list[str]:
    """Which candidate values are stored (with an entry of ``source``, when given)."""
    if source is None:
        rows = await conn.fetch("SELECT value FROM indicators WHERE value = ANY($1::text[])", list(candidates))
    else:
        rows = await conn.fetch(
            "SELECT value FROM indicator_sources WHERE value = ANY($1::text[]) AND source = $2",
            list(candidates),
            source,
        )
    return [r["value"] for r in rows]


# Rule tests and dry runs: candidates streamed with a server-side cursor, their sources per chunk.


async def stream_indicators(
    conn: Connection, *, where: str, params: Sequence[Any], chunk: int = 2_000
) -> AsyncIterator[list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
    """Rows of ``indicators i`` matching ``where``, each with its source rows, in chunks; ``conn``
    must be inside a transaction (a cursor)."""
    batch: list[dict[str, Any]] = []
    async for row in conn.cursor(f"SELECT i.* FROM indicators i WHERE {where}", *params, prefetch=chunk):
        batch.append(dict(row))
        if len(batch) >= chunk:
            yield await _with_sources(conn, batch)
            batch = []
    if batch:
        yield await _with_sources(conn, batch)


async def _with_sources(
    conn: Connection, rows: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    sources = await sources_of(conn, [r["value"] for r in rows])
    return [(r, sources.get(r["value"], [])) for r in rows]
