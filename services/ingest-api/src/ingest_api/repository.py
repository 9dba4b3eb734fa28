"""SQL of the ingest-api. It owns api_clients, configurations, tags and cte_settings, and reads the
read model (indicators, indicator_sources) and the consumers' positions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from cte_common.db import Connection
from ingest_api.domain import ConfigurationIn, ConfigurationRow

Conn = Connection

# api_clients


async def upsert_client(conn: Conn, client_id: str, secret_hash: str, description: str, scopes: list[str]) -> None:
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
    return json.loads(json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)))


# API clients (tokens)

_CLIENT_COLUMNS = "client_id, description, scopes, created_at, expires_at, revoked_at, last_used_at"


async def create_client(
    conn: Conn,
    client_id: str,
    secret_hash: str,
    description: str,
    scopes: list[str],
    expires_at: datetime | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""
        INSERT INTO api_clients (client_id, secret_hash, description, scopes, expires_at)
        VALUES ($1, $2, $3, $4, $5) RETURNING {_CLIENT_COLUMNS}
        """,
        client_id,
        secret_hash,
        description,
        scopes,
        expires_at,
    )
    assert row is not None
    return dict(row)


async def list_clients(conn: Conn) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_CLIENT_COLUMNS} FROM api_clients ORDER BY created_at")]


async def revoke_client(conn: Conn, client_id: str) -> bool:
    status = await conn.execute(
        "UPDATE api_clients SET revoked_at = now() WHERE client_id = $1 AND revoked_at IS NULL", client_id
    )
    return bool(status.endswith(" 1"))


async def sign_in_failed(conn: Conn, client_id: str, max_failures: int, lock_minutes: int) -> None:
    """Count a failed sign-in; the client is locked once the failures reach ``max_failures``."""
    await conn.execute(
        """
        UPDATE api_clients SET failed_attempts = failed_attempts + 1,
            locked_until = CASE WHEN failed_attempts + 1 >= $2
                                THEN now() + make_interval(mins => $3) ELSE locked_until END
        WHERE client_id = $1
        """,
        client_id,
        max_failures,
        lock_minutes,
    )


async def sign_in_succeeded(conn: Conn, client_id: str) -> None:
    await conn.execute(
        "UPDATE api_clients SET failed_attempts = 0, locked_until = NULL, last_used_at = now() WHERE client_id = $1",
        client_id,
    )


async def client_lock(conn: Conn, client_id: str) -> datetime | None:
    until: datetime | None = await conn.fetchval(
        "SELECT locked_until FROM api_clients WHERE client_id = $1 AND locked_until > now()", client_id
    )
    return until


# Tenants

_TENANT_COLUMNS = (
    "name, tenant_name, base_url, v1_token_encrypted, v2_token_encrypted, initial_range_days, use_proxy, "
    "created_at, updated_at"
)


async def insert_tenant(conn: Conn, values: dict[str, Any]) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""
        INSERT INTO tenants (name, tenant_name, base_url, v1_token_encrypted, v2_token_encrypted,
                             initial_range_days, use_proxy)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING RETURNING {_TENANT_COLUMNS}
        """,
        values["name"],
        values["tenant_name"],
        values["base_url"],
        values["v1_token_encrypted"],
        values["v2_token_encrypted"],
        values["initial_range_days"],
        values["use_proxy"],
    )
    return dict(row) if row else None


async def list_tenants(conn: Conn) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY name")]


async def get_tenant(conn: Conn, name: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE name = $1", name)
    return dict(row) if row else None


# Column names come from a fixed mapping in the handlers, never from the request.
async def update_row(
    conn: Conn, table: str, key: str, columns: dict[str, Any], returning: str
) -> dict[str, Any] | None:
    sets = ", ".join(f"{col} = ${n + 2}" for n, col in enumerate(columns))
    row = await conn.fetchrow(
        f"UPDATE {table} SET {sets}, updated_at = now() WHERE name = $1 RETURNING {returning}",
        key,
        *columns.values(),
    )
    return dict(row) if row else None


async def update_tenant(conn: Conn, name: str, columns: dict[str, Any]) -> dict[str, Any] | None:
    return await update_row(conn, "tenants", name, columns, _TENANT_COLUMNS)


async def delete_tenant(conn: Conn, name: str) -> bool:
    status = await conn.execute("DELETE FROM tenants WHERE name = $1", name)
    return bool(status.endswith(" 1"))


async def configurations_of_tenant(conn: Conn, name: str) -> list[str]:
    return [r["name"] for r in await conn.fetch("SELECT name FROM configurations WHERE tenant = $1", name)]


# Configurations: update and delete


async def update_configuration(conn: Conn, name: str, columns: dict[str, Any]) -> dict[str, Any] | None:
    return await update_row(conn, "configurations", name, columns, _CONFIG_COLUMNS)


async def delete_configuration(conn: Conn, name: str) -> bool:
    status = await conn.execute("DELETE FROM configurations WHERE name = $1", name)
    return bool(status.endswith(" 1"))


async def tenant_exists(conn: Conn, name: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tenants WHERE name = $1)", name))


# Tags


async def insert_tag(conn: Conn, name: str, color: str) -> bool:
    status = await conn.execute(
        "INSERT INTO tags (name, color) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, color
    )
    return bool(status.endswith(" 1"))


async def missing_tags(conn: Conn, names: Sequence[str]) -> list[str]:
    rows = await conn.fetch(
        "SELECT n FROM unnest($1::text[]) AS n WHERE NOT EXISTS (SELECT 1 FROM tags WHERE name = n) ORDER BY n",
        list(names),
    )
    return [r["n"] for r in rows]


async def delete_tag(conn: Conn, name: str) -> bool:
    status = await conn.execute("DELETE FROM tags WHERE name = $1", name)
    return bool(status.endswith(" 1"))


async def tags_with_usage(conn: Conn, *, where: str, params: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """Every tag with how many of the filtered indicators carry it (on any source), and their total."""
    rows = await conn.fetch(
        f"""
        WITH f AS (SELECT i.value FROM indicators i WHERE {where}),
             used AS (SELECT t, count(DISTINCT s.value) AS c
                      FROM indicator_sources s JOIN f ON f.value = s.value, unnest(s.tags) AS t GROUP BY t)
        SELECT tags.name, tags.color, coalesce(used.c, 0) AS count,
               (SELECT count(*) FROM f) AS total
        FROM tags LEFT JOIN used ON used.t = tags.name
        ORDER BY tags.name
        """,
        *params,
    )
    total = rows[0]["total"] if rows else 0
    return [dict(r) for r in rows], total


# Resolving locators to stored values (streamed: a query may match millions)


async def _stream(conn: Conn, query: str, *params: Any, chunk: int = 10_000) -> AsyncIterator[list[str]]:
    """The ``value`` column of ``query`` in chunks; ``conn`` must be inside a transaction (a cursor)."""
    batch: list[str] = []
    async for row in conn.cursor(query, *params, prefetch=chunk):
        batch.append(row["value"])
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def stream_values(conn: Conn, *, where: str, params: list[Any]) -> AsyncIterator[list[str]]:
    """Values of the indicators matching the compiled filter ``where``."""
    return _stream(conn, f"SELECT i.value FROM indicators i WHERE {where}", *params)


def values_with_source(conn: Conn, source: str) -> AsyncIterator[list[str]]:
    return _stream(conn, "SELECT value FROM indicator_sources WHERE source = $1", source)


def values_with_tag(conn: Conn, tag: str) -> AsyncIterator[list[str]]:
    return _stream(conn, "SELECT DISTINCT value FROM indicator_sources WHERE tags @> ARRAY[$1::text]", tag)


async def existing_values(conn: Conn, candidates: Sequence[str], source: str | None) -> list[str]:
    """Which candidate values are stored (with an entry of ``source``, when given)."""
    if source is None:
        rows = await conn.fetch("SELECT value FROM indicators WHERE value = ANY($1::text[])", list(candidates))
    else:
        rows = await conn.fetch(
            "SELECT value FROM indicator_sources WHERE value = ANY($1::text[]) AND source = $2",
            list(candidates),
            source,
        )
    return [r["value"] for r in rows]


# Dashboards


async def run_dashboard(conn: Conn, sql: str, params: list[Any]) -> list[asyncpg.Record]:
    return list(await conn.fetch(sql, *params))


async def pull_counts(conn: Conn) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """
            SELECT i.type, s.source, count(*) FILTER (WHERE s.retracted) AS retracted,
                   count(*) FILTER (WHERE NOT s.retracted) AS unretracted, count(*) AS total
            FROM indicator_sources s JOIN indicators i USING (value)
            GROUP BY i.type, s.source ORDER BY i.type, s.source
            """
        )
    )


# Settings > Threat Exchange (one row)


async def get_cte_settings(conn: Conn) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT criterion, delete_inactive_indicators FROM cte_settings")
    assert row is not None
    return dict(row)


async def update_cte_settings(conn: Conn, criterion: str | None, delete_inactive: bool | None) -> dict[str, Any]:
    row = await conn.fetchrow(
        """
        UPDATE cte_settings SET criterion = coalesce($1, criterion),
            delete_inactive_indicators = coalesce($2, delete_inactive_indicators)
        RETURNING criterion, delete_inactive_indicators
        """,
        criterion,
        delete_inactive,
    )
    assert row is not None
    return dict(row)
