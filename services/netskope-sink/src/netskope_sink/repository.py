"""SQL of the netskope-sink: it is the one writer of ``list_members``."""

from __future__ import annotations

from collections.abc import Sequence

from cte_common.db import Connection
from cte_common.events import ShareIntent

_UPSERT_MEMBERS = """
INSERT INTO list_members (list_key, value, type, priority, cost_bytes)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int[])
ON CONFLICT (list_key, value) DO UPDATE SET
    type = EXCLUDED.type, priority = EXCLUDED.priority, cost_bytes = EXCLUDED.cost_bytes, updated_at = now()
WHERE (list_members.priority, list_members.cost_bytes)
      IS DISTINCT FROM (EXCLUDED.priority, EXCLUDED.cost_bytes)
"""
_DELETE_MEMBERS = """
DELETE FROM list_members AS m USING unnest($1::text[], $2::text[]) AS x(l, v)
WHERE m.list_key = x.l AND m.value = x.v
"""


async def apply_intents(conn: Connection, intents: Sequence[ShareIntent]) -> None:
    adds = [i for i in intents if i.add]
    removes = [i for i in intents if not i.add]
    if adds:
        await conn.execute(
            _UPSERT_MEMBERS,
            [i.list_key for i in adds],
            [i.value for i in adds],
            [i.type.value for i in adds],
            [i.priority for i in adds],
            [i.cost_bytes for i in adds],
        )
    if removes:
        await conn.execute(_DELETE_MEMBERS, [i.list_key for i in removes], [i.value for i in removes])
