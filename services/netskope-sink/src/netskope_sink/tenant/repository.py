"""SQL of the tenant client: the one writer of tenant_request_budget, the request budgets every sink
replica shares."""

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
