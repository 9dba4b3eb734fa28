"""SQL of alert polling: the one writer of poll_checkpoints; it reads configurations, tenants and
cte_settings (the ingest-api's), and tenant_state (a tenant whose current credentials were rejected is
not polled)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cte_common.db import Connection
from cte_common.events import Criterion
from netskope_sink.alerts.schemas import Checkpoint

Conn = Connection

_POLLED = """
SELECT c.name, c.plugin, c.active, c.age_after_days, c.reputation, c.tags_aggregate_strategy, c.aging,
       c.parameters, c.ssl_validation, c.use_proxy,
       t.name AS tenant, t.base_url, t.v2_token_encrypted, t.initial_range_days, t.use_proxy AS tenant_proxy
FROM configurations c JOIN tenants t ON t.name = c.tenant
WHERE c.plugin = 'netskope' AND c.active AND c.parameters->>'enablePolling' = 'true'
  AND NOT EXISTS (
      SELECT 1 FROM tenant_state ts
      WHERE ts.tenant = t.name AND ts.rejected_credentials = tenant_credentials(t.name))
"""
_CONFIGURATIONS = _POLLED + "ORDER BY c.name"
_CONFIGURATION = _POLLED + "AND c.name = $1"
_CRITERION = "SELECT criterion FROM cte_settings"
_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended($1, 11))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended($1, 11))"
_ENSURE = """
INSERT INTO poll_checkpoints (configuration, alert_type, tenant, index_name) VALUES ($1, $2, $3, $4)
ON CONFLICT (configuration, alert_type) DO NOTHING
"""
_LOAD = "SELECT * FROM poll_checkpoints WHERE configuration = $1 AND alert_type = $2"
# A configuration moved to another tenant starts over there (that tenant has no such iterator).
_RESET = """
UPDATE poll_checkpoints SET tenant = $3, index_name = $4, started = false, start_epoch = NULL,
    page_digest = NULL, pending = false, pending_digest = NULL, pending_offsets = NULL, pending_at = NULL,
    next_sent = false, due_at = NULL, updated_at = now()
WHERE configuration = $1 AND alert_type = $2
"""
_SET_START = (
    "UPDATE poll_checkpoints SET start_epoch = $3, updated_at = now() WHERE configuration = $1 AND alert_type = $2"
)
_MARK_PENDING = """
UPDATE poll_checkpoints SET pending = true, pending_digest = $3, pending_offsets = $4, pending_at = $5,
    updated_at = now()
WHERE configuration = $1 AND alert_type = $2
"""
_CLEAR_PENDING = """
UPDATE poll_checkpoints SET pending = false, pending_digest = NULL, pending_offsets = NULL, pending_at = NULL,
    updated_at = now()
WHERE configuration = $1 AND alert_type = $2
"""
_COMMIT = """
UPDATE poll_checkpoints SET started = true, page_digest = $3, pages = pages + $4, alerts = alerts + $5,
    indicators = indicators + $6, last_timestamp = greatest(last_timestamp, $7),
    pending = false, pending_digest = NULL, pending_offsets = NULL, pending_at = NULL, next_sent = false,
    updated_at = now()
WHERE configuration = $1 AND alert_type = $2
"""
# No row yet: due (a new iterator).
_DUE = """
SELECT coalesce((SELECT due_at IS NULL OR due_at <= now() FROM poll_checkpoints
                 WHERE configuration = $1 AND alert_type = $2), true)
"""
_NEXT_SENT = (
    "UPDATE poll_checkpoints SET next_sent = true, updated_at = now() WHERE configuration = $1 AND alert_type = $2"
)
_PACED = """
UPDATE poll_checkpoints SET next_sent = false, due_at = now() + make_interval(secs => $3), updated_at = now()
WHERE configuration = $1 AND alert_type = $2
"""


async def polled_configurations(conn: Conn) -> list[Any]:
    """The active Netskope configurations that poll, each with its tenant's connection settings; none of
    a tenant that rejected the credentials it still has (401/403, from a poll or a push)."""
    rows: list[Any] = await conn.fetch(_CONFIGURATIONS)
    return rows


async def polled_configuration(conn: Conn, name: str) -> list[Any]:
    """The configuration ``name`` as polled_configurations reads it; no row once it no longer polls."""
    rows: list[Any] = await conn.fetch(_CONFIGURATION, name)
    return rows


async def criterion(conn: Conn) -> Criterion:
    value: Criterion = await conn.fetchval(_CRITERION)
    return value


async def try_lock_iterator(conn: Conn, lock_name: str) -> bool:
    """A session lock: one sink process polls an iterator at a time."""
    return bool(await conn.fetchval(_TRY_LOCK, lock_name))


async def unlock_iterator(conn: Conn, lock_name: str) -> None:
    await conn.execute(_UNLOCK, lock_name)


async def ensure_checkpoint(conn: Conn, configuration: str, alert_type: str, tenant: str, index_name: str) -> None:
    await conn.execute(_ENSURE, configuration, alert_type, tenant, index_name)


async def load_checkpoint(conn: Conn, configuration: str, alert_type: str) -> Checkpoint:
    return Checkpoint.from_row(await conn.fetchrow(_LOAD, configuration, alert_type))


async def reset_checkpoint(conn: Conn, configuration: str, alert_type: str, tenant: str, index_name: str) -> None:
    await conn.execute(_RESET, configuration, alert_type, tenant, index_name)


async def set_start_epoch(conn: Conn, configuration: str, alert_type: str, start_epoch: int) -> None:
    await conn.execute(_SET_START, configuration, alert_type, start_epoch)


async def mark_pending(
    conn: Conn, configuration: str, alert_type: str, digest: str, offsets: dict[str, int], at: datetime
) -> None:
    """Before a page's publish: its digest, the ingest time its sightings carry, where the topic ended."""
    await conn.execute(_MARK_PENDING, configuration, alert_type, digest, offsets, at)


async def clear_pending(conn: Conn, configuration: str, alert_type: str) -> None:
    await conn.execute(_CLEAR_PENDING, configuration, alert_type)


async def commit_page(
    conn: Conn,
    configuration: str,
    alert_type: str,
    *,
    digest: str,
    pages: int,
    alerts: int,
    indicators: int,
    timestamp_hwm: int | None,
) -> None:
    """The page taken: the iterator started, its counters, and no page pending."""
    await conn.execute(_COMMIT, configuration, alert_type, digest, pages, alerts, indicators, timestamp_hwm)


async def is_due(conn: Conn, configuration: str, alert_type: str) -> bool:
    """Whether the iterator's wait_time (as the tenant asked after its last page) has passed."""
    return bool(await conn.fetchval(_DUE, configuration, alert_type))


async def mark_next_sent(conn: Conn, configuration: str, alert_type: str) -> None:
    """Before a `next`: until its page is taken, the iterator's next drain asks `resend` for it."""
    await conn.execute(_NEXT_SENT, configuration, alert_type)


async def paced(conn: Conn, configuration: str, alert_type: str, wait_seconds: float) -> None:
    """A drain ended with nothing left unanswered: not due again for ``wait_seconds``."""
    await conn.execute(_PACED, configuration, alert_type, wait_seconds)
