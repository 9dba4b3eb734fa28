"""SQL of the pipeline's health: every consumer's recorded positions (read only)."""

from __future__ import annotations

from typing import Any

from cte_common.db import Connection


async def consumer_positions(conn: Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT consumer, topic, partition, next_offset, updated_at FROM consumer_offsets ORDER BY consumer, topic"
    )
    return [dict(r) for r in rows]
