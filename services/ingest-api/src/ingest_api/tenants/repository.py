"""SQL of tenants (the ingest-api owns it)."""

from __future__ import annotations

from typing import Any

from cte_common.db import Connection
from ingest_api.configurations.repository import update_row

_TENANT_COLUMNS = (
    "name, tenant_name, base_url, v1_token_encrypted, v2_token_encrypted, initial_range_days, use_proxy, "
    "created_at, updated_at"
)


async def insert_tenant(conn: Connection, values: dict[str, Any]) -> dict[str, Any] | None:
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


async def list_tenants(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY name")]


async def get_tenant(conn: Connection, name: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE name = $1", name)
    return dict(row) if row else None


async def update_tenant(conn: Connection, name: str, columns: dict[str, Any]) -> dict[str, Any] | None:
    return await update_row(conn, "tenants", name, columns, _TENANT_COLUMNS)


async def delete_tenant(conn: Connection, name: str) -> bool:
    status = await conn.execute("DELETE FROM tenants WHERE name = $1", name)
    return bool(status.endswith(" 1"))


async def tenant_exists(conn: Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tenants WHERE name = $1)", name))
