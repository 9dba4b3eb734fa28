"""Netskope alert polling: the Netskope plugin as a source.

Every ``poll_interval_seconds`` the poller reads the active Netskope configurations with
``parameters.enablePolling`` and, for each alert type their ``threatDataTypes`` need (Malware →
``malware``, URL → ``malsite``, Both → both) whose iterator is due, drains the tenant's dataexport
iterator ``GET /api/v2/events/dataexport/alerts/{type}?index=<name>&operation=<op>``. The iterator's name is
stable per configuration and type (domain.iterator_index), so a restart continues it. The first call
seeds it with the epoch of now - initialRangeDays (the configuration's parameter, else the tenant's);
later calls are ``next``. Each alert becomes md5/sha256 (malware) or url (malsite) sightings of that
configuration, built like an API POST would build them (domain.polled_page), and published to the
indicator topic keyed by canonical value; the rule-engine merges them as for any source.

Pacing, as Netskope's dataexport documentation asks: a page answered with ``wait_time`` 0 is followed
by the next one at once; otherwise the iterator is not due again for ``wait_time`` seconds
(``poll_checkpoints.due_at``, by the database's clock, which every sink process keeps to). Every call
to an endpoint goes through that endpoint's request budget (4 per second, shared by the sink processes
like the API budgets) and waits out an answer's ``RateLimit-Remaining: 0`` for its ``RateLimit-Reset``
(tenant.client); a 429 is retried after its ``Retry-After``.

One poller at a time per iterator: a session advisory lock, so several sink processes share the
iterators like they share the lists.

A 401 or 403 from a dataexport endpoint rejects the tenant's credentials exactly as a list push's does
(tenant_state, written by tenant.repository): no configuration of that tenant is polled, and no list
pushed to it, until its credentials change (any PATCH of the tenant).

Exactly once across restarts and failures
-----------------------------------------
The tenant holds the iterator's cursor; ``poll_checkpoints`` holds what was taken from it. Two
windows could lose or repeat a page, and each is closed differently.

1. A page the tenant answered but this side never took (a crash, or a timeout or dropped answer after
   the tenant had moved its cursor: the fake tenant's injected timeouts do exactly that). ``next`` is
   therefore never retried blindly (only a 429, which the tenant refused, is), and the checkpoint
   records ``next_sent`` before each ``next``; taking its page (or an empty answer) clears it. Only a
   broken page asks ``resend``: after a failed ``next`` in a drain, and when a drain starts on an
   iterator whose ``next_sent`` is still set (whichever process gets the lock); a drain that finds
   nothing broken goes straight to ``next``. The tenant answers ``resend`` with the last page it
   answered. If that page's digest is the digest of the last page taken (the checkpoint's
   ``page_digest``), the lost call never moved the cursor; otherwise it is the lost page and is taken
   now. Pages carry unique alerts (``_id``), so two different pages never share a digest; an empty page
   needs nothing taken.

2. A page whose sightings were published but whose checkpoint was not committed (a crash between
   the two, or a publish that failed half-way). Publishing and committing cannot be one transaction,
   and the rule-engine counts hits per record: it applies every record once (its positions) but does
   not dedupe by event id, so publishing a page twice would double its hits. So before publishing,
   the checkpoint is marked ``pending`` with the page's digest, the ingest time its sightings carry,
   and the indicator topic's end offsets; every record carries headers naming the page
   (``<index>/<start epoch>/<page number>``) and its item number, and a deterministic event id. A
   poller that finds ``pending`` asks ``resend`` (the tenant still has that page as its last answer:
   the cursor is not moved before the commit), rebuilds the same sightings, reads the topic from the
   recorded offsets to its end (SightingLog, over cte_common.topic_range) to learn which items already
   landed, publishes only the others, and commits. The log itself says what was published, so no
   window remains between a publish and its record. Sends of a failed publish that are still queued
   in this process's producer may land until its request timeout, so a page whose publish failed here
   is recovered only after ``poll_publish_settle_seconds``; a killed process has no queued sends.

Limits: a tenant that loses its iterator (``resend`` no longer answers the pending page) makes the
rest of that page unrecoverable (counted as a ``lost`` page); a poller whose database session died
while its own sends were in flight could race the process that took over its lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from faststream.kafka import KafkaBroker

from cte_common.db import Connection, Pool
from cte_common.events import Criterion, IndicatorSighting, encode
from cte_common.kafka import Outgoing, publish_all
from cte_common.topic_range import RangeRecord, TopicRange
from cte_common.topics import Topics
from netskope_sink.alerts import repository
from netskope_sink.alerts.domain import initial_epoch, polled_page
from netskope_sink.alerts.schemas import Checkpoint, Page, Target, targets_from_rows
from netskope_sink.metrics import (
    CREDENTIALS_REJECTED,
    POLL_ALERTS,
    POLL_BACKLOG,
    POLL_ERRORS,
    POLL_INDICATORS,
    POLL_INVALID,
    POLL_LAG,
    POLL_LAST_SUCCESS,
    POLL_PAGES,
    POLL_RECOVERED,
)
from netskope_sink.settings import Settings
from netskope_sink.tenant import repository as tenant_repository
from netskope_sink.tenant.client import (
    Api,
    RequestBudget,
    TenantClient,
    TenantClients,
    TenantError,
    TenantUnavailable,
)
from netskope_sink.tenant.domain import credentials_rejected

log = logging.getLogger(__name__)

PAGE_HEADER = "cte-poll-page"
ITEM_HEADER = "cte-poll-item"
# Event ids of polled sightings: uuid5 of "<page tag>/<item>" in this namespace.
EVENT_NAMESPACE = uuid.UUID("6f0c3a52-4d0e-5b8e-9a57-6c1f2d9e0b41")
# Consecutive failed `next` calls after which an iterator waits for the next round.
MAX_FAILED_NEXT = 3


class SightingLog:
    """The indicator topic as the poller reads it: its end offsets, and which items of a page landed."""

    def __init__(self, bootstrap: str, topic: str, client_id: str) -> None:
        self.range = TopicRange(bootstrap, topic, client_id)

    async def close(self) -> None:
        await self.range.close()

    async def end_offsets(self) -> dict[str, int]:
        """Where every partition ends now: any record sent after this lands at or after it."""
        return await self.range.end_offsets()

    async def published(self, tag: str, since: dict[str, int], limit_seconds: float) -> set[int]:
        """The item numbers of page ``tag`` found on the topic from ``since`` to the current end."""
        found: set[int] = set()
        wanted = tag.encode()

        def visit(record: RangeRecord) -> None:
            headers = dict(record.headers or ())
            if headers.get(PAGE_HEADER) == wanted and ITEM_HEADER in headers:
                found.add(int(headers[ITEM_HEADER]))

        await self.range.scan(since, visit, limit_seconds=limit_seconds, what=f"page {tag}")
        return found


class Poller:
    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        broker: KafkaBroker,
        topics: Topics,
        limiters: dict[str, dict[Api, RequestBudget]] | None = None,
        sighting_log: SightingLog | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.broker = broker
        self.topics = topics
        # Shared with the Flusher: one request budget per tenant for pushes and polls.
        self.limiters = limiters if limiters is not None else {}
        # ``transport``: how tenants are reached; None is the network (see TenantClients).
        self.tenants = TenantClients(
            settings, pool, self.limiters, timeout=settings.poll_request_timeout_seconds, transport=transport
        )
        self.log = sighting_log or SightingLog(
            settings.kafka_bootstrap, topics.indicator_events, "netskope-sink-poller"
        )
        # Iterators whose publish failed here: recovered only once queued sends have settled.
        self.not_before: dict[tuple[str, str], float] = {}
        # Per tenant and dataexport endpoint (alert type): its request budget.
        self.endpoint_budgets: dict[tuple[str, str], RequestBudget] = {}

    async def run_forever(self) -> None:
        try:
            while True:
                try:
                    await self.poll_once()
                except Exception:  # a failed round is retried; the checkpoints say where each iterator is
                    log.exception("poll round failed")
                # The round's pages sit in httpx's reference cycles: freed now rather than when the
                # consumers' batch thresholds (settle_heap) reach the generation they were promoted to.
                # (A full collection: rounds are seconds apart, and startup's objects are frozen.)
                gc.collect()
                await asyncio.sleep(self.settings.poll_interval_seconds)
        finally:
            await self.close()

    async def close(self) -> None:
        await self.tenants.close()
        with contextlib.suppress(Exception):
            await self.log.close()

    async def poll_once(self) -> int:
        """Poll every iterator once; return the number of alerts taken."""
        async with self.pool.acquire() as conn:
            rows = await repository.polled_configurations(conn)
            criterion = await repository.criterion(conn)
        targets = targets_from_rows(rows)
        if not targets:
            return 0
        gate = asyncio.Semaphore(self.settings.poll_concurrency)

        async def one(target: Target) -> int:
            async with gate:
                try:
                    return await self.poll_target(target, criterion)
                except Exception as exc:
                    POLL_ERRORS.labels(target.name, target.alert_type).inc()
                    if isinstance(exc, TenantError) and credentials_rejected(exc.status):
                        await self._reject(target, exc)
                    log.warning("polling %s alerts of %s failed: %s", target.alert_type, target.name, exc)
                    return 0

        return sum(await asyncio.gather(*(one(t) for t in targets)))

    async def poll_target(self, target: Target, criterion: Criterion) -> int:
        """Take what the iterator has, under its lock; return the number of alerts taken."""
        if time.monotonic() < self.not_before.get((target.name, target.alert_type), 0.0):
            return 0
        async with self.pool.acquire() as conn:
            if not await repository.try_lock_iterator(conn, target.lock_name):
                return 0  # another sink process polls it now
            try:
                # Read again under the lock: a round can run long, and a configuration deactivated (or
                # edited) since it began must not be polled once whoever changed it has seen the lock free.
                current = targets_from_rows(await repository.polled_configuration(conn, target.name))
                fresh = next((t for t in current if t.alert_type == target.alert_type), None)
                if fresh is None or not await repository.is_due(conn, fresh.name, fresh.alert_type):
                    return 0
                return await self._drain(conn, self._client(fresh), fresh, criterion)
            finally:
                await repository.unlock_iterator(conn, target.lock_name)

    async def _drain(self, conn: Connection, client: TenantClient, target: Target, criterion: Criterion) -> int:
        cp = await self._checkpoint(conn, target)
        taken = 0
        page: Page | None = None  # the tenant's last answer
        if cp.pending:
            page = await self._call(client, target, "resend")
            if page.digest == cp.pending_digest:
                taken += await self._recover(conn, target, cp, page, criterion)
            else:
                POLL_PAGES.labels(target.name, target.alert_type, "lost").inc()
                log.error(
                    "iterator %s of %s no longer answers its pending page: its unpublished sightings are lost",
                    cp.index_name,
                    target.name,
                )
                await repository.clear_pending(conn, target.name, target.alert_type)
                cp.pending = False
                taken += await self._take_if_new(conn, target, cp, page, criterion)
        elif not cp.started:
            if cp.start_epoch is None:
                # Recorded first, so a restart seeds the iterator with the same epoch.
                cp.start_epoch = initial_epoch(datetime.now(UTC), target.initial_range_days)
                await repository.set_start_epoch(conn, target.name, target.alert_type, cp.start_epoch)
            page = await self._call(client, target, str(cp.start_epoch))
            taken += await self._take(conn, target, cp, page, criterion)
        elif cp.next_sent:
            # A `next` whose page was never taken: the tenant's last answer may be that page.
            page = await self._call(client, target, "resend")
            taken += await self._take_if_new(conn, target, cp, page, criterion)
        failures = 0
        for _ in range(self.settings.poll_max_pages):
            if page is not None and (page.wait_time > 0 or not page.alerts):
                break  # caught up, or the tenant asks for a pause
            try:
                page = await self._next(conn, client, target, cp)
            except TenantUnavailable as exc:
                if exc.status == 429:
                    # Refused before anything happened (after the client's own retries): try next round.
                    await repository.paced(conn, target.name, target.alert_type, exc.retry_after or 0.0)
                    raise
                failures += 1
                if failures >= MAX_FAILED_NEXT:
                    raise
                log.info("next of %s failed (%s); asking resend", cp.index_name, exc)
                page = await self._call(client, target, "resend")
                taken += await self._take_if_new(conn, target, cp, page, criterion)
                continue
            failures = 0
            taken += await self._take(conn, target, cp, page, criterion)
        assert page is not None  # the loop's first turn asks `next` when nothing was asked before it
        # Nothing is left unanswered; the iterator is due again once the tenant's wait_time has passed.
        await repository.paced(
            conn, target.name, target.alert_type, float(min(page.wait_time, self.settings.poll_max_wait_seconds))
        )
        cp.next_sent = False
        POLL_BACKLOG.labels(target.name, target.alert_type).set(1 if page.wait_time == 0 and page.alerts else 0)
        POLL_LAST_SUCCESS.labels(target.name, target.alert_type).set(time.time())
        if page.timestamp_hwm:
            POLL_LAG.labels(target.name, target.alert_type).set(max(0.0, time.time() - page.timestamp_hwm))
        return taken

    async def _next(self, conn: Connection, client: TenantClient, target: Target, cp: Checkpoint) -> Page:
        """``next``, recorded as sent first: should its page never be taken (a lost answer, or this
        process dies), the iterator's next drain asks ``resend`` for it."""
        if not cp.next_sent:
            await repository.mark_next_sent(conn, target.name, target.alert_type)
            cp.next_sent = True
        return await self._call(client, target, "next")

    async def _call(self, client: TenantClient, target: Target, operation: str) -> Page:
        budget = self.endpoint_budgets.get((target.tenant, target.alert_type))
        if budget is None:
            budget = RequestBudget(
                self.pool,
                target.tenant,
                f"dataexport/{target.alert_type}",
                self.settings.poll_endpoint_requests,
                self.settings.poll_endpoint_period_seconds,
                # Wider than the API budgets' margin: the tenant counts arrivals, which a busy network
                # or host spreads; 4 per 1.25 s still moves 32,000 alerts a second.
                margin=0.25,
            )
            self.endpoint_budgets[(target.tenant, target.alert_type)] = budget
        return Page.from_answer(await client.export_alerts(target.alert_type, target.index, operation, budget))

    async def _checkpoint(self, conn: Connection, target: Target) -> Checkpoint:
        await repository.ensure_checkpoint(conn, target.name, target.alert_type, target.tenant, target.index)
        cp = await repository.load_checkpoint(conn, target.name, target.alert_type)
        if cp.tenant != target.tenant:
            if cp.pending:
                POLL_PAGES.labels(target.name, target.alert_type, "lost").inc()
            log.warning(
                "configuration %s moved to tenant %s: its %s iterator starts over",
                target.name,
                target.tenant,
                target.alert_type,
            )
            await repository.reset_checkpoint(conn, target.name, target.alert_type, target.tenant, target.index)
            cp = await repository.load_checkpoint(conn, target.name, target.alert_type)
        return cp

    def _build(self, target: Target, cp: Checkpoint, page: Page, criterion: Criterion, now: datetime) -> Any:
        tag = cp.page_tag()
        return polled_page(
            page.alerts,
            tenant=target.comments_tenant,
            alert_type=target.alert_type,
            config=target.config,
            criterion=criterion,
            now=now,
            event_ids=lambda i: uuid.uuid5(EVENT_NAMESPACE, f"{tag}/{i}"),
        )

    async def _take_if_new(
        self, conn: Connection, target: Target, cp: Checkpoint, page: Page, criterion: Criterion
    ) -> int:
        """Take a resent page unless it is the page taken last."""
        if page.digest == cp.page_digest or not page.alerts:
            if page.alerts:
                POLL_PAGES.labels(target.name, target.alert_type, "repeated").inc()
            return 0
        return await self._take(conn, target, cp, page, criterion)

    async def _take(self, conn: Connection, target: Target, cp: Checkpoint, page: Page, criterion: Criterion) -> int:
        """Publish a page's sightings, then commit the page; ``pending`` covers the gap between."""
        if not page.alerts:
            POLL_PAGES.labels(target.name, target.alert_type, "empty").inc()
            if not cp.started:  # the seeding call answered nothing: the iterator is started all the same
                await self._commit(conn, target, cp, page, 0, alerts=0)
            return 0
        now = datetime.now(UTC)
        built = self._build(target, cp, page, criterion, now)
        if built.sightings:
            offsets = await self.log.end_offsets()
            await repository.mark_pending(conn, target.name, target.alert_type, page.digest, offsets, now)
            cp.pending, cp.pending_digest, cp.pending_offsets, cp.pending_at = True, page.digest, offsets, now
            await self._publish(target, cp.page_tag(), list(enumerate(built.sightings)))
        await self._commit(conn, target, cp, page, len(built.sightings), alerts=len(page.alerts))
        self._count(target, built.sightings, built.invalid, len(page.alerts))
        POLL_PAGES.labels(target.name, target.alert_type, "taken").inc()
        return len(page.alerts)

    async def _recover(self, conn: Connection, target: Target, cp: Checkpoint, page: Page, criterion: Criterion) -> int:
        """Finish an interrupted page: publish the sightings the topic does not have, then commit."""
        assert cp.pending_offsets is not None
        assert cp.pending_at is not None
        built = self._build(target, cp, page, criterion, cp.pending_at)
        tag = cp.page_tag()
        found = await self.log.published(tag, cp.pending_offsets, self.settings.poll_recovery_timeout_seconds)
        missing = [(i, s) for i, s in enumerate(built.sightings) if i not in found]
        if missing:
            await self._publish(target, tag, missing)
        await self._commit(conn, target, cp, page, len(built.sightings), alerts=len(page.alerts))
        self._count(target, [s for _, s in missing], built.invalid, len(page.alerts))
        POLL_RECOVERED.labels(target.name, "found").inc(len(built.sightings) - len(missing))
        POLL_RECOVERED.labels(target.name, "published").inc(len(missing))
        POLL_PAGES.labels(target.name, target.alert_type, "recovered").inc()
        log.info(
            "recovered page %s of %s: %d sightings had landed, %d published now",
            tag,
            target.name,
            len(built.sightings) - len(missing),
            len(missing),
        )
        return len(page.alerts)

    async def _publish(self, target: Target, tag: str, items: list[tuple[int, IndicatorSighting]]) -> None:
        try:
            await publish_all(
                self.broker,
                self.topics.indicator_events,
                (
                    Outgoing(key=s.value.encode(), value=encode(s), headers={PAGE_HEADER: tag, ITEM_HEADER: str(i)})
                    for i, s in items
                ),
            )
        except Exception:
            self.not_before[(target.name, target.alert_type)] = (
                time.monotonic() + self.settings.poll_publish_settle_seconds
            )
            raise

    async def _commit(
        self, conn: Connection, target: Target, cp: Checkpoint, page: Page, indicators: int, *, alerts: int
    ) -> None:
        pages = 1 if page.alerts else 0
        await repository.commit_page(
            conn,
            target.name,
            target.alert_type,
            digest=page.digest,
            pages=pages,
            alerts=alerts,
            indicators=indicators,
            timestamp_hwm=page.timestamp_hwm,
        )
        cp.started, cp.page_digest, cp.pages = True, page.digest, cp.pages + pages
        cp.alerts += alerts
        cp.indicators += indicators
        cp.pending, cp.pending_digest, cp.pending_offsets, cp.pending_at = False, None, None, None
        if page.timestamp_hwm is not None:
            cp.last_timestamp = max(cp.last_timestamp or 0, page.timestamp_hwm)

    def _count(self, target: Target, published: list[IndicatorSighting], invalid: dict[str, int], alerts: int) -> None:
        POLL_ALERTS.labels(target.tenant, target.alert_type).inc(alerts)
        for kind, n in Counter(s.type.value for s in published).items():
            POLL_INDICATORS.labels(target.name, kind).inc(n)
        for kind, n in invalid.items():
            POLL_INVALID.labels(target.name, kind).inc(n)

    async def _reject(self, target: Target, exc: TenantError) -> None:
        """A 401/403 from a dataexport endpoint rejects the tenant's credentials as a push's does: no
        poll (and no push) goes to the tenant until they change (repository.polled_configurations)."""
        async with self.pool.acquire() as conn:
            await tenant_repository.reject_credentials(conn, target.tenant, f"HTTP {exc.status}: {exc.message}")
        CREDENTIALS_REJECTED.labels(target.tenant).set(1)

    def _client(self, target: Target) -> TenantClient:
        return self.tenants.get(target.connection)
