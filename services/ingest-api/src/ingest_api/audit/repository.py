"""SQL of audit_log (the ingest-api owns it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from cte_common.db import Connection


async def record(
    conn: Connection,
    *,
    actor: str,
    address: str | None,
    action: str,
    resource: str,
    target: str | None,
    outcome: str,
    status: int | None,
    details: dict[str, Any],
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_log (actor, address, action, resource, target, outcome, status, details)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """,
        actor,
        address,
        action,
        resource,
        target,
        outcome,
        status,
        details,
    )


async def entries(
    conn: Connection,
    *,
    skip: int,
    limit: int,
    actor: str | None,
    resource: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[asyncpg.Record]:
    """Newest first; each filter applies when given (``resource``: a prefix of the path)."""
    return list(
        await conn.fetch(
            """
            SELECT id, at, actor, address, action, resource, target, outcome, status, details::text AS details
            FROM audit_log
            WHERE ($3::text IS NULL OR actor = $3)
              AND ($4::text IS NULL OR starts_with(resource, $4))
              AND ($5::text IS NULL OR outcome = $5)
              AND ($6::timestamptz IS NULL OR at >= $6)
              AND ($7::timestamptz IS NULL OR at < $7)
            ORDER BY at DESC, id DESC OFFSET $1 LIMIT $2
            """,
            skip,
            limit,
            actor,
            resource,
            outcome,
            since,
            until,
        )
    )
