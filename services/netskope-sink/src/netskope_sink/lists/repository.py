"""SQL of list pushing: the one writer of list_members, list_state, list_push_cuts, list_pushed,
list_foreign, list_claims, list_outcomes and of tenant_state's other lists and accepted credentials
(tenant.repository rejects them); it reads sharings, configurations and tenants (the ingest-api's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cte_common.db import Connection
from cte_common.events import AnyShareIntent
from netskope_sink.lists.domain import CapReserve, refused_by_pre_check

Conn = Connection

# A new intent makes its list due at once (a failing list keeps its backoff, except one the tenant
# refused: new content is worth a new attempt). Its own statement, run first: the row lock orders it
# with the record of a push under way (see record_push), and _APPLY_INTENTS, a statement of its own,
# reads from a snapshot taken once that lock is held. It tells which lists are URL lists of type regex
# (their entries are patterns, not Netskope's URL grammar: see the pre-check).
_TOUCH_LISTS = """
INSERT INTO list_state AS st (list_key, version) SELECT unnest($1::text[]), 1
ON CONFLICT (list_key) DO UPDATE SET version = st.version + 1,
    next_attempt_at = CASE WHEN st.refused THEN now() ELSE st.next_attempt_at END
RETURNING st.list_key,
    EXISTS (SELECT 1 FROM sharings s WHERE s.list_key = st.list_key
            AND lower(coalesce(s.parameters->>'url_list_type', 'exact')) = 'regex') AS regex
"""
# The intents ($4 NULL: a removal) in one statement: each member read once (what the tracking keeps
# and whether anything changed), then only the changes written. A change that is no change (an add
# with the same priority, cost and pre-check, ``invalid``; the removal of a non-member) is not one.
# Each changed member is tracked as it was at the last push, in every list: the first change since
# that push keeps it, a later one only takes a new seq. (A list whose cut is not trusted yet is worked
# out whole at its next push, but the changes made while that push is under way are what lets the one
# after it be incremental: a list fed without a pause would otherwise never get a trusted cut.)
# One change is not tracked: a value beyond the list's trusted cut before and after it, and not
# tracked already, changes nothing the tenant holds, and only the count of left-out candidates moves
# (the next push passes over it like any unchanged member if its cut moves that far). While a push is
# under way (the list marked uncertain from its preparation to its record: see prepare_push) the list
# ends up at that push's cut: until the push has published it (a row of list_push_cuts, which intents
# only read: publishing it never waits for a batch under way) every change is tracked, then the value
# must be beyond both cuts; the record adds its own change of the left-out count to what the intents
# did meanwhile. (A backfill of older values into a list at its cap, or a sharing ordered by severity
# or reputation, leaves most of its values beyond the cut; a feed ordered by lastSeen puts its new
# values on top.)
# A new member is inserted; one that changes is written through its primary key (ON CONFLICT) and one
# that leaves through the address its probe read, never a join the planner could turn into a scan of
# every list. A value that leaves the list has no outcome in it any more (it is retried if it comes
# back).
_APPLY_INTENTS = """
WITH changed AS MATERIALIZED (
    SELECT x.l, x.v, x.t, x.p, x.c, x.i, m.member IS NOT NULL AS member, m.tid,
           m.priority AS old_priority, m.cost_bytes AS old_cost, m.type AS old_type, m.invalid AS old_invalid,
           m.member IS NOT NULL AND EXISTS (SELECT 1 FROM list_outcomes o
                                            WHERE o.list_key = x.l AND o.value = x.v AND o.outcome = 'rejected')
               AS rejected,
           b.beyond IS NOT NULL AND NOT EXISTS (SELECT 1 FROM list_changes k WHERE k.list_key = x.l AND k.value = x.v)
               AS untracked
    FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int[], $6::boolean[]) AS x(l, v, t, p, c, i)
    JOIN list_state st ON st.list_key = x.l
    LEFT JOIN list_push_cuts pc ON pc.list_key = x.l
    -- One primary-key probe per intent (LIMIT keeps the planner from hashing the whole table instead).
    LEFT JOIN LATERAL (
        SELECT true AS member, m.ctid AS tid, m.priority, m.cost_bytes, m.type, m.invalid FROM list_members m
        WHERE m.list_key = x.l AND m.value = x.v LIMIT 1
    ) m ON true
    LEFT JOIN LATERAL (
        SELECT true AS beyond
        WHERE st.cut_trusted AND st.cut_value IS NOT NULL AND (NOT st.uncertain OR pc.list_key IS NOT NULL)
          AND (m.member IS NULL OR (-m.priority, x.v COLLATE "C") > (-st.cut_priority, st.cut_value COLLATE "C"))
          AND (x.p IS NULL OR (-x.p, x.v COLLATE "C") > (-st.cut_priority, st.cut_value COLLATE "C"))
          AND (NOT st.uncertain OR pc.value IS NULL  -- (the push keeps nothing)
               OR ((m.member IS NULL OR (-m.priority, x.v COLLATE "C") > (-pc.priority, pc.value COLLATE "C"))
                   AND (x.p IS NULL OR (-x.p, x.v COLLATE "C") > (-pc.priority, pc.value COLLATE "C"))))
    ) b ON true
    WHERE CASE WHEN x.p IS NULL THEN m.member IS NOT NULL
               ELSE m.member IS NULL OR (m.priority, m.cost_bytes, m.invalid) IS DISTINCT FROM (x.p, x.c, x.i) END
), tracked AS (
    INSERT INTO list_changes (list_key, value, old_priority, old_cost, old_type, old_candidate)
    -- (old_candidate says nothing of a value that was not a member: no probe for it)
    SELECT ch.l, ch.v, ch.old_priority, ch.old_cost, ch.old_type,
           NOT coalesce(ch.old_invalid, false) AND NOT ch.rejected
    FROM changed ch WHERE NOT ch.untracked
    ON CONFLICT (list_key, value) DO UPDATE SET seq = nextval('list_changes_seq')
), left_out AS (
    UPDATE list_state st SET left_out = st.left_out + d.delta
    FROM (SELECT ch.l, sum((ch.p IS NOT NULL AND NOT ch.i AND NOT ch.rejected)::int
                           - (ch.member AND NOT ch.old_invalid AND NOT ch.rejected)::int) AS delta
          FROM changed ch WHERE ch.untracked GROUP BY ch.l) d
    WHERE st.list_key = d.l AND d.delta <> 0
), added AS (
    -- A plain insert: the probe above found no member, and nothing else writes one meanwhile (below).
    -- (ON CONFLICT would probe the key again, and log a confirmation of each row it inserts.)
    INSERT INTO list_members (list_key, value, type, priority, cost_bytes, invalid)
    SELECT ch.l, ch.v, ch.t, ch.p, ch.c, ch.i FROM changed ch WHERE ch.p IS NOT NULL AND NOT ch.member
), updated AS (
    -- Through the primary key: an UPDATE joined with changed by address may be planned as a scan of
    -- every list. (changed holds a member only where it differs.)
    INSERT INTO list_members (list_key, value, type, priority, cost_bytes, invalid)
    SELECT ch.l, ch.v, ch.t, ch.p, ch.c, ch.i FROM changed ch WHERE ch.p IS NOT NULL AND ch.member
    ON CONFLICT (list_key, value) DO UPDATE SET
        type = EXCLUDED.type, priority = EXCLUDED.priority, cost_bytes = EXCLUDED.cost_bytes,
        invalid = EXCLUDED.invalid, updated_at = now()
), removed AS (
    -- The rows read above, by their address: no join for the planner to turn into a scan per row.
    -- (Only this statement writes a list's members, one batch at a time under its partition's
    -- position lock: see the share-intent consumer.)
    DELETE FROM list_members m
    WHERE m.ctid = ANY (ARRAY(SELECT ch.tid FROM changed ch WHERE ch.member AND ch.p IS NULL))
)
DELETE FROM list_outcomes o USING unnest($1::text[], $2::text[], $4::float8[]) AS x(l, v, p)
WHERE x.p IS NULL AND o.list_key = x.l AND o.value = x.v
"""


async def apply_intents(conn: Conn, intents: Sequence[AnyShareIntent]) -> None:
    """Apply one batch of intents, at most one per (list, value) (see domain.latest_intents), in the
    caller's transaction: two statements, whatever the batch's size."""
    if not intents:
        return
    touched = await conn.fetch(_TOUCH_LISTS, sorted({i.list_key for i in intents}))
    regex = {r["list_key"] for r in touched if r["regex"]}
    await conn.execute(
        _APPLY_INTENTS,
        [i.list_key for i in intents],
        [i.value for i in intents],
        [i.type.value for i in intents],
        [i.priority if i.add else None for i in intents],
        [i.cost_bytes for i in intents],
        # The pre-check, before anything is pushed: a member whose entry its list cannot hold.
        [i.add and refused_by_pre_check(i.list_key, i.type, i.value, regex=i.list_key in regex) for i in intents],
    )


# Due: changed since the last push (or held below its cap by a reserve that is to be filled now: see
# domain.CapReserve) and past its backoff, or refused under a configuration that changed since; never
# while its tenant rejects the credentials it still has.
_DUE = """
SELECT st.list_key FROM list_state st
WHERE (st.version > st.flushed_version OR st.settle_at <= now())
  AND (st.next_attempt_at <= now()
       OR (st.refused AND st.refused_config IS DISTINCT FROM list_configuration(st.list_key)))
  AND NOT EXISTS (
      SELECT 1 FROM tenant_state ts
      WHERE ts.tenant = split_part(st.list_key, '/', 1)
        AND ts.rejected_credentials IS NOT DISTINCT FROM tenant_credentials(ts.tenant)
        AND ts.rejected_credentials IS NOT NULL)
ORDER BY st.next_attempt_at LIMIT $1
"""


async def due_lists(conn: Conn, limit: int) -> list[str]:
    return [r["list_key"] for r in await conn.fetch(_DUE, limit)]


# The soonest a list that waits becomes due: changed and waiting for its next attempt, or held below its
# cap until it settles (a time already past is a list _DUE passes over, such as one whose tenant rejects
# its credentials: nothing to wait for).
_NEXT_ATTEMPT = """
SELECT extract(epoch FROM min(t.at) - now())::float8 FROM (
    SELECT next_attempt_at FROM list_state WHERE version > flushed_version
    UNION ALL
    SELECT settle_at FROM list_state WHERE settle_at IS NOT NULL
) AS t(at) WHERE t.at > now()
"""


async def next_attempt_in(conn: Conn) -> float | None:
    """Seconds until the soonest list that waits becomes due, or None when none waits."""
    seconds: float | None = await conn.fetchval(_NEXT_ATTEMPT)
    return seconds


async def schedule_read_backs(conn: Conn, interval_seconds: float) -> int:
    """Make due the URL lists not read back for ``interval_seconds`` (and not due already)."""
    status = await conn.execute(
        "UPDATE list_state SET version = version + 1 WHERE split_part(list_key, '/', 2) = 'url' "
        "AND version = flushed_version AND NOT refused "
        "AND last_read_back_at < now() - make_interval(secs => $1)",
        interval_seconds,
    )
    return _rows(status)


@dataclass(frozen=True)
class ListFacts:
    """What a push of a URL list starts from."""

    read_back_at: datetime | None
    foreign_entries: int
    foreign_bytes: int
    held: int  # our entries on the tenant


async def list_facts(conn: Conn, list_key: str) -> ListFacts:
    row = await conn.fetchrow(
        "SELECT last_read_back_at, foreign_entries, foreign_bytes, entries FROM list_state WHERE list_key = $1",
        list_key,
    )
    assert row is not None
    return ListFacts(row["last_read_back_at"], row["foreign_entries"], row["foreign_bytes"], row["entries"])


async def read_back_due(conn: Conn, list_key: str, interval_seconds: float) -> bool:
    """Whether the list is read back before this push: never read, or not read for ``interval_seconds``
    (a list whose content is uncertain is read back too: see mark_uncertain)."""
    due: bool = await conn.fetchval(
        "SELECT last_read_back_at IS NULL OR last_read_back_at < now() - make_interval(secs => $2) "
        "FROM list_state WHERE list_key = $1",
        list_key,
        interval_seconds,
    )
    return bool(due)


async def forget_read_back(conn: Conn, list_key: str) -> None:
    """The list is read back before its next push."""
    await conn.execute("UPDATE list_state SET last_read_back_at = NULL WHERE list_key = $1", list_key)


@dataclass(frozen=True)
class Reconciled:
    missing: int  # entries of ours the tenant no longer holds (restored by the push that follows)
    adopted: int  # entries of an uncertain call found on the tenant, now known as ours
    foreign: list[str]  # entries the tenant holds that are not ours
    foreign_added: int  # of which not seen at the last read-back


# The tenant's entries ($2) against what the sink put there. After an uncertain call ($3), an entry it
# claimed before the call (list_claims) is ours if the tenant holds it, unless it was foreign before.
_ADOPT = """
INSERT INTO list_pushed (list_key, value)
SELECT DISTINCT $1, t.entry FROM unnest($2::text[]) AS t(entry)
WHERE $3 AND NOT EXISTS (SELECT 1 FROM list_foreign f WHERE f.list_key = $1 AND f.value = t.entry)
  AND t.entry IN (SELECT unnest(c.entries) FROM list_claims c WHERE c.list_key = $1)
ON CONFLICT DO NOTHING
"""


async def claim(conn: Conn, list_key: str) -> None:
    """Before a changing call, outside any transaction: the entries it adds are ours should its answer
    be lost (see reconcile). One row per call, its entries in one array: as many rows and index entries
    as the change would cost more than the call's own work at a list's cap."""
    await conn.execute(
        "INSERT INTO list_claims (list_key, entries) SELECT $1, array_agg(DISTINCT entry) FROM push_changes "
        "WHERE list_key = $1 AND change = 'append' AND entry IS NOT NULL HAVING count(*) > 0",
        list_key,
    )


_MISSING = """
DELETE FROM list_pushed p WHERE p.list_key = $1 AND NOT (p.value = ANY ($2::text[]))
"""
_FOREIGN = """
SELECT DISTINCT t.entry FROM unnest($2::text[]) AS t(entry)
WHERE t.entry <> $3 AND NOT EXISTS (SELECT 1 FROM list_pushed p WHERE p.list_key = $1 AND p.value = t.entry)
"""


async def reconcile(
    conn: Conn, list_key: str, entries: Sequence[str], *, uncertain: bool, placeholder: str, costs: Callable[[str], int]
) -> Reconciled:
    """Take the tenant's entries of the list as read back: our entries it lacks are forgotten (the
    next push appends those still kept), the rest is foreign (``placeholder``, the default entry of an
    empty list, excepted). ``costs``: entry -> bytes, for the foreign entries' cost. One transaction."""
    tenant = list(entries)
    async with conn.transaction():
        # Planned for this read-back (see _CUSTOM_PLANS): in a generic plan the tenant's entries are a
        # parameter, which `= ANY` searches one by one for every row it tests instead of hashing it
        # once, a cost quadratic in the list.
        await conn.execute(_CUSTOM_PLANS)
        adopted = _rows(await conn.execute(_ADOPT, list_key, tenant, uncertain))
        await conn.execute("DELETE FROM list_claims WHERE list_key = $1", list_key)
        missing = _rows(await conn.execute(_MISSING, list_key, tenant))
        foreign = [r["entry"] for r in await conn.fetch(_FOREIGN, list_key, tenant, placeholder)]
        added = await conn.fetchval(
            "SELECT count(*) FROM unnest($2::text[]) AS x(v) "
            "WHERE NOT EXISTS (SELECT 1 FROM list_foreign f WHERE f.list_key = $1 AND f.value = x.v)",
            list_key,
            foreign,
        )
        await conn.execute(
            "DELETE FROM list_foreign WHERE list_key = $1 AND NOT (value = ANY ($2::text[]))", list_key, foreign
        )
        await conn.execute(
            "INSERT INTO list_foreign (list_key, value) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            list_key,
            foreign,
        )
        await conn.execute(
            """
            UPDATE list_state SET foreign_entries = $2, foreign_bytes = $3, last_read_back_at = now(),
                entries = (SELECT count(*) FROM list_pushed p WHERE p.list_key = $1)
            WHERE list_key = $1
            """,
            list_key,
            len(foreign),
            sum(costs(e) for e in foreign),
        )
    return Reconciled(missing, adopted, foreign, int(added))


async def record_other_lists(conn: Conn, tenant: str, url_entries: int, regex_entries: int) -> None:
    """The entries of the tenant's URL lists that no list of ours is (its limits count them too)."""
    await conn.execute(
        """
        INSERT INTO tenant_state AS s (tenant, other_url_entries, other_regex_entries, read_at)
        VALUES ($1, $2, $3, now())
        ON CONFLICT (tenant) DO UPDATE SET other_url_entries = $2, other_regex_entries = $3, read_at = now()
        """,
        tenant,
        url_entries,
        regex_entries,
    )


@dataclass(frozen=True)
class TenantUsage:
    """A tenant's URL lists as far as its tenant-wide limits go."""

    other_url: int  # entries of lists that are not ours
    other_regex: int
    lists: list[dict[str, Any]]  # ours: list_key, parameters, entries (ours held), foreign_entries, foreign_bytes


async def tenant_usage(conn: Conn, tenant: str) -> TenantUsage:
    other = await conn.fetchrow(
        "SELECT other_url_entries, other_regex_entries FROM tenant_state WHERE tenant = $1", tenant
    )
    rows = await conn.fetch(
        """
        SELECT st.list_key, s.parameters, st.entries, st.foreign_entries, st.foreign_bytes,
               EXISTS (SELECT 1 FROM list_members m WHERE m.list_key = st.list_key) AS has_members
        FROM list_state st LEFT JOIN sharings s ON s.list_key = st.list_key
        WHERE split_part(st.list_key, '/', 1) = $1 AND split_part(st.list_key, '/', 2) = 'url'
        ORDER BY st.list_key
        """,
        tenant,
    )
    return TenantUsage(
        other["other_url_entries"] if other else 0,
        other["other_regex_entries"] if other else 0,
        [dict(r) for r in rows],
    )


# Each list's share of the tenant's entry limits, by priority across the lists: the candidates each
# list's own cap keeps ($2 bytes, $3 entries; read only that far), then the first $6 of the regex
# lists' ($4) among them in the order of priority, then the first $5 of all that remain.
_QUOTAS = """
WITH l AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::boolean[]) AS l(list_key, cap, max_n, regex)
),
fit AS MATERIALIZED (
    SELECT w.list_key, w.priority, w.value, l.regex FROM l, LATERAL (
        SELECT m.list_key, m.priority, m.value, 1 + sum(m.cost_bytes) OVER w AS run
        FROM list_members m
        WHERE m.list_key = l.list_key AND NOT m.invalid
          AND NOT EXISTS (SELECT 1 FROM list_outcomes o WHERE o.list_key = m.list_key AND o.value = m.value
                          AND o.outcome = 'rejected')
        WINDOW w AS (ORDER BY -m.priority, m.value COLLATE "C" ROWS UNBOUNDED PRECEDING)
        ORDER BY -m.priority, m.value COLLATE "C"
        LIMIT l.max_n
    ) w WHERE w.run <= l.cap
),
allowed AS (
    SELECT list_key, priority, value FROM fit WHERE NOT regex
    UNION ALL
    SELECT list_key, priority, value FROM (
        SELECT *, row_number() OVER (ORDER BY -priority, value COLLATE "C", list_key) AS g FROM fit WHERE regex
    ) r WHERE r.g <= $6
),
ranked AS (
    SELECT list_key, row_number() OVER (ORDER BY -priority, value COLLATE "C", list_key) AS g FROM allowed
)
SELECT l.list_key,
       (SELECT count(*) FROM fit f WHERE f.list_key = l.list_key) AS fit,
       (SELECT count(*) FROM ranked r WHERE r.list_key = l.list_key AND r.g <= $5) AS quota
FROM l
"""


async def tenant_quotas(
    conn: Conn,
    keys: Sequence[str],
    caps: Sequence[int],
    max_entries: Sequence[int],
    regex: Sequence[bool],
    url_budget: int,
    regex_budget: int,
) -> dict[str, tuple[int, int]]:
    """Per list: how many candidates its own cap keeps, and how many of them the tenant's limits leave
    it when planned by priority across the lists."""
    rows = await conn.fetch(
        _QUOTAS, list(keys), list(caps), list(max_entries), list(regex), max(url_budget, 0), max(regex_budget, 0)
    )
    return {r["list_key"]: (r["fit"], r["quota"]) for r in rows}


async def make_due(conn: Conn, keys: Sequence[str], in_seconds: float = 0.0) -> None:
    """Push these lists again (their share of the tenant's limits changed)."""
    await conn.execute(
        "UPDATE list_state SET version = version + 1, "
        "next_attempt_at = least(next_attempt_at, now() + make_interval(secs => $2)) "
        "WHERE list_key = ANY ($1::text[]) AND NOT refused",
        list(keys),
        in_seconds,
    )


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
# logged), only what changes:
# - push_seen: the list's changed members as this push saw them (what they were at the last push, what
#   they are now; *_priority NULL: not a member), with the change's seq;
# - push_changes: 'append' (a kept value whose entry the tenant does not hold yet; ``entry`` is what is
#   sent) and 'remove' (an entry the tenant holds that no kept value makes any more; value = entry).
# Their keys compare in code point order, like the tables they are joined with (migration 0026).
_CREATE_WORK = (
    """
    CREATE TEMP TABLE IF NOT EXISTS push_seen (
        list_key text COLLATE "C" NOT NULL, value text COLLATE "C" NOT NULL, seq bigint NOT NULL,
        old_priority float8, old_cost int, old_type text, old_candidate boolean NOT NULL,
        new_priority float8, new_cost int, new_type text, new_candidate boolean NOT NULL
    )
    """,
    'CREATE TEMP TABLE IF NOT EXISTS push_changes (list_key text COLLATE "C" NOT NULL, '
    'change text COLLATE "C" NOT NULL, value text COLLATE "C" NOT NULL, entry text COLLATE "C")',
    # Every join with a work table goes through one of these. Temporary tables are never analysed, and
    # list_changes' and list_pushed's statistics may say a list has no rows (analysed before it had any):
    # without an index the planner then scans a work table once per row of the other side, a cost
    # quadratic in the change (seconds a call with a few thousand changes).
    "CREATE INDEX IF NOT EXISTS push_seen_key ON push_seen (list_key, value)",
    "CREATE INDEX IF NOT EXISTS push_changes_key ON push_changes (list_key, change, value)",
)
_WORK_TABLES = ("push_seen", "push_changes")
# A push's statements are planned for the push at hand, in its transaction. asyncpg prepares every
# statement, and after five executions PostgreSQL may keep a generic plan, built when the work tables
# and the list's changes held a few rows (a one-entry change): a nested loop over both that is quadratic
# for a push at the cap (the changes' consumption took 4 to 7 s for 25,000 changes, 50 to 140 ms planned
# for them). Planning each statement costs well under a millisecond. No JIT either: these statements
# are loops of index probes, whose estimates over unanalysed work tables passed its threshold and paid
# 15 to 20 ms of compilation a statement for nothing to gain.
_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off"
# For a statement that reads the whole list anyway (and has no subquery run per row): its join hashed
# whatever the estimates (a work table's are guesses), one pass over each side, never a probe of one
# side per row of the other. Set in that statement's own transaction (SET LOCAL ends with it).
_HASHED_JOINS = "SET LOCAL enable_nestloop = off; SET LOCAL enable_mergejoin = off"
# Temporary tables are never vacuumed either: emptied by DELETE they would keep every dead row of the
# connection's pushes, and each scan would read them all. Truncated once no push of the round is
# pending and they pass 1 MB: a push of a list at its cap (tens of thousands of changes) leaves that
# much, and its dead rows were read again by every statement of the next push, past the session's
# temporary buffers (8 MB) from disk. Small pushes do not truncate every round (a catalog update and
# a commit each).
_EMPTY_WORK = (
    "SELECT pg_table_size('push_seen') + pg_table_size('push_changes') > 1048576 "
    "AND NOT EXISTS (SELECT 1 FROM push_seen) AND NOT EXISTS (SELECT 1 FROM push_changes)"
)

# The selection's order is (-priority, value COLLATE "C"): highest priority first, the value breaking
# ties in code point order like the Python str order (index list_members_cut, migration 0011). A key
# "at or before the cut" is one the cut keeps.
_REFUSED = "EXISTS (SELECT 1 FROM list_outcomes o WHERE o.list_key = $1 AND o.value = {v} AND o.outcome = 'rejected')"
# A candidate: neither refused by the pre-check (list_members.invalid) nor by the tenant.
_CANDIDATE = "NOT m.invalid AND NOT " + _REFUSED.format(v="m.value")


def _key(cmp: str, p: int, *, priority: str = "m.priority", value: str = "m.value") -> str:
    """The member's key compared with the key in parameters $p (priority) and $p+1 (value)."""
    return f'(-{priority}, {value} COLLATE "C") {cmp} (-${p}::float8, ${p + 1}::text COLLATE "C")'


# Each change looks its member up by key (OFFSET 0 keeps the lookup a nested loop): joined as a whole,
# the planner hashed every member of the list for a few thousand changes (a scan of the list per push).
_SNAPSHOT = f"""
INSERT INTO push_seen
SELECT c.list_key, c.value, c.seq, c.old_priority, c.old_cost, c.old_type, c.old_candidate,
       m.priority, m.cost_bytes, m.type, m.value IS NOT NULL AND NOT m.invalid AND NOT {_REFUSED.format(v="c.value")}
FROM list_changes c LEFT JOIN LATERAL (
    SELECT m.value, m.priority, m.cost_bytes, m.type, m.invalid FROM list_members m
    WHERE m.list_key = c.list_key AND m.value = c.value OFFSET 0
) m ON true
WHERE c.list_key = $1
"""
# (An entry the tenant holds as foreign is never appended as ours: see list_foreign.)
# What the changes take out of the kept prefix and bring into it, the cut ($2, $3) staying where it is.
_ADJUST = f"""
SELECT coalesce(sum(old_cost) FILTER (WHERE was_in), 0) AS out_bytes, count(*) FILTER (WHERE was_in) AS out_n,
       coalesce(sum(new_cost) FILTER (WHERE now_in), 0) AS in_bytes, count(*) FILTER (WHERE now_in) AS in_n
FROM (SELECT s.old_cost, s.new_cost,
             coalesce(s.old_priority IS NOT NULL AND s.old_candidate
                      AND {_key("<=", 2, priority="s.old_priority", value="s.value")}, false) AS was_in,
             coalesce(s.new_priority IS NOT NULL AND s.new_candidate
                      AND {_key("<=", 2, priority="s.new_priority", value="s.value")}, false) AS now_in
      FROM push_seen s WHERE s.list_key = $1) x
"""
# Moving the cut forward: walk the candidates after it ({after}) with a running byte count and stop
# at the first that does not fit ($2 bytes and $3 values kept so far; cap $4 bytes, $5 values); the
# new cut is the one before it. The walk reads only as far as the cap lets the list grow.
_GROW = f"""
SELECT w.run - w.cost AS run, w.rn - 1 AS rn, w.prev_priority, w.prev_value FROM (
    SELECT m.cost_bytes AS cost, sum(m.cost_bytes) OVER w AS run, row_number() OVER w AS rn,
           lag(m.priority) OVER w AS prev_priority, lag(m.value) OVER w AS prev_value
    FROM list_members m
    WHERE m.list_key = $1 {{after}} AND {_CANDIDATE}
    WINDOW w AS (ORDER BY -m.priority, m.value COLLATE "C" ROWS UNBOUNDED PRECEDING)
) w WHERE $2::bigint + w.run > $4 OR $3::bigint + w.rn > $5
LIMIT 1
"""
# Every candidate after the cut fits: the cut moves to the last one.
_REST = f"""
SELECT coalesce(sum(m.cost_bytes), 0) AS run, count(*) AS rn
FROM list_members m WHERE m.list_key = $1 {{after}} AND {_CANDIDATE}
"""
_LAST = f"""
SELECT m.priority, m.value FROM list_members m WHERE m.list_key = $1 {{upto}} AND {_CANDIDATE}
ORDER BY -m.priority DESC, m.value COLLATE "C" DESC LIMIT 1
"""
# Moving the cut backward: walk the kept candidates from the cut ($6, $7) back, giving up bytes until
# what stays fits; the new cut is the one before the last given up.
_SHRINK = f"""
SELECT w.run, w.rn, w.next_priority, w.next_value FROM (
    SELECT sum(m.cost_bytes) OVER w AS run, row_number() OVER w AS rn,
           lead(m.priority) OVER w AS next_priority, lead(m.value) OVER w AS next_value
    FROM list_members m
    WHERE m.list_key = $1 AND {_key("<=", 6)} AND {_CANDIDATE}
    WINDOW w AS (ORDER BY -m.priority DESC, m.value COLLATE "C" DESC ROWS UNBOUNDED PRECEDING)
) w WHERE $2::bigint - w.run <= $4 AND $3::bigint - w.rn <= $5
LIMIT 1
"""
# The values whose place may have changed: the changed members, before (cut $3, $4) and after (cut $5,
# $6), and the unchanged candidates the cut passed over ({range}): kept or left out before and after, and
# their entries. Read once, by the diff and by the left-out count, in the statement that writes the diff:
# no work table for it (its rows, index entries and their removal cost as much as the diff's own probes).
_MOVED_CHANGED = f"""
SELECT s.value, k.was_kept, list_entry(s.value, s.old_type, $2) AS old_entry,
       k.now_kept, list_entry(s.value, s.new_type, $2) AS new_entry,
       s.old_priority IS NOT NULL AND s.old_candidate AND NOT k.was_kept AS was_left,
       s.new_priority IS NOT NULL AND s.new_candidate AND NOT k.now_kept AS now_left
FROM push_seen s, LATERAL (
    SELECT coalesce(s.old_priority IS NOT NULL AND s.old_candidate
                    AND {_key("<=", 3, priority="s.old_priority", value="s.value")}, false) AS was_kept,
           coalesce(s.new_priority IS NOT NULL AND s.new_candidate
                    AND {_key("<=", 5, priority="s.new_priority", value="s.value")}, false) AS now_kept
) k
WHERE s.list_key = $1
"""
# The unchanged candidates the cut passed over: up to ($8, $9) {after} the other cut; $7: the cut grew.
# The priority's own bounds say nothing the keys do not, but PostgreSQL estimates a row comparison by its
# first column alone, each bound on its own: a cut moved by one member read as a fifth of the list, and a
# scan of the whole list (0.3 s at 600,000 members) was as cheap as the index by that estimate.
_MOVED_RANGE = f"""
UNION ALL
SELECT m.value, NOT $7::boolean, list_entry(m.value, m.type, $2), $7::boolean, list_entry(m.value, m.type, $2),
       $7::boolean, NOT $7::boolean
FROM list_members m
WHERE m.list_key = $1 AND {_key("<=", 8)} AND -m.priority <= -$8::float8 {{after}} AND {_CANDIDATE}
  AND NOT EXISTS (SELECT 1 FROM push_seen s WHERE s.list_key = $1 AND s.value = m.value)
"""
# The diff of the moved values against what the tenant holds, and how many of them the cut leaves out
# before and after. An entry goes only when no kept value (new cut $5, $6) makes it any more: not one of
# the moved values (set-wise), nor another member. In a file hash list no other member can (an entry is
# its value); in a URL list the value with or without a scheme can, and list_pushed.shared says whether
# one may: an entry is shared from the push where a second kept value made it (set here for the entries
# held that a newly kept value makes, by _RECORD_APPENDED for entries appended for two values at once).
# Only a shared entry has the other values looked up (four probes) when its value goes. shared = true may
# be stale (a lookup for nothing); false never is: a member that joins the kept prefix is a moved value.
_DIFF_MOVED = f"""
WITH moved AS MATERIALIZED ({{moved}}),
-- Each kept value's entry looked up once in what the tenant holds, for the appends and for the entries
-- becoming shared (those the tenant holds already, which are few: an array of every kept entry cost a
-- probe each again). (OFFSET 0: a probe per value; hashed, or as an anti-join, the planner read
-- everything the tenant holds.)
kept AS MATERIALIZED (
    SELECT mv.value, mv.new_entry AS entry, mv.was_kept AND mv.old_entry IS NOT DISTINCT FROM mv.new_entry AS same,
           EXISTS (SELECT 1 FROM list_pushed p WHERE p.list_key = $1 AND p.value = mv.new_entry OFFSET 0) AS held
    FROM moved mv WHERE mv.now_kept AND mv.new_entry IS NOT NULL
),
shared AS (
    UPDATE list_pushed p SET shared = true
    WHERE p.list_key = $1 AND NOT p.shared AND p.value = ANY (ARRAY(SELECT entry FROM kept WHERE held AND NOT same))
),
diff AS (
    INSERT INTO push_changes (list_key, change, value, entry)
    SELECT $1, 'append', k.value, k.entry FROM kept k
    WHERE NOT k.held AND NOT EXISTS (SELECT 1 FROM list_foreign f WHERE f.list_key = $1 AND f.value = k.entry)
    UNION ALL
    SELECT $1, 'remove', e.entry, e.entry
    FROM (SELECT old_entry FROM moved WHERE was_kept AND old_entry IS NOT NULL
          EXCEPT SELECT new_entry FROM moved WHERE now_kept) e(entry)
    WHERE EXISTS (
        SELECT 1 FROM list_pushed p WHERE p.list_key = $1 AND p.value = e.entry
          AND NOT (p.shared AND $2::boolean AND EXISTS (
              SELECT 1 FROM list_members m
              WHERE m.list_key = $1 AND m.value = ANY (ARRAY[e.entry, 'http://' || e.entry, 'https://' || e.entry,
                                                             'ftp://' || e.entry])
                AND list_entry(m.value, m.type, $2) = e.entry AND {_key("<=", 5)} AND {_CANDIDATE}))
        OFFSET 0)
)
SELECT count(*) FILTER (WHERE now_left) AS now_left, count(*) FILTER (WHERE was_left) AS was_left FROM moved
"""


def _diff_moved(*, cut_moved: bool, range_from_start: bool) -> str:
    """_DIFF_MOVED over the changed members and, when the cut moved, the members it passed over (from
    the start of the order when the lower cut is none: ``range_from_start``)."""
    moved = _MOVED_CHANGED
    if cut_moved:
        after = "" if range_from_start else f"{_after(10)} AND -m.priority >= -$10::float8"
        moved += _MOVED_RANGE.format(after=after)
    return _DIFF_MOVED.format(moved=moved)


# The whole diff (no trusted cut, a cap changed, or the tenant's content unknown: then nothing is
# "held" and everything kept is an append): the kept values (up to the cut $3, $4) against list_pushed.
# An entry held that two kept values make is shared from now on (see _DIFF_MOVED). Each kept entry is
# looked up in what the tenant holds (OFFSET 0: a probe per entry), and the removals are a set
# difference (hashed or sorted, never a loop): as anti-joins, where list_pushed's statistics said the
# list held nothing, the planner read one side once per row of the other (12.8 s for 12,000 members
# against 10,000 entries held).
_DIFF_WHOLE = f"""
WITH kept AS MATERIALIZED (
    SELECT m.value, list_entry(m.value, m.type, $2) AS entry FROM list_members m
    WHERE m.list_key = $1 AND {_key("<=", 3)} AND {_CANDIDATE}
), shared AS (
    UPDATE list_pushed p SET shared = true
    WHERE p.list_key = $1 AND NOT p.shared AND NOT $5
      AND p.value = ANY (ARRAY(SELECT entry FROM kept WHERE entry IS NOT NULL GROUP BY entry HAVING count(*) > 1))
)
INSERT INTO push_changes (list_key, change, value, entry)
SELECT $1, 'append', k.value, k.entry FROM kept k
WHERE k.entry IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM list_pushed p WHERE p.list_key = $1 AND NOT $5 AND p.value = k.entry OFFSET 0)
  AND NOT EXISTS (SELECT 1 FROM list_foreign f WHERE f.list_key = $1 AND f.value = k.entry)
UNION ALL
SELECT $1, 'remove', e.entry, e.entry FROM (
    SELECT p.value FROM list_pushed p WHERE p.list_key = $1 AND NOT $5
    EXCEPT SELECT k.entry FROM kept k WHERE k.entry IS NOT NULL
) e(entry)
"""
_LEFT_OUT_WHOLE = f"SELECT count(*) FROM list_members m WHERE m.list_key = $1 {{after}} AND {_CANDIDATE}"
_COUNTS = """
SELECT count(*) FILTER (WHERE change = 'append') AS appends, count(*) FILTER (WHERE change = 'remove') AS removes,
       NOT $2 AND EXISTS (SELECT 1 FROM list_pushed p WHERE p.list_key = $1) AS holds_any
FROM push_changes WHERE list_key = $1
"""


@dataclass(frozen=True)
class Cut:
    """The last kept member's key (None: nothing kept), and what the kept members cost."""

    priority: float | None
    value: str | None
    bytes: int = 1
    count: int = 0

    def sort_key(self) -> tuple[float, str] | None:
        """The key in the selection's order (PostgreSQL's "C" collation is the code point order)."""
        return None if self.priority is None or self.value is None else (-self.priority, self.value)


@dataclass(frozen=True)
class PreparedPush:
    """A push worked out in PostgreSQL (its changes in ``push_changes`` on the same connection)."""

    kept: int  # values within the cap
    bytes: int  # their cost, as the tenant's cap counts it
    appends: int  # values whose entry the tenant does not hold yet
    removes: int  # entries the tenant holds that must go
    holds_any: bool  # whether the tenant is known to hold anything of ours
    cut: Cut  # the selection, recorded with the push
    left_out: int  # candidates beyond the cut
    left_out_before: int  # the same as the push's snapshot read it (the record adds the difference)
    whole: bool  # worked out from the start of the order, not from the last push's cut
    trimmed: bool = False  # the changes took the list over its cap: the cut gave up entries
    held_back: bool = False  # a reserve kept candidates out that the cap has room for (domain.CapReserve)


def _after(p: int) -> str:
    return f"AND {_key('>', p)}"


async def _move_cut(
    conn: Conn, list_key: str, start: Cut, cap_bytes: int, max_entries: int, reserve: tuple[int, int] = (0, 0)
) -> Cut:
    """The longest prefix of the order that fits, found from ``start`` (a prefix whose cost is known).
    With a ``reserve`` (bytes, entries): a prefix over the cap gives up until the reserve is free as
    well, and one within the cap grows only as far as leaves it free (it stays where it is if it is
    in the reserve already)."""
    limits = (start.bytes, start.count, cap_bytes - reserve[0], max_entries - reserve[1])
    if start.bytes > cap_bytes or start.count > max_entries:
        if start.value is None:
            return Cut(None, None)
        row = await conn.fetchrow(_SHRINK, list_key, *limits, start.priority, start.value)
        if row is None:
            return Cut(None, None)
        return Cut(row["next_priority"], row["next_value"], start.bytes - row["run"], start.count - row["rn"])
    after = "" if start.value is None else _after(6)
    cut_args = () if start.value is None else (start.priority, start.value)
    row = await conn.fetchrow(_GROW.format(after=after), list_key, *limits, *cut_args)
    if row is not None:
        if row["rn"] == 0:
            return await _settle(conn, list_key, start)
        return Cut(row["prev_priority"], row["prev_value"], start.bytes + row["run"], start.count + row["rn"])
    after = "" if start.value is None else _after(2)
    rest = await conn.fetchrow(_REST.format(after=after), list_key, *cut_args)
    assert rest is not None
    if rest["rn"] == 0:
        return await _settle(conn, list_key, start)
    last = await conn.fetchrow(_LAST.format(upto=""), list_key)
    assert last is not None
    return Cut(last["priority"], last["value"], start.bytes + rest["run"], start.count + rest["rn"])


async def _settle(conn: Conn, list_key: str, cut: Cut) -> Cut:
    """The cut on the last kept candidate: the changes may have taken out the member it was on."""
    if cut.value is None or cut.count == 0:
        return Cut(None, None)
    last = await conn.fetchrow(_LAST.format(upto=f"AND {_key('<=', 2)}"), list_key, cut.priority, cut.value)
    assert last is not None
    return Cut(last["priority"], last["value"], cut.bytes, cut.count)


async def prepare_push(
    conn: Conn,
    list_key: str,
    *,
    cap_bytes: int,
    max_entries: int,
    url_list: bool,
    uncertain: bool,
    whole: bool = False,
    reserve: CapReserve | None = None,
) -> PreparedPush:
    """Select within the cap and diff against what the tenant holds (nothing when ``uncertain``), in
    PostgreSQL, from one snapshot; only the changes are written (to ``push_changes``), nothing is
    loaded. With a trusted cut, only the changed members and the members the cut passes over are
    read; otherwise the selection is worked out from the start of the order (first push, cap changed,
    the tenant's content unknown or just read back: ``whole``), reading only as far as the cap reaches.
    ``reserve``: how a list at its cap that is fed without a pause keeps room below it (an
    incremental push only; a whole one keeps the longest prefix that fits)."""
    force_whole = whole
    await forget_push(conn, list_key)
    # The push is under way from here until it is recorded, and its cut is not known yet: every change
    # is tracked until it is published below (see _APPLY_INTENTS). Committed before the snapshot. An
    # intents batch under way that may have compared with another cut (the list not marked yet, or a
    # cut this push published before it was prepared again) holds the state row: the mark waits for it,
    # so it is in the snapshot. One that read the list marked and no cut tracked every change, and need
    # not be waited for. (The flusher has set uncertain already, before calling the tenant.)
    assert not conn.is_in_transaction(), "prepare_push commits its mark before it takes its snapshot"
    async with conn.transaction():
        await conn.execute("UPDATE list_state SET uncertain = true WHERE list_key = $1 AND NOT uncertain", list_key)
        if await conn.execute("DELETE FROM list_push_cuts WHERE list_key = $1", list_key) != "DELETE 0":
            await conn.execute("SELECT FROM list_state WHERE list_key = $1 FOR NO KEY UPDATE", list_key)
    async with conn.transaction(isolation="repeatable_read"):
        await conn.execute(_CUSTOM_PLANS)
        st = await conn.fetchrow(
            "SELECT cut_priority, cut_value, cut_bytes, cut_count, cut_trusted, cap_bytes, left_out, "
            "extract(epoch FROM now() - last_push_at)::float8 AS since_push, "
            "extract(epoch FROM now() - trimmed_at)::float8 AS since_trim "
            "FROM list_state WHERE list_key = $1",
            list_key,
        )
        assert st is not None
        await conn.execute(_SNAPSHOT, list_key)
        whole = force_whole or uncertain or not st["cut_trusted"] or st["cap_bytes"] != cap_bytes
        old = Cut(st["cut_priority"], st["cut_value"], st["cut_bytes"], st["cut_count"])
        room = (0, 0)
        trimmed = False
        if whole:
            cut = await _move_cut(conn, list_key, Cut(None, None), cap_bytes, max_entries)
            await conn.execute(_DIFF_WHOLE, list_key, url_list, cut.priority, cut.value, uncertain)
            after = "" if cut.value is None else _after(2)
            cut_args = () if cut.value is None else (cut.priority, cut.value)
            left_out: int = await conn.fetchval(_LEFT_OUT_WHOLE.format(after=after), list_key, *cut_args)
        else:
            adjust = await conn.fetchrow(_ADJUST, list_key, old.priority, old.value)
            assert adjust is not None
            start = Cut(
                old.priority,
                old.value,
                old.bytes - adjust["out_bytes"] + adjust["in_bytes"],
                old.count - adjust["out_n"] + adjust["in_n"],
            )
            if reserve is not None:
                room = reserve.room(
                    cap_bytes=cap_bytes,
                    max_entries=max_entries,
                    grown_bytes=start.bytes - old.bytes,
                    grown_entries=start.count - old.count,
                    since_push=st["since_push"],
                    since_trim=st["since_trim"],
                )
            trimmed = start.bytes > cap_bytes or start.count > max_entries
            cut = await _move_cut(conn, list_key, start, cap_bytes, max_entries, room)
            old_key, new_key = old.sort_key(), cut.sort_key()
            range_args: tuple[Any, ...] = ()
            from_start = False
            if old_key != new_key:
                grew = old_key is None or (new_key is not None and new_key > old_key)
                low, high = (old, cut) if grew else (cut, old)
                from_start = low.value is None
                low_args = () if from_start else (low.priority, low.value)
                range_args = (grew, high.priority, high.value, *low_args)
            moved = await conn.fetchrow(
                _diff_moved(cut_moved=old_key != new_key, range_from_start=from_start),
                list_key,
                url_list,
                old.priority,
                old.value,
                cut.priority,
                cut.value,
                *range_args,
            )
            assert moved is not None
            left_out = st["left_out"] + moved["now_left"] - moved["was_left"]
        counts = await conn.fetchrow(_COUNTS, list_key, uncertain)
        assert counts is not None
    await conn.execute(
        "INSERT INTO list_push_cuts (list_key, priority, value) VALUES ($1, $2, $3) "
        "ON CONFLICT (list_key) DO UPDATE SET priority = EXCLUDED.priority, value = EXCLUDED.value",
        list_key,
        cut.priority,
        cut.value,
    )
    return PreparedPush(
        cut.count,
        cut.bytes,
        counts["appends"],
        counts["removes"],
        bool(counts["holds_any"]),
        cut,
        left_out,
        st["left_out"],
        whole,
        trimmed,
        # (A candidate left out may not fit under the cap either: then the push that fills finds nothing.)
        room != (0, 0) and left_out > 0,
    )


# What the tenant is to hold: what it holds less the removals, plus the appends (all of them when the
# record is not trusted: then nothing is "held" and everything selected is an append). The two parts
# never share an entry: an append is an entry the tenant does not hold (see _DIFF_MOVED, _DIFF_WHOLE),
# and nothing but the flusher holding the list writes list_pushed. The removals are taken out by one
# hashed anti-join (_HASHED_JOINS): a probe of the removals per entry held cost 2 µs an entry, and as
# a nested loop, where list_pushed's statistics said the list held nothing, the planner read every
# removal once per entry held (a file hash list's whole push took 50 to 60 s at 152,275 entries).
_WHOLE = """
SELECT p.value FROM list_pushed p
LEFT JOIN push_changes c ON c.list_key = $1 AND c.change = 'remove' AND c.value = p.value
WHERE p.list_key = $1 AND NOT $2 AND c.value IS NULL
UNION ALL
SELECT DISTINCT entry FROM push_changes WHERE list_key = $1 AND change = 'append'
"""
_APPENDS = "SELECT DISTINCT entry FROM push_changes WHERE list_key = $1 AND change = 'append'"
# A call's entries as one text, comma-separated, written by PostgreSQL: JSON strings (a URL list's
# array items) or plain (a file hash list). One value of at most the tenant's upload limit, and no row
# or object per entry in the sink (a replace of a 190,000-entry list is one string, not 190,000 rows).
_ENTRIES_TEXT = """
SELECT coalesce(string_agg(CASE WHEN ${json} THEN to_json(e.entry)::text ELSE e.entry END, ','), '')
FROM ({entries}) AS e(entry) WHERE NOT (e.entry = ANY(${exclude}::text[]))
"""


async def entries_text(
    conn: Conn,
    list_key: str,
    *,
    whole: bool,
    uncertain: bool,
    exclude: Sequence[str],
    json_items: bool,
) -> str:
    """The entries of a push (the whole list to hold, or only the appends), less ``exclude``, as one
    comma-separated text: JSON array items (``json_items``) or plain."""
    # Planned for the push at hand, as every statement of a push (see _CUSTOM_PLANS).
    async with conn.transaction():
        await conn.execute(_CUSTOM_PLANS)
        if whole:
            await conn.execute(_HASHED_JOINS)
            query = _ENTRIES_TEXT.format(entries=_WHOLE, exclude=3, json=4)
            text: str = await conn.fetchval(query, list_key, uncertain, list(exclude), json_items)
        else:
            query = _ENTRIES_TEXT.format(entries=_APPENDS, exclude=2, json=3)
            text = await conn.fetchval(query, list_key, list(exclude), json_items)
    return text


@dataclass(frozen=True)
class PushEntries:
    """A prepared push's changes by entry: as many as the change, never the list."""

    removes: list[str]  # entries the tenant holds that must go
    appends: list[str]  # entries to add (distinct)


async def push_entries(conn: Conn, list_key: str) -> PushEntries:
    """The prepared push's removals and appends, for a URL list's replace (domain.replaced_entries)."""
    rows = await conn.fetch(
        "SELECT DISTINCT change, entry FROM push_changes WHERE list_key = $1 AND entry IS NOT NULL", list_key
    )
    return PushEntries(
        [r["entry"] for r in rows if r["change"] == "remove"], [r["entry"] for r in rows if r["change"] == "append"]
    )


# Each removal looked up in what the tenant holds (OFFSET 0: a probe per removal), the rows deleted by
# their address: as a join, where list_pushed's statistics said the list held nothing, the planner read
# every removal once per entry held.
_RECORD_REMOVED = """
DELETE FROM list_pushed p
WHERE p.ctid = ANY (ARRAY(
    SELECT h.ctid FROM push_changes c
    CROSS JOIN LATERAL (SELECT p.ctid FROM list_pushed p WHERE p.list_key = $1 AND p.value = c.value OFFSET 0) h
    WHERE c.list_key = $1 AND c.change = 'remove'))
"""
# An entry appended for two values at once is shared (see _DIFF_MOVED). (An entry is appended only
# when the tenant does not hold it: one held already, which nothing else writes meanwhile, only becomes
# shared, and is not counted.)
_RECORD_APPENDED = """
WITH appended AS (
    INSERT INTO list_pushed AS p (list_key, value, shared)
    SELECT $1, entry, count(*) > 1 FROM push_changes
    WHERE list_key = $1 AND change = 'append' AND NOT (entry = ANY($2::text[]))
    GROUP BY entry
    ON CONFLICT (list_key, value) DO UPDATE SET shared = true WHERE EXCLUDED.shared AND NOT p.shared
    RETURNING p.xmax = 0 AS inserted
)
SELECT count(*) FILTER (WHERE inserted) FROM appended
"""
# The changes this push saw are consumed, each change row looked up once. A member changed again while
# the push was under way (a new seq) keeps its change, now measured from what this push saw. (No intents
# batch of the list runs meanwhile: record_push holds its state row.)
_CONSUME_CHANGES = """
MERGE INTO list_changes c
USING (SELECT * FROM push_seen WHERE list_key = $1) s ON c.list_key = $1 AND c.value = s.value
WHEN MATCHED AND c.seq = s.seq THEN DELETE
WHEN MATCHED THEN UPDATE SET old_priority = s.new_priority, old_cost = s.new_cost, old_type = s.new_type,
                             old_candidate = s.new_candidate
"""
# Values whose entry the tenant refused: a 'rejected' outcome (they stop being candidates) and a change
# (the next push takes them out of the kept prefix they were pushed in). A value that left the list
# meanwhile (its intents' transaction removed its outcome) gets none.
_RECORD_REJECTED = """
WITH refused AS (
    SELECT DISTINCT c.value, x.reason FROM push_changes c
    JOIN unnest($2::text[], $3::text[]) AS x(entry, reason) ON x.entry = c.entry
    WHERE c.list_key = $1 AND c.change = 'append'
      AND EXISTS (SELECT 1 FROM list_members m WHERE m.list_key = $1 AND m.value = c.value)
), outcome AS (
    INSERT INTO list_outcomes AS o (list_key, value, outcome, reason)
    SELECT $1, value, 'rejected', reason FROM refused
    ON CONFLICT (list_key, value) DO UPDATE SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason
)
INSERT INTO list_changes (list_key, value, old_priority, old_cost, old_type, old_candidate)
SELECT $1, m.value, m.priority, m.cost_bytes, m.type, true
FROM refused r JOIN list_members m ON m.list_key = $1 AND m.value = r.value
ON CONFLICT (list_key, value) DO UPDATE SET old_candidate = true
"""


def _rows(status: str) -> int:
    """The row count of a command status ("DELETE 3", "INSERT 0 3")."""
    return int(status.rsplit(" ", 1)[-1])


async def record_push(
    conn: Conn,
    list_key: str,
    *,
    version: int,
    prepared: PreparedPush,
    uncertain: bool,
    refused: dict[str, str],
    cap: int,
    next_push_in_seconds: float = 0.0,
    left_out_tenant: int = 0,
    settle_in_seconds: float = 0.0,
) -> int:
    """Apply the prepared push's changes: what the tenant now holds, the refusals, the changes consumed,
    the cut, and the list flushed up to ``version``. ``refused``: entries the tenant refused, with its
    reason. Returns the entries the tenant now holds. A push that a reserve held below the cap makes
    the list due again in ``settle_in_seconds`` (any change meanwhile makes it due sooner, and that
    push decides again).

    The cut becomes trusted: every change since the push's snapshot is tracked (apply_intents tracks
    them in every list), measured from that snapshot once the changes the push saw are consumed, but
    for the values beyond this push's cut and the last one, whose intents counted them as left out:
    the push's own change of that count is added to theirs. apply_intents locks the list's state row
    first, so an intents batch commits either before this record (and its changes are consumed or
    re-measured here) or after it."""
    bad = list(refused)
    await conn.execute(_CUSTOM_PLANS)
    # What the tenant holds first, before the state row is locked: no intents batch reads or writes
    # list_pushed or list_claims (only the flusher holding the list's advisory lock does), and writing
    # them is most of a record's work (the appended entries' rows), which the intents batches of the
    # list no longer wait for.
    if uncertain:
        await conn.execute("DELETE FROM list_pushed WHERE list_key = $1", list_key)
    removed = _rows(await conn.execute(_RECORD_REMOVED, list_key))
    appended: int = await conn.fetchval(_RECORD_APPENDED, list_key, bad)
    await conn.execute("DELETE FROM list_claims WHERE list_key = $1", list_key)
    # The state row is locked before any change row, as apply_intents locks them: in the other order an
    # intents batch between the two would deadlock with this record. (Its entries are the flusher's
    # alone to change: read here or before, the same.)
    held_before: int = await conn.fetchval("SELECT entries FROM list_state WHERE list_key = $1 FOR UPDATE", list_key)
    if uncertain:
        held_before = 0
    await conn.execute(_CONSUME_CHANGES, list_key)
    if refused:
        await conn.execute(_RECORD_REJECTED, list_key, bad, [refused[e] for e in bad])
    entries = held_before - removed + appended
    cut = prepared.cut
    await conn.execute(
        """
        UPDATE list_state SET flushed_version = $2, failures = 0, last_error = NULL, last_push_at = now(),
            uncertain = false, refused = false, refused_config = NULL, left_out_tenant = $11,
            next_attempt_at = now() + make_interval(secs => $6),
            entries = $3, bytes = $4, cap_bytes = $5, left_out = left_out + $7 - $12,
            rejected = (SELECT count(*) FROM list_outcomes WHERE list_key = $1 AND outcome = 'rejected'),
            cut_priority = $8, cut_value = $9, cut_bytes = $4, cut_count = $10,
            cut_trusted = true,
            trimmed_at = CASE WHEN $13 THEN now() ELSE trimmed_at END,
            settle_at = CASE WHEN $14 THEN now() + make_interval(secs => $15) END
        WHERE list_key = $1
        """,
        list_key,
        version,
        entries,
        cut.bytes,
        cap,
        next_push_in_seconds,
        prepared.left_out,
        cut.priority,
        cut.value,
        cut.count,
        left_out_tenant,
        prepared.left_out_before,
        prepared.trimmed,
        prepared.held_back,
        settle_in_seconds,
    )
    # The push is recorded: its cut is the list's now (intents that read the row compared with it too).
    await conn.execute("DELETE FROM list_push_cuts WHERE list_key = $1", list_key)
    return entries


async def forget_push(conn: Conn, list_key: str) -> None:
    """Drop a push's working rows (before it is prepared, after it was recorded, or when it failed)."""
    for statement in _CREATE_WORK:
        await conn.execute(statement)
    for table in _WORK_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE list_key = $1", list_key)
    if await conn.fetchval(_EMPTY_WORK):
        await conn.execute(f"TRUNCATE {', '.join(_WORK_TABLES)}")


async def record_failure(
    conn: Conn, list_key: str, error: str, retry_in_seconds: float, *, refused: bool = False
) -> None:
    """The list stays due; it is tried again after a backoff that grows with its failures. ``refused``:
    the tenant refused the list (state "failed"), under the configuration recorded with it."""
    await conn.execute(
        "UPDATE list_state SET failures = failures + 1, last_error = $2, "
        "next_attempt_at = now() + make_interval(secs => $3), refused = $4, "
        "refused_config = CASE WHEN $4 THEN list_configuration(list_key) END WHERE list_key = $1",
        list_key,
        error[:2000],
        retry_in_seconds,
        refused,
    )


async def stuck(conn: Conn) -> tuple[set[str], set[str]]:
    """The lists the tenant refuses, and the tenants whose current credentials were rejected."""
    failed = await conn.fetch("SELECT list_key FROM list_state WHERE refused")
    rejected = await conn.fetch(
        "SELECT tenant FROM tenant_state WHERE rejected_credentials IS NOT NULL "
        "AND rejected_credentials = tenant_credentials(tenant)"
    )
    return {r["list_key"] for r in failed}, {r["tenant"] for r in rejected}


async def accept_credentials(conn: Conn, tenant: str) -> None:
    await conn.execute(
        "UPDATE tenant_state SET rejected_credentials = NULL, rejected_message = NULL, rejected_at = NULL "
        "WHERE tenant = $1 AND rejected_credentials IS NOT NULL",
        tenant,
    )


async def failures(conn: Conn, list_key: str) -> int:
    n: int = await conn.fetchval("SELECT failures FROM list_state WHERE list_key = $1", list_key)
    return n
