"""SQL of ``idempotency_keys`` (written by the ingest-api only): one row per (client or user, key)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from cte_common.db import Connection


async def claim(
    conn: Connection,
    principal: str,
    key: str,
    request_hash: bytes,
    owner: UUID,
    lease_seconds: float,
    ttl_seconds: float,
) -> dict[str, Any] | None:
    """Take the key for ``owner``: None when taken (new, expired, or its holder's lease ran out on the
    same request); else the row as it stands (another request, or an answer to replay)."""
    taken = await conn.fetchval(
        """
        INSERT INTO idempotency_keys AS k (principal, key, request_hash, owner, lease_until, expires_at)
        VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), now() + make_interval(secs => $6))
        ON CONFLICT (principal, key) DO UPDATE SET
            request_hash = EXCLUDED.request_hash, owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until,
            expires_at = EXCLUDED.expires_at, status = NULL, body = NULL
        WHERE k.expires_at < now()
           OR (k.status IS NULL AND k.lease_until < now() AND k.request_hash = EXCLUDED.request_hash)
        RETURNING true
        """,
        principal,
        key,
        request_hash,
        owner,
        lease_seconds,
        ttl_seconds,
    )
    if taken:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE principal = $1 AND key = $2", principal, key
    )
    return dict(row) if row is not None else {"request_hash": request_hash, "status": None, "body": None}


async def finish(conn: Connection, principal: str, key: str, owner: UUID, status: int, body: bytes) -> None:
    """Store the answer of the request holding the key (no-op if another took it over)."""
    await conn.execute(
        "UPDATE idempotency_keys SET status = $4, body = $5, lease_until = now()"
        " WHERE principal = $1 AND key = $2 AND owner = $3",
        principal,
        key,
        owner,
        status,
        body,
    )


async def release(conn: Connection, principal: str, key: str, owner: UUID) -> None:
    """Give the key back: the request failed, nothing of it is to be replayed."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND owner = $3", principal, key, owner
    )


async def forget_expired(conn: Connection, limit: int = 1000) -> None:
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid IN"
        " (SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT $1)",
        limit,
    )
