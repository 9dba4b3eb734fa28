"""SQL of the rule-engine: it is the one writer of ``indicators`` and ``indicator_sources``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from cte_common.db import Connection
from cte_common.indicators import IndicatorType, Severity
from rule_engine.domain import Deleted, IndicatorState, SourceEntry

Conn = Connection

# FOR UPDATE: a rebalance may briefly give two members the same partition; the row locks (and the
# consumer position lock taken before) keep their merges of one indicator serial.
_LOAD_INDICATORS = """
SELECT value, type, test, active, expires_at, source, first_seen, last_seen, reputation, severity,
       comments, extended_information, internal_hits, external_hits
FROM indicators WHERE value = ANY($1::text[])
FOR UPDATE
"""
_LOAD_SOURCES = """
SELECT value, source, internal_hits, external_hits, first_seen, last_seen, reputation, severity,
       comments, extended_information, tags, retracted
FROM indicator_sources WHERE value = ANY($1::text[])
"""
_UPSERT_INDICATORS = """
INSERT INTO indicators AS i (value, type, test, active, expires_at, source, first_seen, last_seen,
                             reputation, severity, comments, extended_information,
                             internal_hits, external_hits)
SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::bool[], $5::timestamptz[], $6::text[],
                     $7::timestamptz[], $8::timestamptz[], $9::int[], $10::text[], $11::text[],
                     $12::text[], $13::bigint[], $14::bigint[])
ON CONFLICT (value) DO UPDATE SET
    active = EXCLUDED.active, expires_at = EXCLUDED.expires_at,
    first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen,
    internal_hits = EXCLUDED.internal_hits, external_hits = EXCLUDED.external_hits,
    updated_at = now()
"""
# Tags travel as one JSON array text per row: unnest cannot take a ragged two-dimensional array.
_UPSERT_SOURCES = """
INSERT INTO indicator_sources AS s (value, source, internal_hits, external_hits, first_seen, last_seen,
                                    reputation, severity, comments, extended_information, tags, retracted)
SELECT v, src, ih, eh, fs, ls, rep, sev, com, ext,
       ARRAY(SELECT jsonb_array_elements_text(tg::jsonb)), ret
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::timestamptz[],
            $7::int[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bool[])
     AS x(v, src, ih, eh, fs, ls, rep, sev, com, ext, tg, ret)
ON CONFLICT (value, source) DO UPDATE SET
    internal_hits = EXCLUDED.internal_hits, external_hits = EXCLUDED.external_hits,
    first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen,
    reputation = EXCLUDED.reputation, severity = EXCLUDED.severity, comments = EXCLUDED.comments,
    extended_information = EXCLUDED.extended_information, tags = EXCLUDED.tags,
    retracted = EXCLUDED.retracted
"""


async def load_states(conn: Conn, values: Sequence[str]) -> dict[str, IndicatorState]:
    rows = await conn.fetch(_LOAD_INDICATORS, list(values))
    states = {
        r["value"]: IndicatorState(
            value=r["value"],
            type=IndicatorType(r["type"]),
            source=r["source"],
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
            reputation=r["reputation"],
            severity=Severity(r["severity"]),
            comments=r["comments"],
            extended_information=r["extended_information"],
            expires_at=r["expires_at"],
            active=r["active"],
            test=r["test"],
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
                severity=Severity(r["severity"]),
                comments=r["comments"],
                extended_information=r["extended_information"],
                tags=list(r["tags"]),
                internal_hits=r["internal_hits"],
                external_hits=r["external_hits"],
                retracted=r["retracted"],
            )
    return states


_DELETE_INDICATORS = "DELETE FROM indicators WHERE value = ANY($1::text[])"
# Entries of sources an indicator no longer has (one source's data was deleted).
_DELETE_STALE_SOURCES = """
DELETE FROM indicator_sources s
WHERE s.value = ANY($1::text[])
  AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS k(v, src)
                  WHERE k.v = s.value AND k.src = s.source)
"""


async def save_changes(conn: Conn, changed: dict[str, IndicatorState | Deleted]) -> None:
    """Write changed states and delete deleted indicators (their sources go by cascade)."""
    deleted = [v for v, s in changed.items() if isinstance(s, Deleted)]
    states = [s for s in changed.values() if isinstance(s, IndicatorState)]
    if deleted:
        await conn.execute(_DELETE_INDICATORS, deleted)
    if states:
        await _save_states(conn, states)
        shrunk = [s for s in states if s.dropped_sources]
        if shrunk:
            kept = [(s.value, src) for s in shrunk for src in s.sources]
            await conn.execute(
                _DELETE_STALE_SOURCES,
                [s.value for s in shrunk],
                [v for v, _ in kept],
                [src for _, src in kept],
            )


async def _save_states(conn: Conn, states: Sequence[IndicatorState]) -> None:
    await conn.execute(
        _UPSERT_INDICATORS,
        [s.value for s in states],
        [s.type.value for s in states],
        [s.test for s in states],
        [s.active for s in states],
        [s.expires_at for s in states],
        [s.source for s in states],
        [s.first_seen for s in states],
        [s.last_seen for s in states],
        [s.reputation for s in states],
        [s.severity.value for s in states],
        [s.comments for s in states],
        [s.extended_information for s in states],
        [s.internal_hits for s in states],
        [s.external_hits for s in states],
    )
    entries = [(s.value, e) for s in states for e in s.sources.values()]
    await conn.execute(
        _UPSERT_SOURCES,
        [v for v, _ in entries],
        [e.source for _, e in entries],
        [e.internal_hits for _, e in entries],
        [e.external_hits for _, e in entries],
        [e.first_seen for _, e in entries],
        [e.last_seen for _, e in entries],
        [e.reputation for _, e in entries],
        [e.severity.value for _, e in entries],
        [e.comments for _, e in entries],
        [e.extended_information for _, e in entries],
        [json.dumps(e.tags) for _, e in entries],
        [e.retracted for _, e in entries],
    )
