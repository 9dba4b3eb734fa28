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
from ager.metrics import DUE_LAG, EXPIRE_COMMANDS, LAST_SWEEP
from ager.settings import Settings
from cte_common.db import Pool
from cte_common.events import IndicatorExpire, encode
from cte_common.kafka import Outgoing, publish_all
from cte_common.topics import Topics

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, settings: Settings, pool: Pool, broker: KafkaBroker, topics: Topics) -> None:
        self.settings = settings
        self.pool = pool
        self.broker = broker
        self.topics = topics
        self.dispatched = Dispatched(settings.redispatch_after_seconds)

    async def sweep_once(self) -> int:
        """Publish expire commands for what is due now; return how many were published."""
        now = datetime.now(UTC)
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
        LAST_SWEEP.set(time.time())
        return len(todo)

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
