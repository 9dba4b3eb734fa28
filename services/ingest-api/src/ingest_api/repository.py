"""SQL of the ingest-api. It owns api_clients, configurations, tags and cte_settings, and reads the
read model (indicators, indicator_sources) and the consumers' positions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from cte_common.db import Connection
from ingest_api.domain import ConfigurationIn, ConfigurationRow

Conn = Connection

# api_clients


async def upsert_client(
    conn: Conn, client_id: str, secret_hash: str, description: str, scopes: list[str]
) -> None:
    await conn.execute(
        """
        INSERT INTO api_clients (client_id, secret_hash, description, scopes) VALUES ($1, $2, $3, $4)
        ON CONFLICT (client_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, scopes = EXCLUDED.scopes,
            revoked_at = NULL
        """,
        client_id,
        secret_hash,
        description,
        scopes,
    )


async def get_client(conn: Conn, client_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT client_id, secret_hash, scopes, expires_at, revoked_at FROM api_clients WHERE client_id = $1",
        client_id,
    )
    return row


# configurations

_CONFIG_COLUMNS = (
    "name, plugin, active, age_after_days, reputation, ssl_validation, use_proxy, "
    "tags_aggregate_strategy, tenant, parameters, created_at, updated_at"
)


async def insert_configuration(conn: Conn, cfg: ConfigurationIn) -> dict[str, Any] | None:
    """Insert and return the row; None if the name is taken."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO configurations (name, plugin, active, age_after_days, reputation, ssl_validation,
                                    use_proxy, tags_aggregate_strategy, tenant, parameters)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (name) DO NOTHING
        RETURNING {_CONFIG_COLUMNS}
        """,
        cfg.name,
        cfg.plugin,
        cfg.active,
        cfg.ageAfterDays,
        cfg.reputation,
        cfg.sslValidation,
        cfg.useProxy,
        cfg.tagsAggregateStrategy,
        cfg.tenant,
        cfg.parameters,
    )
    return dict(row) if row else None


async def list_configurations(conn: Conn) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_CONFIG_COLUMNS} FROM configurations ORDER BY name")]


async def get_configuration(conn: Conn, name: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_CONFIG_COLUMNS} FROM configurations WHERE name = $1", name)
    return dict(row) if row else None


async def source_configurations(conn: Conn, names: Sequence[str]) -> dict[str, ConfigurationRow]:
    rows = await conn.fetch(
        """
        SELECT name, plugin, active, age_after_days, reputation, tags_aggregate_strategy
        FROM configurations WHERE name = ANY($1::text[])
        """,
        list(names),
    )
    return {r["name"]: ConfigurationRow.model_validate(dict(r)) for r in rows}


async def criterion(conn: Conn) -> str:
    value: str = await conn.fetchval("SELECT criterion FROM cte_settings")
    return value


# tags


async def ensure_tags(conn: Conn, names: Sequence[str]) -> None:
    """Create missing tags with the reference's default colour (feeds bring new tags)."""
    if names:
        await conn.execute(
            "INSERT INTO tags (name) SELECT DISTINCT unnest($1::text[]) ON CONFLICT (name) DO NOTHING",
            list(names),
        )


# indicators (read model, read only)


async def list_indicators(
    conn: Conn, *, where: str, params: list[Any], order_by: str, skip: int, limit: int
) -> list[dict[str, Any]]:
    n = len(params)
    rows = await conn.fetch(
        f"SELECT i.* FROM indicators i WHERE {where} {order_by} OFFSET ${n + 1} LIMIT ${n + 2}",
        *params,
        skip,
        limit,
    )
    return [dict(r) for r in rows]


async def count_indicators(conn: Conn, *, where: str, params: list[Any]) -> int:
    count: int = await conn.fetchval(f"SELECT count(*) FROM indicators i WHERE {where}", *params)
    return count


async def sources_of(conn: Conn, values: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    rows = await conn.fetch(
        "SELECT * FROM indicator_sources WHERE value = ANY($1::text[]) ORDER BY value, source", list(values)
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["value"], []).append(dict(r))
    return out


async def positions_reached(conn: Conn, consumer: str, marks: Sequence[tuple[str, int, int]]) -> bool:
    """True once ``consumer`` has applied every (topic, partition, offset) in ``marks``."""
    if not marks:
        return True
    pending: int = await conn.fetchval(
        """
        SELECT count(*) FROM unnest($2::text[], $3::int[], $4::bigint[]) AS m(t, p, o)
        LEFT JOIN consumer_offsets c ON c.consumer = $1 AND c.topic = m.t AND c.partition = m.p
        WHERE coalesce(c.next_offset, 0) <= m.o
        """,
        consumer,
        [m[0] for m in marks],
        [m[1] for m in marks],
        [m[2] for m in marks],
    )
    return pending == 0


def jsonable(value: Any) -> Any:
    """Round-trip through JSON with ISO datetimes, for event bodies built from rows."""
    return json.loads(
        json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
    )
