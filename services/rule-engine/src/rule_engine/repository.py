"""SQL of the rule-engine: it is the one writer of ``indicators`` and ``indicator_sources``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any
from uuid import UUID

from cte_common.db import Connection
from cte_common.events import ShareIntentRecord
from cte_common.indicators import IndicatorType, Severity
from cte_common.query import parse_json
from cte_common.sharing import AllowEntry, RuleDef, RuleException, SharingDef, parse_target
from rule_engine.domain import Announced, Catalog, DecisionChanges, Deleted, IndicatorState, SourceEntry

Conn = Connection

_LOAD_INDICATORS = """
SELECT value, type, test, active, expires_at, source, first_seen, last_seen, reputation, severity,
       comments, extended_information, internal_hits, external_hits, safe
FROM indicators WHERE value = ANY($1::text[])
"""
# The re-evaluation worker reads under row locks, so it decides either before or after a consumer's
# merge of the same indicators, never in between. The consumer needs no such lock: every event of a
# value comes through that value's partition, whose position row it locks first (two members holding
# one partition during a rebalance wait for each other there), it is the only writer of these rows,
# and its writes take the row locks the worker waits for.
_LOAD_INDICATORS_LOCKED = _LOAD_INDICATORS + "FOR UPDATE\n"
_LOAD_SOURCES = """
SELECT value, source, internal_hits, external_hits, first_seen, last_seen, reputation, severity,
       comments, extended_information, tags, retracted
FROM indicator_sources WHERE value = ANY($1::text[])
"""
# New rows are copied in (binary COPY: no parameter arrays to encode, and PostgreSQL inserts them in
# multi-row steps) and loaded rows updated by one statement: no upsert, so no speculative insertion (an
# arbiter probe and a confirmation record per row). Rows are new exactly when the batch did not load
# them: nothing else writes these tables (see _LOAD_INDICATORS).
_INDICATOR_COLUMNS = (
    "value", "type", "test", "active", "expires_at", "source", "first_seen", "last_seen", "reputation",
    "severity", "comments", "extended_information", "internal_hits", "external_hits", "safe",
)  # fmt: skip
# The type and severity are StrEnums, written as the text they are: no Enum.value (a Python-level
# property) per row.
_INDICATOR_ROW = attrgetter(
    "value", "type", "test", "active", "expires_at", "source", "first_seen", "last_seen", "reputation",
    "severity", "comments", "extended_information", "internal_hits", "external_hits", "safe",
)  # fmt: skip
_UPDATE_INDICATORS = """
UPDATE indicators AS i SET
    active = x.active, expires_at = x.expires_at, safe = x.safe, first_seen = x.first_seen,
    last_seen = x.last_seen, internal_hits = x.ih, external_hits = x.eh, updated_at = now()
FROM unnest($1::text[], $2::bool[], $3::timestamptz[], $4::bool[], $5::timestamptz[], $6::timestamptz[],
            $7::bigint[], $8::bigint[]) AS x(value, active, expires_at, safe, first_seen, last_seen, ih, eh)
WHERE i.value = x.value
"""
_SOURCE_COLUMNS = (
    "value", "source", "internal_hits", "external_hits", "first_seen", "last_seen", "reputation", "severity",
    "comments", "extended_information", "tags", "retracted",
)  # fmt: skip
_SOURCE_ROW = attrgetter(
    "source", "internal_hits", "external_hits", "first_seen", "last_seen", "reputation", "severity",
    "comments", "extended_information", "tags", "retracted",
)  # fmt: skip
# Tags of updated entries travel as one array literal per row ('{"a","b"}'): unnest cannot take a ragged
# two-dimensional array, and text[]'s own input is cheaper than parsing JSON.
_UPDATE_SOURCES = """
UPDATE indicator_sources AS s SET
    internal_hits = x.ih, external_hits = x.eh, first_seen = x.fs, last_seen = x.ls, reputation = x.rep,
    severity = x.sev, comments = x.com, extended_information = x.ext, tags = x.tg::text[], retracted = x.ret
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::timestamptz[],
            $7::int[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bool[])
     AS x(v, src, ih, eh, fs, ls, rep, sev, com, ext, tg, ret)
WHERE s.value = x.v AND s.source = x.src
"""


# Enum members by value: calling the enum costs about a microsecond per row, several per event.
_TYPES = {t.value: t for t in IndicatorType}
_SEVERITIES = {s.value: s for s in Severity}


async def load_states(conn: Conn, values: Sequence[str], *, lock: bool = False) -> dict[str, IndicatorState]:
    """The stored states of ``values`` (those that exist), under row locks when ``lock``."""
    rows = await conn.fetch(_LOAD_INDICATORS_LOCKED if lock else _LOAD_INDICATORS, list(values))
    states = {
        r["value"]: IndicatorState(
            value=r["value"],
            type=_TYPES[r["type"]],
            source=r["source"],
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
            reputation=r["reputation"],
            severity=_SEVERITIES[r["severity"]],
            comments=r["comments"],
            extended_information=r["extended_information"],
            expires_at=r["expires_at"],
            active=r["active"],
            test=r["test"],
            safe=r["safe"],
            internal_hits=r["internal_hits"],
            external_hits=r["external_hits"],
        )
        for r in rows
    }
    if states:
        for r in await conn.fetch(_LOAD_SOURCES, list(states)):
            states[r["value"]].sources[r["source"]] = SourceEntry(
                source=r["source"],
                first_seen=r["first_seen"],
                last_seen=r["last_seen"],
                reputation=r["reputation"],
                severity=_SEVERITIES[r["severity"]],
                comments=r["comments"],
                extended_information=r["extended_information"],
                tags=list(r["tags"]),
                internal_hits=r["internal_hits"],
                external_hits=r["external_hits"],
                retracted=r["retracted"],
            )
    return states


# An indicator's sources go with it, in the same statement (no foreign key cascades them: migration 0024).
_DELETE_INDICATORS = """
WITH sources AS (DELETE FROM indicator_sources WHERE value = ANY($1::text[]))
DELETE FROM indicators WHERE value = ANY($1::text[])
"""
# Entries of sources an indicator no longer has (one source's data was deleted).
_DELETE_STALE_SOURCES = """
DELETE FROM indicator_sources s
WHERE s.value = ANY($1::text[])
  AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS k(v, src)
                  WHERE k.v = s.value AND k.src = s.source)
"""


async def save_changes(
    conn: Conn, changed: dict[str, IndicatorState | Deleted], loaded: Mapping[str, IndicatorState]
) -> None:
    """Write changed states and delete deleted indicators with their sources. ``loaded`` is
    what the batch loaded: the rows that exist (and their source entries)."""
    deleted = [v for v, s in changed.items() if isinstance(s, Deleted)]
    states = [s for s in changed.values() if isinstance(s, IndicatorState)]
    if deleted:
        await conn.execute(_DELETE_INDICATORS, deleted)
    if states:
        await _save_states(conn, states, loaded)
        shrunk = [s for s in states if s.dropped_sources]
        if shrunk:
            kept = [(s.value, src) for s in shrunk for src in s.sources]
            await conn.execute(
                _DELETE_STALE_SOURCES,
                [s.value for s in shrunk],
                [v for v, _ in kept],
                [src for _, src in kept],
            )


def _tags_literal(tags: list[str]) -> str:
    """``tags`` as a text[] input literal, every element quoted."""
    if not tags:
        return "{}"
    return "{" + ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in tags) + "}"


async def _save_states(conn: Conn, states: Sequence[IndicatorState], loaded: Mapping[str, IndicatorState]) -> None:
    new = [s for s in states if s.value not in loaded]
    old = [s for s in states if s.value in loaded]
    if new:
        await conn.copy_records_to_table("indicators", records=map(_INDICATOR_ROW, new), columns=_INDICATOR_COLUMNS)
    if old:
        await conn.execute(_UPDATE_INDICATORS, *_columns(old, _UPDATED_INDICATOR))
    inserts: list[tuple[Any, ...]] = []
    updates: list[SourceEntry] = []
    update_values: list[str] = []
    for s in states:
        before = loaded.get(s.value)
        for e in s.sources.values():
            if before is not None and e.source in before.sources:
                # Unchanged entries (another source's sighting of the same indicator) are not rewritten.
                if before.sources[e.source] != e:
                    updates.append(e)
                    update_values.append(s.value)
            else:
                inserts.append((s.value, *_SOURCE_ROW(e)))
    if inserts:
        await conn.copy_records_to_table("indicator_sources", records=inserts, columns=_SOURCE_COLUMNS)
    if updates:
        tags = [_tags_literal(e.tags) for e in updates]
        retracted = [e.retracted for e in updates]
        await conn.execute(_UPDATE_SOURCES, update_values, *_columns(updates, _SOURCE_ENTRY), tags, retracted)


# The updates' parameters in order, as attribute paths (read by attrgetter, in C).
_UPDATED_INDICATOR = (
    "value", "active", "expires_at", "safe", "first_seen", "last_seen", "internal_hits", "external_hits",
)  # fmt: skip
# $2 to $10 of the sources' update ($1 the values, $11 the tags, $12 retracted).
_SOURCE_ENTRY = (
    "source", "internal_hits", "external_hits", "first_seen", "last_seen", "reputation", "severity",
    "comments", "extended_information",
)  # fmt: skip


def _columns(rows: Sequence[object], paths: Sequence[str]) -> list[list[Any]]:
    return [list(map(attrgetter(p), rows)) for p in paths]


# --- the catalog (read from the ingest-api's configuration tables) --------------------------------

# Any insert, update or delete in the three tables changes this (a delete changes a count; an insert
# or update a maximum); cheap enough to check on every batch.
_CATALOG_FINGERPRINT = """
SELECT concat_ws('|',
    (SELECT count(*) || ':' || coalesce(max(id)::text, '') || ':' || coalesce(max(updated_at)::text, '')
       FROM sharings),
    (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') FROM business_rules),
    (SELECT count(*) || ':' || coalesce(max(id)::text, '') FROM allow_list))
"""
_LOAD_SHARINGS = """
SELECT s.id, s.source, s.action, s.parameters, s.list_key, s.priority,
       r.name AS rule_name, r.filter, r.exceptions, r.muted, r.unmute_at
FROM sharings s JOIN business_rules r ON r.name = s.rule
ORDER BY s.id
"""
_LOAD_ALLOW = "SELECT id, kind, pattern FROM allow_list ORDER BY id"
# Sharings deleted while the sink still holds their lists: their decisions must become removes.
_ORPHANS = """
SELECT DISTINCT ON (sharing_id) sharing_id, list_key FROM share_decisions
WHERE sharing_id NOT IN (SELECT id FROM sharings)
"""


async def catalog_fingerprint(conn: Conn) -> str:
    value: str = await conn.fetchval(_CATALOG_FINGERPRINT)
    return value


async def load_catalog(conn: Conn) -> Catalog:
    fingerprint = await catalog_fingerprint(conn)
    sharings = []
    for r in await conn.fetch(_LOAD_SHARINGS):
        target = parse_target(r["action"], r["parameters"])
        rule = RuleDef(
            name=r["rule_name"],
            node=parse_json(r["filter"]),
            exceptions=tuple(
                RuleException(
                    name=e.get("name", ""),
                    node=parse_json(e["filter"]) if e.get("filter") else None,
                    tags=frozenset(e.get("tags") or ()),
                )
                for e in r["exceptions"]
            ),
            muted=r["muted"],
            unmute_at=r["unmute_at"],
        )
        sharings.append(
            SharingDef(
                id=r["id"],
                source=r["source"],
                rule=rule,
                action=r["action"],
                list_key=r["list_key"],
                cap_bytes=target.cap_bytes,
                priority=r["priority"],
            )
        )
    allow = [AllowEntry(r["id"], r["kind"], r["pattern"]) for r in await conn.fetch(_LOAD_ALLOW)]
    orphans = {r["sharing_id"]: r["list_key"] for r in await conn.fetch(_ORPHANS)}
    return Catalog(sharings=sharings, allow=allow, orphan_lists=orphans, fingerprint=fingerprint)


# --- decisions -----------------------------------------------------------------------------------------

_LOAD_DECISIONS = """
SELECT sharing_id, value, list_key, priority, cost_bytes FROM share_decisions WHERE value = ANY($1::text[])
"""
# A decision not loaded (load_decisions, after the merge took the indicators' row locks) is copied in:
# nothing else can insert it meanwhile (the re-evaluation worker decides a value only under its row
# lock, or when its row is gone and decisions remain: then it was loaded). A loaded one is upserted: the
# worker may have removed it meanwhile.
_DECISION_COLUMNS = ("sharing_id", "value", "list_key", "priority", "cost_bytes")
_UPSERT_DECISIONS = """
INSERT INTO share_decisions (sharing_id, value, list_key, priority, cost_bytes)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[], $5::int[])
ON CONFLICT (sharing_id, value) DO UPDATE SET
    list_key = EXCLUDED.list_key, priority = EXCLUDED.priority, cost_bytes = EXCLUDED.cost_bytes
"""
_DELETE_DECISIONS = """
DELETE FROM share_decisions d USING unnest($1::bigint[], $2::text[]) AS x(s, v)
WHERE d.sharing_id = x.s AND d.value = x.v
"""
_ADD_ALLOW_HITS = """
INSERT INTO allow_list_hits (entry_id, hits, last_hit_at)
SELECT e, h, now() FROM unnest($1::bigint[], $2::bigint[]) AS x(e, h)
ON CONFLICT (entry_id) DO UPDATE SET hits = allow_list_hits.hits + EXCLUDED.hits, last_hit_at = now()
"""


async def load_decisions(conn: Conn, values: Sequence[str]) -> dict[str, dict[int, Announced]]:
    out: dict[str, dict[int, Announced]] = {}
    for r in await conn.fetch(_LOAD_DECISIONS, list(values)):
        out.setdefault(r["value"], {})[r["sharing_id"]] = Announced(r["priority"], r["cost_bytes"], r["list_key"])
    return out


async def save_decisions(conn: Conn, changes: DecisionChanges) -> None:
    inserts = [x[:5] for x in changes.upserts if not x[5]]
    updates = [x for x in changes.upserts if x[5]]
    if inserts:
        await conn.copy_records_to_table("share_decisions", records=inserts, columns=_DECISION_COLUMNS)
    if updates:
        await conn.execute(_UPSERT_DECISIONS, *([x[i] for x in updates] for i in range(5)))
    if changes.deletes:
        await conn.execute(_DELETE_DECISIONS, [d[0] for d in changes.deletes], [d[1] for d in changes.deletes])
    if changes.allow_hits:
        # In entry order: several rule-engines add to the same rows, and one order cannot deadlock.
        entries = sorted(changes.allow_hits)
        await conn.execute(_ADD_ALLOW_HITS, entries, [changes.allow_hits[e] for e in entries])


# --- re-evaluations ------------------------------------------------------------------------------------


async def request_reevaluation(conn: Conn, reason: str) -> None:
    await conn.execute("INSERT INTO reevaluations (reason) VALUES ($1)", reason)


async def current_job(conn: Conn) -> dict[str, Any] | None:
    """The newest unfinished re-evaluation; older unfinished ones are superseded by it (it covers all)."""
    row = await conn.fetchrow(
        "SELECT id, after_value, processed, started_at FROM reevaluations WHERE finished_at IS NULL "
        "ORDER BY id DESC LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    if row is not None:
        await conn.execute(
            "UPDATE reevaluations SET finished_at = now() WHERE finished_at IS NULL AND id < $1", row["id"]
        )
        if row["started_at"] is None:
            await conn.execute(
                "UPDATE reevaluations SET started_at = now(), total = (SELECT count(*) FROM indicators) WHERE id = $1",
                row["id"],
            )
    return dict(row) if row is not None else None


async def next_values(conn: Conn, after: str | None, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT value FROM indicators WHERE $1::text IS NULL OR value > $1 ORDER BY value LIMIT $2", after, limit
    )
    return [r["value"] for r in rows]


async def advance_job(conn: Conn, job_id: int, after: str, processed: int) -> None:
    await conn.execute(
        "UPDATE reevaluations SET after_value = $2, processed = processed + $3 WHERE id = $1", job_id, after, processed
    )


async def finish_job(conn: Conn, job_id: int) -> None:
    await conn.execute("UPDATE reevaluations SET finished_at = now() WHERE id = $1", job_id)


# Decisions no walk over ``indicators`` reaches or changes: those of deleted sharings, and those of
# deleted indicators (deleted while their sharing's rule was muted). Muted sharings' decisions stay.
_DANGLING_VALUES = """
SELECT DISTINCT d.value FROM share_decisions d
WHERE NOT EXISTS (SELECT 1 FROM sharings s WHERE s.id = d.sharing_id)
   OR (d.sharing_id <> ALL($1::bigint[]) AND NOT EXISTS (SELECT 1 FROM indicators i WHERE i.value = d.value))
LIMIT $2
"""


async def dangling_values(conn: Conn, muted_sharings: Sequence[int], limit: int) -> list[str]:
    """Values still decided for a sharing that no longer exists, or no longer existing themselves
    while decided for a sharing that is not muted."""
    rows = await conn.fetch(_DANGLING_VALUES, list(muted_sharings), limit)
    return [r["value"] for r in rows]


async def rules_unmuted_since(conn: Conn, since: datetime) -> list[str]:
    rows = await conn.fetch(
        "SELECT name FROM business_rules WHERE muted AND unmute_at > $1 AND unmute_at <= now()", since
    )
    return [r["name"] for r in rows]


async def pending_jobs(conn: Conn) -> int:
    n: int = await conn.fetchval("SELECT count(*) FROM reevaluations WHERE finished_at IS NULL")
    return n


# Sightings of requests sent with an Idempotency-Key (cte_common.keyed_events): applied once.

# Kept well past the API's key lifetime (a day): a retry can only come while its key lives.
APPLIED_SIGHTINGS_KEPT = "2 days"


async def first_applications(conn: Conn, event_ids: Sequence[UUID]) -> set[UUID]:
    """Record ``event_ids`` as applied; the ones not applied before (in the caller's transaction, with
    the consumer's positions). Also forgets up to 1,000 ids older than ``APPLIED_SIGHTINGS_KEPT``."""
    await conn.execute(
        "DELETE FROM applied_sightings WHERE event_id IN (SELECT event_id FROM applied_sightings"
        f" WHERE applied_at < now() - interval '{APPLIED_SIGHTINGS_KEPT}' LIMIT 1000)"
    )
    rows = await conn.fetch(
        "INSERT INTO applied_sightings (event_id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id",
        list(event_ids),
    )
    return {r["event_id"] for r in rows}


# --- the intent journal (see migrations 0015 and 0021) -------------------------------------------------

# One row per list and attempt, its values in an array: a few rows per batch, not one per intent. The
# values of every list come in one array, in the lists' order, each list's a slice of it (first, last).
_JOURNAL_INTENTS = """
INSERT INTO intent_journal (attempt, list_key, indicator_values)
SELECT $1, l, ($3::text[])[f:t] FROM unnest($2::text[], $4::int[], $5::int[]) AS x(l, f, t)
"""
_FORGET_ATTEMPT = "DELETE FROM intent_journal WHERE attempt = $1"
_JOURNAL_HAS_STALE = """
SELECT EXISTS (SELECT 1 FROM intent_journal WHERE created_at <= now() - make_interval(secs => $1))
"""
_TAKE_JOURNAL = """
WITH taken AS (DELETE FROM intent_journal RETURNING list_key, indicator_values)
SELECT list_key, unnest(indicator_values) AS value FROM taken
"""
# What the committed decisions say each (list, value) should be: in the list with its priority and
# cost, or out of it. A list belongs to one sharing (sharings.list_key is unique), and a deleted
# sharing's decisions keep their list until they are removed.
_COMMITTED_INTENTS = """
SELECT x.list_key, x.value, d.priority, d.cost_bytes, i.type
FROM (SELECT DISTINCT l, v FROM unnest($1::text[], $2::text[]) AS u(l, v)) AS x(list_key, value)
LEFT JOIN share_decisions d ON d.value = x.value AND d.list_key = x.list_key
LEFT JOIN indicators i ON i.value = x.value
ORDER BY x.list_key, x.value
"""


async def journal_intents(conn: Conn, attempt: UUID, intents: Sequence[ShareIntentRecord]) -> None:
    """Outside any transaction of the caller's: the rows must survive the deciding transaction's rollback."""
    by_list: dict[str, list[str]] = {}
    for i in intents:
        by_list.setdefault(i.list_key, []).append(i.value)
    values: list[str] = []
    first: list[int] = []
    last: list[int] = []
    for listed in by_list.values():
        first.append(len(values) + 1)  # PostgreSQL's arrays count from 1
        values.extend(listed)
        last.append(len(values))
    await conn.execute(_JOURNAL_INTENTS, attempt, list(by_list), values, first, last)


async def forget_attempt(conn: Conn, attempt: UUID) -> None:
    """In the deciding transaction: its intents are kept by its commit, and by nothing if it rolls back."""
    await conn.execute(_FORGET_ATTEMPT, attempt)


async def journal_has_stale(conn: Conn, older_than_seconds: float) -> bool:
    return bool(await conn.fetchval(_JOURNAL_HAS_STALE, older_than_seconds))


async def take_journal(conn: Conn) -> list[tuple[str, str]]:
    """Every journal row, deleted: only under the exclusive catalog lock, when no decision is in flight."""
    return [(r["list_key"], r["value"]) for r in await conn.fetch(_TAKE_JOURNAL)]


async def committed_intents(conn: Conn, pairs: Sequence[tuple[str, str]]) -> list[ShareIntentRecord]:
    rows = await conn.fetch(_COMMITTED_INTENTS, [p[0] for p in pairs], [p[1] for p in pairs])
    return [
        ShareIntentRecord(
            list_key=r["list_key"],
            value=r["value"],
            # A value no longer stored leaves the list; the sink ignores a removal's type.
            type=IndicatorType(r["type"]) if r["type"] else IndicatorType.URL,
            add=r["priority"] is not None,
            priority=r["priority"] or 0.0,
            cost_bytes=r["cost_bytes"] or 0,
        )
        for r in rows
    ]
