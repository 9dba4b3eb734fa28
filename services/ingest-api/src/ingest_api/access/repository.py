"""SQL of api_clients and signin_failures: credentials, owners, revocation, sign-in failures and lockout."""

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
        "SELECT client_id, secret_hash, scopes, owner, expires_at, revoked_at FROM api_clients WHERE client_id = $1",
        client_id,
    )
    return row


_CLIENT_COLUMNS = "client_id, description, scopes, owner, created_at, expires_at, revoked_at, last_used_at"


async def create_client(
    conn: Connection,
    client_id: str,
    secret_hash: str,
    description: str,
    scopes: list[str],
    expires_at: datetime | None,
    owner: str | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""
        INSERT INTO api_clients (client_id, secret_hash, description, scopes, expires_at, owner)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_CLIENT_COLUMNS}
        """,
        client_id,
        secret_hash,
        description,
        scopes,
        expires_at,
        owner,
    )
    assert row is not None
    return dict(row)


async def list_clients(conn: Connection, owner: str | None = None, every: bool = True) -> list[dict[str, Any]]:
    """Every client (``every``), or those of ``owner``."""
    rows = await conn.fetch(
        f"SELECT {_CLIENT_COLUMNS} FROM api_clients WHERE $1 OR owner = $2 ORDER BY created_at", every, owner
    )
    return [dict(r) for r in rows]


async def revoke_client(conn: Connection, client_id: str, owner: str | None = None, every: bool = True) -> bool:
    """Revoke one client: any (``every``), or only one of ``owner``'s."""
    status = await conn.execute(
        "UPDATE api_clients SET revoked_at = now() WHERE client_id = $1 AND revoked_at IS NULL AND ($2 OR owner = $3)",
        client_id,
        every,
        owner,
    )
    return bool(status.endswith(" 1"))


async def revoke_clients_of(conn: Connection, owner: str) -> list[str]:
    """Revoke every client of a user (deleted or deactivated); their ids."""
    rows = await conn.fetch(
        "UPDATE api_clients SET revoked_at = now() WHERE owner = $1 AND revoked_at IS NULL RETURNING client_id", owner
    )
    return [r["client_id"] for r in rows]


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


# Failed sign-ins of users and addresses (signin_failures): the same counting as a client's above, in a
# table of its own since neither an address nor an unknown name has a row to keep it on.


async def subject_failed(
    conn: Connection, subject: str, max_failures: int, lock_minutes: int, window_minutes: int | None
) -> None:
    """Count a failed sign-in of ``subject``; it is locked once the failures reach ``max_failures``.
    With ``window_minutes``, failures older than the window no longer count (an address is never reset
    by a success: an attacker's own good account must not wipe its count)."""
    await conn.execute(
        """
        INSERT INTO signin_failures AS f (subject, failed_attempts, last_failure_at, locked_until)
        VALUES ($1, 1, now(), CASE WHEN 1 >= $2 THEN now() + make_interval(mins => $3) END)
        ON CONFLICT (subject) DO UPDATE SET
            failed_attempts = CASE WHEN $4::integer IS NOT NULL
                                        AND f.last_failure_at < now() - make_interval(mins => $4::integer)
                                   THEN 1 ELSE f.failed_attempts + 1 END,
            last_failure_at = now(),
            locked_until = CASE WHEN (CASE WHEN $4::integer IS NOT NULL
                                                AND f.last_failure_at < now() - make_interval(mins => $4::integer)
                                           THEN 1 ELSE f.failed_attempts + 1 END) >= $2
                                THEN now() + make_interval(mins => $3) ELSE f.locked_until END
        """,
        subject,
        max_failures,
        lock_minutes,
        window_minutes,
    )


async def subject_succeeded(conn: Connection, subject: str) -> None:
    await conn.execute("DELETE FROM signin_failures WHERE subject = $1", subject)


async def subject_lock(conn: Connection, subjects: list[str]) -> datetime | None:
    """The latest time until which any of ``subjects`` is locked, or None."""
    until: datetime | None = await conn.fetchval(
        "SELECT max(locked_until) FROM signin_failures WHERE subject = ANY($1) AND locked_until > now()", subjects
    )
    return until
