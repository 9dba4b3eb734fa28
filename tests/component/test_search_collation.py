"""Case-insensitive searches on value and source after their columns moved to code point order.

The key columns compare as bytes (COLLATE "C", migration 0026), and lower() under "C" maps ASCII letters
only. The query language lowers them under the database's own collation instead, and the two expression
indexes are built on that same expression: a search still folds every letter, and still reads its index.
Were the query and the indexes to drift apart, the search would still answer, from a scan of every row."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cte_common.db import Pool
from cte_common.query import parse_json
from cte_common.query.sql import SqlParams, to_sql

SEEN = datetime(2026, 1, 1, tzinfo=UTC)


async def _matching(db: Pool, filters: dict[str, object]) -> tuple[list[str], str]:
    """The values the filter selects, and its plan with sequential scans priced out of reach (an index
    that fits the expression is then always chosen)."""
    params = SqlParams()
    where = to_sql(parse_json(filters), params)
    query = f"SELECT i.value FROM indicators i WHERE {where} ORDER BY i.value"
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + query, *params.values)  # (decoded by the pool)
        values = [r["value"] for r in await conn.fetch(query, *params.values)]
    return values, json.dumps(plan)


async def test_value_and_source_searches_fold_every_letter_and_use_their_indexes(db: Pool) -> None:
    values = [
        "https://ÉCOLE.collation.example/Ä",
        "https://école.collation.example/ä",
        "https://other.collation.example/",
    ]
    async with db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO indicators (value, type, source, first_seen, last_seen, severity) "
            "VALUES ($1, 'url', 'Ärzte-Feed', $2, $2, 'low')",
            [(v, SEEN) for v in values],
        )
        await conn.executemany(
            "INSERT INTO indicator_sources (value, source, first_seen, last_seen, severity) "
            "VALUES ($1, $2, $3, $3, 'low')",
            [(values[0], "Ärzte-Feed", SEEN), (values[1], "ÄRZTE-FEED", SEEN), (values[2], "other", SEEN)],
        )
    try:
        found, plan = await _matching(db, {"value": "HTTPS://école.COLLATION.example/Ä"})
        assert found == sorted(values[:2])
        assert "indicators_value_lower" in plan

        found, plan = await _matching(db, {"sources": {"$elemMatch": {"source": "ärzte-feed"}}})
        assert found == sorted(values[:2])
        assert "indicator_sources_source_lower" in plan
    finally:
        async with db.acquire() as conn:
            await conn.execute("DELETE FROM indicator_sources WHERE value = ANY($1::text[])", values)
            await conn.execute("DELETE FROM indicators WHERE value = ANY($1::text[])", values)
