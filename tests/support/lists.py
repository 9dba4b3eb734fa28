"""The sink's rows of one list, for tests that make a list of their own."""

from __future__ import annotations

from cte_common.db import Connection

# Every table the sink keeps per list, by list_key (a new one goes here, not into each test's cleanup).
LIST_TABLES = (
    "list_members",
    "list_changes",
    "list_outcomes",
    "list_pushed",
    "list_foreign",
    "list_claims",
    "list_push_cuts",
    "list_state",
)


async def drop_list(conn: Connection, key: str) -> None:
    """Delete every row the sink keeps for the list ``key``."""
    for table in LIST_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE list_key = $1", key)
