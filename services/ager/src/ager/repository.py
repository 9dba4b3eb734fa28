"""SQL of the ager. It reads the read model and writes nothing in it."""

from __future__ import annotations

from datetime import datetime

from cte_common.db import Connection

# A transaction-scoped advisory lock: one replica sweeps at a time, and a crashed one releases it.
_SWEEP_LOCK_KEY = 0x43544541  # "CTEA"
_TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
# Served by the partial index indicators_due.
_FIND_DUE = """
SELECT value, expires_at FROM indicators
WHERE active AND expires_at IS NOT NULL AND expires_at <= $1
ORDER BY expires_at
LIMIT $2
"""


async def try_sweep_lock(conn: Connection) -> bool:
    return bool(await conn.fetchval(_TRY_LOCK, _SWEEP_LOCK_KEY))


async def find_due(conn: Connection, now: datetime, limit: int) -> list[tuple[str, datetime]]:
    rows = await conn.fetch(_FIND_DUE, now, limit)
    return [(r["value"], r["expires_at"]) for r in rows]


# The reference's deleteInactiveIndicators: an inactive indicator is deleted once it has left every
# list: no sharing selects it, no list wants it, and no list holds it on its tenant (the sink's
# record; a URL is held as its entry, without the scheme). The list tables are keyed by (list_key,
# value) and nothing else, so the question goes to each list in turn: every list has a state row
# from its first intent on, before it has a member or a pushed entry, and keeps it.
_DELETE_INACTIVE_ENABLED = "SELECT delete_inactive_indicators FROM cte_settings"
_FIND_DELETABLE = """
SELECT i.value FROM indicators i
WHERE NOT i.active AND i.value > $2
  AND NOT EXISTS (SELECT 1 FROM share_decisions d WHERE d.value = i.value)
  AND NOT EXISTS (
      SELECT 1 FROM list_state s
      WHERE EXISTS (SELECT 1 FROM list_members m WHERE m.list_key = s.list_key AND m.value = i.value)
         OR EXISTS (SELECT 1 FROM list_pushed p WHERE p.list_key = s.list_key
                    AND p.value IN (i.value, regexp_replace(i.value, '^(https?|ftp)://', '')))
  )
ORDER BY i.value
LIMIT $1
"""


async def delete_inactive_enabled(conn: Connection) -> bool:
    return bool(await conn.fetchval(_DELETE_INACTIVE_ENABLED))


async def find_deletable(conn: Connection, after: str, limit: int) -> list[str]:
    """Deletable values after ``after`` in value order (a cursor, so rounds make progress)."""
    return [r["value"] for r in await conn.fetch(_FIND_DELETABLE, limit, after)]
