"""SQL of the tenant client: the one writer of tenant_request_budget, the request budgets every sink
replica shares, and of a tenant's rejected credentials in tenant_state (list pushes and alert polls both
stop on them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cte_common.db import Connection

Conn = Connection

# One row per tenant and API; taking it locks it until the transaction ends, so the replicas decide
# one call at a time. clock_timestamp(): one clock for every replica, read after the lock is granted.
_LOCK_BUDGET = """
INSERT INTO tenant_request_budget AS b (tenant, api) VALUES ($1, $2)
ON CONFLICT (tenant, api) DO UPDATE SET sent = b.sent
RETURNING b.sent, clock_timestamp() AS now
"""
_SAVE_BUDGET = "UPDATE tenant_request_budget SET sent = $3 WHERE tenant = $1 AND api = $2"


async def lock_budget(conn: Conn, tenant: str, api: str) -> tuple[list[datetime], datetime]:
    """The recent calls to a tenant's API and the database's time; the row stays locked (call it in a
    transaction, and save_budget before it ends)."""
    row = await conn.fetchrow(_LOCK_BUDGET, tenant, api)
    assert row is not None
    return list(row["sent"]), row["now"]


async def save_budget(conn: Conn, tenant: str, api: str, sent: Sequence[datetime]) -> None:
    await conn.execute(_SAVE_BUDGET, tenant, api, list(sent))


async def reject_credentials(conn: Conn, tenant: str, message: str) -> None:
    """The tenant answered 401/403: nothing is sent to it (no push, no poll) until its credentials change
    (tenant_credentials: its tokens and the row's update time, so any PATCH of the tenant)."""
    await conn.execute(
        """
        INSERT INTO tenant_state AS s (tenant, rejected_credentials, rejected_message, rejected_at)
        VALUES ($1, tenant_credentials($1), $2, now())
        ON CONFLICT (tenant) DO UPDATE SET rejected_credentials = EXCLUDED.rejected_credentials,
            rejected_message = EXCLUDED.rejected_message, rejected_at = EXCLUDED.rejected_at
        """,
        tenant,
        message[:2000],
    )
