"""The ager's sweep loop.

It owns no table: it reads due indicators from the read model and publishes expire commands on the
indicator topic, keyed by the indicator's value. Delivery: a command is published at least once (a
crash between publish and the next sweep republishes it); the rule-engine applies it only while the
indicator is still due, so duplicates change nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from faststream.kafka import KafkaBroker

from ager import repository
from ager.domain import Dispatched
from ager.metrics import DELETES, DUE_LAG, EXPIRE_COMMANDS, LAST_SWEEP
from ager.settings import Settings
from cte_common.db import Connection, Pool
from cte_common.events import IndicatorDelete, IndicatorExpire, encode
from cte_common.kafka import Outgoing, publish_all
from cte_common.topics import Topics

log = logging.getLogger(__name__)

DELETE_CHECK_SECONDS = 5.0
# The key under which delete commands are remembered by Dispatched (they have no due time).
_NEVER = datetime.min.replace(tzinfo=UTC)


class Sweeper:
    def __init__(self, settings: Settings, pool: Pool, broker: KafkaBroker, topics: Topics) -> None:
        self.settings = settings
        self.pool = pool
        self.broker = broker
        self.topics = topics
        self.dispatched = Dispatched(settings.redispatch_after_seconds)
        self.next_delete_check = 0.0
        self.delete_cursor = ""

    async def sweep_once(self, now: datetime | None = None) -> int:
        """Publish expire commands for what is due at ``now``; return how many were published.

        ``now`` is the present unless given: a test sweeps as of a later time instead of waiting for it.
        """
        now = now or datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await repository.try_sweep_lock(conn):
                return 0
            due = await repository.find_due(conn, now, self.settings.sweep_batch_size)
            todo = self.dispatched.select(due, time.monotonic())
            if todo:
                # Published while holding the lock, so two replicas never publish the same sweep.
                await publish_all(
                    self.broker,
                    self.topics.indicator_events,
                    (Outgoing(key=v.encode(), value=encode(IndicatorExpire(value=v, due_at=at))) for v, at in todo),
                )
                self.dispatched.mark(todo, time.monotonic())
                EXPIRE_COMMANDS.inc(len(todo))
                for _, at in todo:
                    DUE_LAG.observe(max((now - at).total_seconds(), 0.0))
            # Deletion is housekeeping, not a deadline: every few seconds is plenty.
            if time.monotonic() >= self.next_delete_check and await repository.delete_inactive_enabled(conn):
                full = await self._delete_inactive(conn)
                # A full round means more are waiting: go on at the next sweep.
                self.next_delete_check = time.monotonic() + (0 if full else DELETE_CHECK_SECONDS)
        LAST_SWEEP.set(time.time())
        return len(todo)

    async def _delete_inactive(self, conn: Connection) -> bool:
        """One round of deletions; True when the round was full. The cursor lives in memory: a restart
        starts over from the first value, which only repeats idempotent deletes."""
        found = await repository.find_deletable(conn, self.delete_cursor, self.settings.sweep_batch_size)
        self.delete_cursor = found[-1] if len(found) == self.settings.sweep_batch_size else ""
        gone = [(v, _NEVER) for v in found]
        todo = self.dispatched.select(gone, time.monotonic())
        if todo:
            await publish_all(
                self.broker,
                self.topics.indicator_events,
                (Outgoing(key=v.encode(), value=encode(IndicatorDelete(value=v))) for v, _ in todo),
            )
            self.dispatched.mark(todo, time.monotonic())
            DELETES.inc(len(todo))
        return len(found) == self.settings.sweep_batch_size

    async def run_forever(self) -> None:
        while True:
            try:
                published = await self.sweep_once()
            except Exception:  # a sweep must never stop the loop: the next one retries
                log.exception("sweep failed; retrying")
                published = 0
            # A full batch means more is due: go again at once.
            if published < self.settings.sweep_batch_size:
                await asyncio.sleep(self.settings.sweep_interval_seconds)
