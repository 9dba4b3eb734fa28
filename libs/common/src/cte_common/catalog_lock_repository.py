"""The catalog lock: orders decisions against changes of what decides them.

A transaction that decides sharings (the rule-engine's indicator batches and re-evaluation steps)
holds it shared from before it reads the catalog (rules, sharings, allow-list, configurations) until
it commits. A transaction that changes the catalog takes it exclusive before it announces the change,
so it commits only once every decision taken under the old catalog has committed, and every decision
that follows reads the new one. Without it, an indicator first seen while a rule or allow-list entry
changes can be decided under the old catalog and committed after the re-evaluation's walk has passed
it, and keep that decision for ever.

A transaction-level advisory lock: released by commit or rollback, and with the connection if its
holder dies.
"""

from __future__ import annotations

from cte_common.db import Connection

__all__ = ["lock_catalog_for_change", "lock_catalog_for_decisions"]

# One fixed key for the whole database (the two-integer form: a key space of its own).
_SHARED = "SELECT pg_advisory_xact_lock_shared(1129595973, 1)"
_EXCLUSIVE = "SELECT pg_advisory_xact_lock(1129595973, 1)"


async def lock_catalog_for_decisions(conn: Connection) -> None:
    """Shared, until the end of the caller's transaction (taking it again in the same one is free)."""
    await conn.execute(_SHARED)


async def lock_catalog_for_change(conn: Connection) -> None:
    """Exclusive, until the end of the caller's transaction: waits for the decisions in flight."""
    await conn.execute(_EXCLUSIVE)
