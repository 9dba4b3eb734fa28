"""SQL of api_clients (the ingest-api owns it): credentials, revocation, sign-in failures and lockout."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from cte_common.db import Connection


async def upsert_client(
    conn: Connection, client_id: str, secret_hash: str, description: str, scopes: list[str]
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


async def get_client(conn: Connection, client_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT client_id, secret_hash, scopes, expires_at, revoked_at FROM api_clients WHERE client_id = $1",
        client_id,
    )
    return row


_CLIENT_COLUMNS = "client_id, description, scopes, created_at, expires_at, revoked_at, last_used_at"


async def create_client(
    conn: Connection,
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


async def list_clients(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_CLIENT_COLUMNS} FROM api_clients ORDER BY created_at")]


async def revoke_client(conn: Connection, client_id: str) -> bool:
    status = await conn.execute(
        "UPDATE api_clients SET revoked_at = now() WHERE client_id = $1 AND revoked_at IS NULL", client_id
    )
    return bool(status.endswith(" 1"))


async def sign_in_failed(conn: Connection, client_id: str, max_failures: int, lock_minutes: int) -> None:
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


async def sign_in_succeeded(conn: Connection, client_id: str) -> None:
    await conn.execute(
        "UPDATE api_clients SET failed_attempts = 0, locked_until = NULL, last_used_at = now() WHERE client_id = $1",
        client_id,
    )


async def client_lock(conn: Connection, client_id: str) -> datetime | None:
    until: datetime | None = await conn.fetchval(
        "SELECT locked_until FROM api_clients WHERE client_id = $1 AND locked_until > now()", client_id
    )
    return until
