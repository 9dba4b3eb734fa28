"""The filter language's two back ends agree on real data: the SQL that GET filters and back-fills
run in PostgreSQL selects exactly the indicators that the in-memory evaluator (which the rule-engine
uses on every batch) accepts, for random filters over random indicators."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cte_common.query import Node, SqlParams, evaluate, to_sql
from tests.conftest import Env
from tests.unit.test_query import EVERY_SEVERITY, EVERY_TYPE, asts

TEXTS = st.sampled_from(["", "a", "A", "ab", "Ab c", "phish", "b", "é", "É"])
NUMS = st.integers(-2, 4)
DATES = st.sampled_from([datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3)])
SEVERITIES = st.sampled_from(EVERY_SEVERITY)
TYPES = st.sampled_from(EVERY_TYPE)

source_entry = st.fixed_dictionaries(
    {
        "source": TEXTS,
        "reputation": st.none() | NUMS,
        "internalHits": NUMS,
        "externalHits": NUMS,
        "firstSeen": DATES,
        "lastSeen": DATES,
        "severity": SEVERITIES,
        "comments": TEXTS,
        "extendedInformation": TEXTS,
        "tags": st.lists(TEXTS, max_size=2),
        "retracted": st.booleans(),
    }
)
indicator = st.fixed_dictionaries(
    {
        "type": TYPES,
        "test": st.booleans(),
        "safe": st.booleans(),
        "active": st.booleans(),
        "expiresAt": st.none() | DATES,
        "internalHits": NUMS,
        "externalHits": NUMS,
        "sharedWith": st.lists(TEXTS, max_size=2),
        # An indicator always has a source: it is deleted with its last one.
        "sources": st.lists(source_entry, min_size=1, max_size=3, unique_by=lambda s: s["source"]),
    }
)
batches = st.lists(indicator, min_size=1, max_size=6).map(
    lambda xs: [dict(x, value=f"v{n}" + ("A" if n % 2 else "a")) for n, x in enumerate(xs)]
)


@pytest.fixture(scope="module")
def scratch(env: Env) -> Iterator[tuple[asyncio.AbstractEventLoop, asyncpg.Connection[Any]]]:
    """A private schema with the read model's tables (migrated DDL copied with LIKE) on its own loop."""
    loop = asyncio.new_event_loop()
    schema = "qagree_" + secrets.token_hex(4)
    conn = loop.run_until_complete(asyncpg.connect(env.database_url))
    loop.run_until_complete(
        conn.execute(
            f"""
            CREATE SCHEMA {schema};
            CREATE TABLE {schema}.indicators (LIKE public.indicators INCLUDING ALL);
            CREATE TABLE {schema}.indicator_sources (LIKE public.indicator_sources INCLUDING ALL);
            SET search_path TO {schema};
            """
        )
    )
    try:
        yield loop, conn
    finally:
        loop.run_until_complete(conn.execute(f"DROP SCHEMA {schema} CASCADE"))
        loop.run_until_complete(conn.close())
        loop.close()


def _last_seen(x: dict[str, Any]) -> datetime | None:
    """The indicator's own lastSeen as the rule-engine keeps it: the latest of its current sources' (the
    SQL answers per-source lastSeen conditions from it)."""
    return max((s["lastSeen"] for s in x["sources"]), default=None)


async def _selected(conn: asyncpg.Connection[Any], node: Node, inds: list[dict[str, Any]]) -> set[str]:
    async with conn.transaction():
        await conn.execute("TRUNCATE indicators, indicator_sources")
        await conn.executemany(
            "INSERT INTO indicators (value, type, test, safe, active, expires_at, source, first_seen, last_seen, "
            "severity, internal_hits, external_hits, shared_with) "
            "VALUES ($1, $2, $3, $4, $5, $6, 's', now(), coalesce($10, now()), 'low', $7, $8, $9)",
            [
                (
                    x["value"],
                    x["type"],
                    x["test"],
                    x["safe"],
                    x["active"],
                    x["expiresAt"],
                    x["internalHits"],
                    x["externalHits"],
                    x["sharedWith"],
                    _last_seen(x),
                )
                for x in inds
            ],
        )
        await conn.executemany(
            "INSERT INTO indicator_sources (value, source, internal_hits, external_hits, first_seen, last_seen, "
            "reputation, severity, comments, extended_information, tags, retracted) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            [
                (
                    x["value"],
                    s["source"],
                    s["internalHits"],
                    s["externalHits"],
                    s["firstSeen"],
                    s["lastSeen"],
                    s["reputation"],
                    s["severity"],
                    s["comments"],
                    s["extendedInformation"],
                    s["tags"],
                    s["retracted"],
                )
                for x in inds
                for s in x["sources"]
            ],
        )
        params = SqlParams(start=1)
        where = to_sql(node, params)
        rows = await conn.fetch(f"SELECT value FROM indicators i WHERE {where}", *params.values)
    return {r["value"] for r in rows}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(node=asts(texts=TEXTS, numbers=NUMS, dates=DATES), inds=batches)
def test_sql_and_the_evaluator_select_the_same_indicators(
    scratch: tuple[asyncio.AbstractEventLoop, asyncpg.Connection[Any]], node: Node, inds: list[dict[str, Any]]
) -> None:
    loop, conn = scratch
    got = loop.run_until_complete(_selected(conn, node, inds))
    want = {x["value"] for x in inds if evaluate(node, x)}
    assert got == want, node
