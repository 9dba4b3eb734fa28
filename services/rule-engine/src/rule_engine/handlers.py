"""The rule-engine's consumers.

Indicator events (topic ``<prefix>.indicator-events.v1``), batch consumer, group ``rule-engine``:
- at-least-once delivery, exactly-once effects: positions are recorded with the writes in one
  PostgreSQL transaction (cte_common.consumer); offsets are committed to Kafka after that commit.
- idempotent: a replayed record is below the recorded position and is skipped.
- undecodable records go to the dead-letter topic with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from cte_common.consumer import Record, apply_exactly_once, decode_batch, publish_dead_letters
from cte_common.db import Connection, Pool
from cte_common.events import INDICATOR_EVENT_ADAPTER
from cte_common.metrics import CONSUMER_BATCH_SECONDS, CONSUMER_BATCH_SIZE, CONSUMER_RECORDS
from cte_common.topics import Topics
from rule_engine import repository
from rule_engine.domain import apply_events
from rule_engine.metrics import INDICATORS_WRITTEN, MERGES, READ_MODEL_WRITE_SECONDS

log = logging.getLogger(__name__)

CONSUMER = "rule-engine.indicators"


class IndicatorEventsHandler:
    def __init__(self, pool: Pool, broker: KafkaBroker, topics: Topics) -> None:
        self.pool = pool
        self.broker = broker
        self.topics = topics

    async def handle(self, records: Sequence[Record]) -> None:
        started = time.perf_counter()

        async def apply(conn: Connection, fresh: list[Record]) -> None:
            decoded, rejected = decode_batch(fresh, INDICATOR_EVENT_ADAPTER)
            if rejected:
                await publish_dead_letters(self.broker, self.topics.dead_letter, CONSUMER, rejected)
                CONSUMER_RECORDS.labels(CONSUMER, "dead_letter").inc(len(rejected))
            events = [d.event for d in decoded]
            write_started = time.perf_counter()
            states = await repository.load_states(conn, sorted({e.value for e in events}))
            changed = apply_events(states, events)
            await repository.save_changes(conn, changed)
            READ_MODEL_WRITE_SECONDS.observe(time.perf_counter() - write_started)
            INDICATORS_WRITTEN.inc(len(changed))
            MERGES.inc(sum(1 for v in changed if v in states))
            CONSUMER_RECORDS.labels(CONSUMER, "applied").inc(len(decoded))

        fresh = await apply_exactly_once(self.pool, CONSUMER, records, apply)
        CONSUMER_RECORDS.labels(CONSUMER, "duplicate").inc(len(records) - len(fresh))
        CONSUMER_BATCH_SIZE.labels(CONSUMER).observe(len(records))
        CONSUMER_BATCH_SECONDS.labels(CONSUMER).observe(time.perf_counter() - started)
