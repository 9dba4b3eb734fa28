"""SQL of the ingest-api. It owns api_clients, configurations, tags, cte_settings, tenants,
business_rules, allow_list and sharings, and reads the read model (indicators, indicator_sources), the
consumers' positions, the rule-engine's allow_list_hits and reevaluations, and the sink's list_members."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from cte_common.db import Connection
from cte_common.sharing import AllowEntry
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
    "tags_aggregate_strategy, tenant, parameters, aging, created_at, updated_at"
)


async def insert_configuration(conn: Conn, cfg: ConfigurationIn) -> dict[str, Any] | None:
    """Insert and return the row; None if the name is taken."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO configurations (name, plugin, active, age_after_days, reputation, ssl_validation,
                                    use_proxy, tags_aggregate_strategy, tenant, parameters, aging)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
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
        cfg.agingCriteria.model_dump(mode="json") if cfg.agingCriteria else None,
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
        SELECT name, plugin, active, age_after_days, reputation, tags_aggregate_strategy, aging
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


# Business rules

_RULE_COLUMNS = "name, filter, filter_text, exceptions, muted, unmute_at, created_at, updated_at"


async def insert_rule(conn: Conn, name: str, columns: dict[str, Any]) -> dict[str, Any] | None:
    """Insert and return the row; None if the name is taken."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO business_rules (name, filter, filter_text, exceptions, muted, unmute_at)
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING {_RULE_COLUMNS}
        """,
        name,
        columns["filter"],
        columns["filter_text"],
        columns["exceptions"],
        columns.get("muted", False),
        columns.get("unmute_at"),
    )
    return dict(row) if row else None


async def list_rules(conn: Conn) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_RULE_COLUMNS} FROM business_rules ORDER BY name")]


_ROW_LOCKS = ("", "FOR UPDATE", "FOR KEY SHARE")


async def get_rule(conn: Conn, name: str, *, lock: str = "") -> dict[str, Any] | None:
    assert lock in _ROW_LOCKS
    row = await conn.fetchrow(f"SELECT {_RULE_COLUMNS} FROM business_rules WHERE name = $1 {lock}", name)
    return dict(row) if row else None


async def update_rule(conn: Conn, name: str, columns: dict[str, Any]) -> dict[str, Any] | None:
    return await update_row(conn, "business_rules", name, columns, _RULE_COLUMNS)


async def delete_rule(conn: Conn, name: str) -> bool:
    status = await conn.execute("DELETE FROM business_rules WHERE name = $1", name)
    return bool(status.endswith(" 1"))


async def sharings_of_rule(conn: Conn, name: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT id, source, destination FROM sharings WHERE rule = $1 ORDER BY id", name)
    return [dict(r) for r in rows]


async def lock_tags(conn: Conn, names: Sequence[str]) -> list[str]:
    """Which of ``names`` exist, locked against deletion until the transaction ends (a tag that a rule
    names cannot be deleted: the deletion waits for this transaction, then sees the rule)."""
    rows = await conn.fetch("SELECT name FROM tags WHERE name = ANY($1::text[]) ORDER BY name FOR SHARE", list(names))
    return [r["name"] for r in rows]


# Allow-list

_ALLOW_COLUMNS = "id, kind, pattern, comment, created_at"


async def insert_allow_entry(conn: Conn, kind: str, pattern: str, comment: str) -> dict[str, Any] | None:
    """Insert and return the row; None if the same (kind, pattern) exists."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO allow_list (kind, pattern, comment) VALUES ($1, $2, $3)
        ON CONFLICT (kind, pattern) DO NOTHING RETURNING {_ALLOW_COLUMNS}
        """,
        kind,
        pattern,
        comment,
    )
    return dict(row) if row else None


_ALLOW_WITH_HITS = """
SELECT a.id, a.kind, a.pattern, a.comment, a.created_at, coalesce(h.hits, 0) AS hits, h.last_hit_at
FROM allow_list a LEFT JOIN allow_list_hits h ON h.entry_id = a.id
"""


async def list_allow_entries(conn: Conn) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"{_ALLOW_WITH_HITS} ORDER BY a.id")]


async def get_allow_entry(conn: Conn, entry_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"{_ALLOW_WITH_HITS} WHERE a.id = $1", entry_id)
    return dict(row) if row else None


async def delete_allow_entry(conn: Conn, entry_id: int) -> bool:
    status = await conn.execute("DELETE FROM allow_list WHERE id = $1", entry_id)
    return bool(status.endswith(" 1"))


async def allow_entries(conn: Conn) -> list[AllowEntry]:
    return [
        AllowEntry(r["id"], r["kind"], r["pattern"])
        for r in await conn.fetch(f"SELECT {_ALLOW_COLUMNS} FROM allow_list")
    ]


# Sharing configurations

_SHARING_COLUMNS = "id, source, rule, destination, action, parameters, list_key, priority, created_at, updated_at"


async def insert_sharing(conn: Conn, values: dict[str, Any]) -> dict[str, Any] | None:
    """Insert and return the row; None if its list is already the target of another sharing."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO sharings (source, rule, destination, action, parameters, list_key, priority)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (list_key) DO NOTHING RETURNING {_SHARING_COLUMNS}
        """,
        values["source"],
        values["rule"],
        values["destination"],
        values["action"],
        values["parameters"],
        values["list_key"],
        values["priority"],
    )
    return dict(row) if row else None


async def list_sharings(conn: Conn) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_SHARING_COLUMNS} FROM sharings ORDER BY id")]


async def get_sharing(conn: Conn, sharing_id: int, *, lock: str = "") -> dict[str, Any] | None:
    assert lock in _ROW_LOCKS
    row = await conn.fetchrow(f"SELECT {_SHARING_COLUMNS} FROM sharings WHERE id = $1 {lock}", sharing_id)
    return dict(row) if row else None


async def sharing_on_list(conn: Conn, key: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_SHARING_COLUMNS} FROM sharings WHERE list_key = $1", key)
    return dict(row) if row else None


async def update_sharing(conn: Conn, sharing_id: int, columns: dict[str, Any]) -> dict[str, Any] | None:
    sets = ", ".join(f"{col} = ${n + 2}" for n, col in enumerate(columns))
    row = await conn.fetchrow(
        f"UPDATE sharings SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_SHARING_COLUMNS}",
        sharing_id,
        *columns.values(),
    )
    return dict(row) if row else None


async def delete_sharing(conn: Conn, sharing_id: int) -> bool:
    status = await conn.execute("DELETE FROM sharings WHERE id = $1", sharing_id)
    return bool(status.endswith(" 1"))


# Rule tests and dry runs: candidates streamed with a server-side cursor, their sources per chunk.


async def stream_indicators(
    conn: Conn, *, where: str, params: Sequence[Any], chunk: int = 2_000
) -> AsyncIterator[list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
    """Rows of ``indicators i`` matching ``where``, each with its source rows, in chunks; ``conn``
    must be inside a transaction (a cursor)."""
    batch: list[dict[str, Any]] = []
    async for row in conn.cursor(f"SELECT i.* FROM indicators i WHERE {where}", *params, prefetch=chunk):
        batch.append(dict(row))
        if len(batch) >= chunk:
            yield await _with_sources(conn, batch)
            batch = []
    if batch:
        yield await _with_sources(conn, batch)


async def _with_sources(conn: Conn, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    sources = await sources_of(conn, [r["value"] for r in rows])
    return [(r, sources.get(r["value"], [])) for r in rows]


async def stream_list_members(conn: Conn, key: str, chunk: int = 10_000) -> AsyncIterator[list[asyncpg.Record]]:
    """The sink's desired members of one list (read only); ``conn`` must be inside a transaction."""
    batch: list[asyncpg.Record] = []
    async for row in conn.cursor(
        "SELECT value, priority, cost_bytes FROM list_members WHERE list_key = $1", key, prefetch=chunk
    ):
        batch.append(row)
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


# Re-evaluations (the rule-engine's table, read only)


async def list_reevaluations(conn: Conn, skip: int, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT id, reason, requested_at, started_at, finished_at, processed, total
        FROM reevaluations ORDER BY id DESC OFFSET $1 LIMIT $2
        """,
        skip,
        limit,
    )
    return [dict(r) for r in rows]


async def sharings_to(conn: Conn, destination: str) -> list[int]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM sharings WHERE destination = $1", destination)]
