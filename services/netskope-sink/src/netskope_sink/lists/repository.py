"""SQL of list pushing: the one writer of list_members, list_state, list_pushed and list_outcomes; it
reads sharings, configurations and tenants (the ingest-api's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from cte_common.db import Connection
from cte_common.events import ShareIntent

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
        keys, values = [i.list_key for i in removes], [i.value for i in removes]
        await conn.execute(_DELETE_MEMBERS, keys, values)
        # A value that leaves the list has no outcome in it any more (it is retried if it comes back).
        await conn.execute(_DELETE_MEMBERS.replace("list_members", "list_outcomes"), keys, values)
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


# The push being prepared or recorded, per list, on the flusher's connection (session-local, never
# logged): only what changes. ``change`` is 'append' (a selected value whose entry the tenant does not
# hold yet; ``entry`` is what is sent), 'remove' (an entry the tenant holds that must go; value = entry),
# 'left_out' (a value newly left out, or left out for another reason; ``reason``) or 'shared' (a value
# selected again whose left-out outcome must go).
_CREATE_CHANGES = """
CREATE TEMP TABLE IF NOT EXISTS push_changes (
    list_key text NOT NULL, change text NOT NULL, value text NOT NULL, entry text, reason text NOT NULL DEFAULT ''
)
"""
# Tag changes of the push being recorded, streamed to indicator events before the record commits.
_CREATE_TAGS = "CREATE TEMP TABLE IF NOT EXISTS push_tags (list_key text, tag text, add boolean, value text)"

# The selection within the cap, set-wise: the running byte count in priority order (the value breaks
# ties, in code point order like the Python str order), cut at the first value that does not fit or at
# the entry limit. Costs are positive, so "used <= cap" keeps exactly a prefix. Refused values are never
# candidates. ``entry`` is the value as the tenant holds it: a URL list has no scheme and no IPv6.
_RANKED = """
WITH ranked AS MATERIALIZED (
    SELECT m.value,
           CASE WHEN NOT $4 THEN m.value
                WHEN m.type = 'ipv6' THEN NULL
                WHEN m.type = 'url' AND (m.value LIKE 'http://%' OR m.value LIKE 'https://%' OR m.value LIKE 'ftp://%')
                    THEN substr(m.value, strpos(m.value, '://') + 3)
                ELSE m.value END AS entry,
           1 + sum(m.cost_bytes) OVER w AS used, row_number() OVER w AS n
    FROM list_members m
    WHERE m.list_key = $1 AND NOT EXISTS (
        SELECT 1 FROM list_outcomes r WHERE r.list_key = $1 AND r.value = m.value AND r.outcome = 'rejected')
    WINDOW w AS (ORDER BY m.priority DESC, m.value COLLATE "C" ROWS UNBOUNDED PRECEDING)
), sel AS (
    SELECT value, entry, used <= $2 AND n <= $3 AS kept, used FROM ranked
), held AS (
    SELECT p.value FROM list_pushed p WHERE p.list_key = $1 AND NOT $5
), kept_entries AS (
    SELECT DISTINCT entry FROM sel WHERE kept AND entry IS NOT NULL
), changes AS (
    INSERT INTO push_changes (list_key, change, value, entry, reason)
    SELECT $1, 'append', s.value, s.entry, '' FROM sel s
    WHERE s.kept AND s.entry IS NOT NULL AND NOT EXISTS (SELECT 1 FROM held h WHERE h.value = s.entry)
    UNION ALL
    SELECT $1, 'remove', h.value, h.value, '' FROM held h
    WHERE NOT EXISTS (SELECT 1 FROM kept_entries k WHERE k.entry = h.value)
    UNION ALL
    SELECT $1, 'left_out', w.value, NULL, w.reason
    FROM (SELECT value, CASE WHEN kept THEN $6 ELSE '' END AS reason FROM sel WHERE NOT kept OR entry IS NULL) w
    WHERE NOT EXISTS (SELECT 1 FROM list_outcomes o WHERE o.list_key = $1 AND o.value = w.value
                      AND o.outcome = 'left_out' AND o.reason = w.reason)
    UNION ALL
    SELECT $1, 'shared', s.value, s.entry, '' FROM sel s
    WHERE s.kept AND s.entry IS NOT NULL
      AND EXISTS (SELECT 1 FROM list_outcomes o WHERE o.list_key = $1 AND o.value = s.value)
    RETURNING change
)
SELECT (SELECT count(*) FROM sel WHERE kept) AS kept,
       (SELECT coalesce(max(used), 1) FROM sel WHERE kept) AS bytes,
       (SELECT count(*) FROM kept_entries) AS entries,
       (SELECT count(*) FROM changes WHERE change = 'append') AS appends,
       (SELECT count(*) FROM changes WHERE change = 'remove') AS removes,
       EXISTS (SELECT 1 FROM held) AS holds_any
"""


@dataclass(frozen=True)
class PreparedPush:
    """A push worked out in PostgreSQL (its changes in ``push_changes`` on the same connection)."""

    kept: int  # values within the cap
    bytes: int  # their cost, as the tenant's cap counts it
    entries: int  # distinct entries they make
    appends: int  # values whose entry the tenant does not hold yet
    removes: int  # entries the tenant holds that must go
    holds_any: bool  # whether the tenant is known to hold anything of ours


async def prepare_push(
    conn: Conn, list_key: str, *, cap_bytes: int, max_entries: int, url_list: bool, uncertain: bool, unfit_reason: str
) -> PreparedPush:
    """Select within the cap and diff against what the tenant holds (nothing when ``uncertain``), in
    PostgreSQL; only the changes are written (to ``push_changes``), nothing is loaded."""
    await conn.execute(_CREATE_CHANGES)
    await conn.execute("DELETE FROM push_changes WHERE list_key = $1", list_key)
    row = await conn.fetchrow(_RANKED, list_key, cap_bytes, max_entries, url_list, uncertain, unfit_reason)
    assert row is not None
    return PreparedPush(
        int(row["kept"]),
        int(row["bytes"]),
        int(row["entries"]),
        int(row["appends"]),
        int(row["removes"]),
        bool(row["holds_any"]),
    )


# What the tenant is to hold: what it holds less the removals, plus the appends (all of them when the
# record is not trusted: then nothing is "held" and everything selected is an append).
_WHOLE = """
SELECT p.value FROM list_pushed p
WHERE p.list_key = $1 AND NOT $2
  AND NOT EXISTS (SELECT 1 FROM push_changes c WHERE c.list_key = $1 AND c.change = 'remove' AND c.value = p.value)
UNION
SELECT entry FROM push_changes WHERE list_key = $1 AND change = 'append'
"""
_APPENDS = "SELECT DISTINCT entry FROM push_changes WHERE list_key = $1 AND change = 'append'"


async def stream_entries(
    conn: Conn, list_key: str, *, whole: bool, uncertain: bool, chunk: int = 10_000
) -> AsyncIterator[list[str]]:
    """The entries of a push in chunks from a cursor: the whole list to hold, or only the appends."""
    async with conn.transaction():
        if whole:
            cursor = await conn.cursor(_WHOLE, list_key, uncertain)
        else:
            cursor = await conn.cursor(_APPENDS, list_key)
        while rows := await cursor.fetch(chunk):
            yield [r[0] for r in rows]


_RECORD_PUSHED = """
WITH gone AS (
    DELETE FROM list_pushed p USING push_changes c
    WHERE p.list_key = $1 AND c.list_key = $1 AND c.change = 'remove' AND c.value = p.value
)
INSERT INTO list_pushed (list_key, value)
SELECT DISTINCT $1, entry FROM push_changes
WHERE list_key = $1 AND change = 'append' AND NOT (entry = ANY($2::text[]))
ON CONFLICT DO NOTHING
"""
# Outcomes change only where the push changed them; a value that left the list meanwhile (its
# intents' transaction removed its outcome) gets none. Tag changes are collected for the events.
_RECORD_SHARED = """
WITH cleared AS (
    DELETE FROM list_outcomes o USING push_changes c
    WHERE o.list_key = $1 AND c.list_key = $1 AND c.change = 'shared' AND c.value = o.value
      AND NOT (c.entry = ANY($2::text[]))
    RETURNING o.value, o.outcome
)
INSERT INTO push_tags (list_key, tag, add, value)
SELECT $1, CASE outcome WHEN 'left_out' THEN $3 ELSE $4 END, false, value FROM cleared
"""
_RECORD_LEFT_OUT = """
WITH changed AS (
    INSERT INTO list_outcomes AS o (list_key, value, outcome, reason)
    SELECT $1, c.value, 'left_out', c.reason FROM push_changes c
    WHERE c.list_key = $1 AND c.change = 'left_out'
      AND EXISTS (SELECT 1 FROM list_members m WHERE m.list_key = $1 AND m.value = c.value)
    ON CONFLICT (list_key, value) DO UPDATE SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason
    RETURNING o.value, o.xmax = 0 AS inserted
)
INSERT INTO push_tags (list_key, tag, add, value) SELECT $1, $2, true, value FROM changed WHERE inserted
"""
_RECORD_REJECTED = """
WITH refused AS (
    SELECT DISTINCT c.value, x.reason FROM push_changes c
    JOIN unnest($2::text[], $3::text[]) AS x(entry, reason) ON x.entry = c.entry
    WHERE c.list_key = $1 AND c.change = 'append'
      AND EXISTS (SELECT 1 FROM list_members m WHERE m.list_key = $1 AND m.value = c.value)
), changed AS (
    INSERT INTO list_outcomes AS o (list_key, value, outcome, reason)
    SELECT $1, value, 'rejected', reason FROM refused
    ON CONFLICT (list_key, value) DO UPDATE SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason
    RETURNING o.value
)
INSERT INTO push_tags (list_key, tag, add, value) SELECT $1, $4, true, value FROM changed
"""


async def record_push(
    conn: Conn,
    list_key: str,
    *,
    version: int,
    uncertain: bool,
    refused: dict[str, str],
    tags: tuple[str, str],
    entries: int,
    bytes_: int,
    cap: int,
    next_push_in_seconds: float = 0.0,
) -> None:
    """Apply the prepared push's changes (run it in the transaction that publishes the tag events read
    by ``stream_tags``): what the tenant now holds, the outcomes that changed, and the list flushed up
    to ``version``. ``refused``: entries the tenant refused, with its reason; ``tags``: the names of
    the left-out and the refused tags."""
    unshared, invalid = tags
    await conn.execute(_CREATE_TAGS)
    await conn.execute("DELETE FROM push_tags WHERE list_key = $1", list_key)
    if uncertain:
        await conn.execute("DELETE FROM list_pushed WHERE list_key = $1", list_key)
    bad = list(refused)
    await conn.execute(_RECORD_PUSHED, list_key, bad)
    await conn.execute(_RECORD_SHARED, list_key, bad, unshared, invalid)
    await conn.execute(_RECORD_LEFT_OUT, list_key, unshared)
    if refused:
        await conn.execute(_RECORD_REJECTED, list_key, bad, [refused[e] for e in bad], invalid)
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
        entries - len(refused),
        bytes_,
        cap,
        next_push_in_seconds,
    )


async def stream_tags(conn: Conn, list_key: str, chunk: int = 50_000) -> AsyncIterator[tuple[str, bool, list[str]]]:
    """The recorded push's tag changes, (tag, add, values) in chunks, from a cursor (inside the
    record's transaction)."""
    cursor = await conn.cursor("SELECT tag, add, value FROM push_tags WHERE list_key = $1 ORDER BY tag, add", list_key)
    while rows := await cursor.fetch(chunk):
        group: list[str] = []
        current: tuple[str, bool] | None = None
        for tag, add, value in rows:
            if current is not None and (tag, add) != current:
                yield (*current, group)
                group = []
            current = (tag, add)
            group.append(value)
        if current is not None:
            yield (*current, group)


async def tag_counts(conn: Conn, list_key: str) -> dict[tuple[str, bool], int]:
    rows = await conn.fetch("SELECT tag, add, count(*) FROM push_tags WHERE list_key = $1 GROUP BY 1, 2", list_key)
    return {(r[0], r[1]): r[2] for r in rows}


async def forget_push(conn: Conn, list_key: str) -> None:
    """Drop a push's working rows (after it was recorded, or when it failed)."""
    await conn.execute(_CREATE_CHANGES)
    await conn.execute(_CREATE_TAGS)
    await conn.execute("DELETE FROM push_changes WHERE list_key = $1", list_key)
    await conn.execute("DELETE FROM push_tags WHERE list_key = $1", list_key)


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
