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
