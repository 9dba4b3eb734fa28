"""SQL of configurations (the ingest-api owns it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cte_common.db import Connection
from ingest_api.configurations.schemas import ConfigurationIn, ConfigurationRow

_CONFIG_COLUMNS = (
    "name, plugin, active, age_after_days, reputation, ssl_validation, use_proxy, "
    "tags_aggregate_strategy, tenant, parameters, aging, created_at, updated_at"
)


async def insert_configuration(conn: Connection, cfg: ConfigurationIn) -> dict[str, Any] | None:
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


async def list_configurations(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_CONFIG_COLUMNS} FROM configurations ORDER BY name")]


async def get_configuration(conn: Connection, name: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_CONFIG_COLUMNS} FROM configurations WHERE name = $1", name)
    return dict(row) if row else None


async def source_configurations(conn: Connection, names: Sequence[str]) -> dict[str, ConfigurationRow]:
    rows = await conn.fetch(
        """
        SELECT name, plugin, active, age_after_days, reputation, tags_aggregate_strategy, aging
        FROM configurations WHERE name = ANY($1::text[])
        """,
        list(names),
    )
    return {r["name"]: ConfigurationRow.model_validate(dict(r)) for r in rows}


# Column names come from a fixed mapping in the handlers, never from the request.
async def update_row(
    conn: Connection, table: str, key: str, columns: dict[str, Any], returning: str
) -> dict[str, Any] | None:
    sets = ", ".join(f"{col} = ${n + 2}" for n, col in enumerate(columns))
    row = await conn.fetchrow(
        f"UPDATE {table} SET {sets}, updated_at = now() WHERE name = $1 RETURNING {returning}",
        key,
        *columns.values(),
    )
    return dict(row) if row else None


async def update_configuration(conn: Connection, name: str, columns: dict[str, Any]) -> dict[str, Any] | None:
    return await update_row(conn, "configurations", name, columns, _CONFIG_COLUMNS)


async def delete_configuration(conn: Connection, name: str) -> bool:
    status = await conn.execute("DELETE FROM configurations WHERE name = $1", name)
    return bool(status.endswith(" 1"))


async def configurations_of_tenant(conn: Connection, name: str) -> list[str]:
    return [r["name"] for r in await conn.fetch("SELECT name FROM configurations WHERE tenant = $1", name)]
