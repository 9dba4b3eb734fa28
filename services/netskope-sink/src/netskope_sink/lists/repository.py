"""SQL of list pushing: the one writer of list_members, list_state, list_pushed and list_outcomes; it
reads sharings, configurations and tenants (the ingest-api's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cte_common.db import Connection
from cte_common.events import ShareIntent
from cte_common.sharing import Candidate

Conn = Connection

_UPSERT_MEMBERS = """
INSERT INTO list_members (list_key, value, type, priority, cost_bytes)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int[])
ON CONFLICT (list_key, value) DO UPDATE SET
    type = EXCLUDED.type, priority = EXCLUDED.priority, cost_bytes = EXCLUDED.cost_bytes, updated_at = now()
WHERE (list_members.priority, list_members.cost_bytes)
      IS DISTINCT FROM (EXCLUDED.priority, EXCLUDED.cost_bytes)
"""
_DELETE_MEMBERS = """
DELETE FROM list_members AS m USING unnest($1::text[], $2::text[]) AS x(l, v)
WHERE m.list_key = x.l AND m.value = x.v
"""
# A new intent makes its list due at once (a failing list keeps its backoff).
_TOUCH_LISTS = """
INSERT INTO list_state (list_key, version) SELECT unnest($1::text[]), 1
ON CONFLICT (list_key) DO UPDATE SET version = list_state.version + 1
"""


async def apply_intents(conn: Conn, intents: Sequence[ShareIntent]) -> None:
    adds = [i for i in intents if i.add]
    removes = [i for i in intents if not i.add]
    if adds:
        await conn.execute(
            _UPSERT_MEMBERS,
            [i.list_key for i in adds],
            [i.value for i in adds],
            [i.type.value for i in adds],
            [i.priority for i in adds],
            [i.cost_bytes for i in adds],
        )
    if removes:
        await conn.execute(_DELETE_MEMBERS, [i.list_key for i in removes], [i.value for i in removes])
    if intents:
        await conn.execute(_TOUCH_LISTS, sorted({i.list_key for i in intents}))


async def due_lists(conn: Conn, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT list_key FROM list_state WHERE version > flushed_version AND next_attempt_at <= now() "
        "ORDER BY next_attempt_at LIMIT $1",
        limit,
    )
    return [r["list_key"] for r in rows]


async def try_lock_list(conn: Conn, list_key: str) -> bool:
    """A session lock: one sink process pushes a list at a time, whichever consumer owns its partition."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 7))", list_key))


async def unlock_list(conn: Conn, list_key: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 7))", list_key)


async def list_version(conn: Conn, list_key: str) -> int:
    version: int = await conn.fetchval("SELECT version FROM list_state WHERE list_key = $1", list_key)
    return version


async def destination(conn: Conn, tenant: str, list_key: str) -> dict[str, Any] | None:
    """The tenant (with encrypted tokens), and the sharing's target and connection settings if it exists."""
    row = await conn.fetchrow(
        """
        SELECT t.name AS tenant, t.base_url, t.v1_token_encrypted, t.v2_token_encrypted, t.use_proxy AS tenant_proxy,
               s.parameters, c.ssl_validation, c.use_proxy
        FROM tenants t
        LEFT JOIN sharings s ON s.list_key = $2
        LEFT JOIN configurations c ON c.name = s.destination
        WHERE t.name = $1
        """,
        tenant,
        list_key,
    )
    return dict(row) if row else None


async def candidates(conn: Conn, list_key: str) -> tuple[list[Candidate], dict[str, str]]:
    """The list's desired members with their priorities and costs, and the type of each member that is
    not a URL (to_entries reads a missing type as url: a list at its cap may hold a million URLs)."""
    members: list[Candidate] = []
    # In chunks from a cursor: a list at its cap can have a million members, and holding all their
    # rows next to the candidates would double the memory. _make builds each tuple in C (the named
    # tuple's constructor is a Python function).
    async with conn.transaction():
        cursor = await conn.cursor("SELECT value, priority, cost_bytes FROM list_members WHERE list_key = $1", list_key)
        while chunk := await cursor.fetch(50_000):
            members.extend(map(Candidate._make, chunk))
    kinds = await conn.fetch("SELECT value, type FROM list_members WHERE list_key = $1 AND type <> 'url'", list_key)
    return members, {r[0]: r[1] for r in kinds}


async def pushed(conn: Conn, list_key: str) -> set[str]:
    return {r["value"] for r in await conn.fetch("SELECT value FROM list_pushed WHERE list_key = $1", list_key)}


async def mark_uncertain(conn: Conn, list_key: str) -> bool:
    """Mark the list's tenant content unknown until the push is recorded; return whether it already was.

    Runs outside any transaction, so the mark is durable before the tenant is called.
    """
    was: bool = await conn.fetchval(
        "UPDATE list_state s SET uncertain = true FROM list_state old "
        "WHERE s.list_key = $1 AND old.list_key = s.list_key RETURNING old.uncertain",
        list_key,
    )
    return bool(was)


async def outcomes(conn: Conn, list_key: str) -> dict[str, str]:
    rows = await conn.fetch("SELECT value, outcome FROM list_outcomes WHERE list_key = $1", list_key)
    return {r["value"]: r["outcome"] for r in rows}


async def record_push(
    conn: Conn,
    list_key: str,
    *,
    version: int,
    selected: list[str],
    held: set[str] | None,
    outcomes: dict[str, tuple[str, str]],
    entries: int,
    bytes_: int,
    cap: int,
    next_push_in_seconds: float = 0.0,
) -> None:
    """What the tenant now holds and what was left out, set-wise, and the list flushed up to ``version``.

    Only the difference from ``held`` (the record before the push) is written; with ``held`` None (the
    record was not trusted) the record is rewritten whole.
    """
    if held is None:
        await conn.execute("DELETE FROM list_pushed WHERE list_key = $1", list_key)
        added = selected
    else:
        wanted = set(selected)
        # The removed values are computed here: "NOT (value = ANY(...))" over a large array degrades to
        # a slow generic plan once the statement is prepared and reused.
        removed = [v for v in held if v not in wanted]
        added = [v for v in selected if v not in held]
        if removed:
            await conn.execute(
                "DELETE FROM list_pushed WHERE list_key = $1 AND value = ANY($2::text[])", list_key, removed
            )
    if added:
        await conn.execute(
            "INSERT INTO list_pushed (list_key, value) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            list_key,
            added,
        )
    await conn.execute("DELETE FROM list_outcomes WHERE list_key = $1", list_key)
    if outcomes:
        # COPY: a list at its cap can leave most of a million candidates out, and the rows were just
        # deleted, so there is nothing to conflict with.
        await conn.copy_records_to_table(
            "list_outcomes",
            records=((list_key, v, o, r) for v, (o, r) in outcomes.items()),
            columns=["list_key", "value", "outcome", "reason"],
        )
    await conn.execute(
        """
        UPDATE list_state SET flushed_version = $2, failures = 0, last_error = NULL, last_push_at = now(),
            uncertain = false, next_attempt_at = now() + make_interval(secs => $6),
            entries = $3, bytes = $4, cap_bytes = $5,
            left_out = (SELECT count(*) FROM list_outcomes WHERE list_key = $1 AND outcome = 'left_out'),
            rejected = (SELECT count(*) FROM list_outcomes WHERE list_key = $1 AND outcome = 'rejected')
        WHERE list_key = $1
        """,
        list_key,
        version,
        entries,
        bytes_,
        cap,
        next_push_in_seconds,
    )


async def record_failure(conn: Conn, list_key: str, error: str, retry_in_seconds: float) -> None:
    """The list stays due; it is tried again after a backoff that grows with its failures."""
    await conn.execute(
        "UPDATE list_state SET failures = failures + 1, last_error = $2, "
        "next_attempt_at = now() + make_interval(secs => $3) WHERE list_key = $1",
        list_key,
        error[:2000],
        retry_in_seconds,
    )


async def failures(conn: Conn, list_key: str) -> int:
    n: int = await conn.fetchval("SELECT failures FROM list_state WHERE list_key = $1", list_key)
    return n
