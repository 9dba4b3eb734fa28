"""The netskope-sink's consumer of share intents.

Share intents (topic ``<prefix>.share-intents.v1``, keyed by list), batch consumer, group
``netskope-sink``: at-least-once delivery with exactly-once effects (positions recorded with the
membership writes in one transaction; Kafka offsets committed after it). Replays are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from cte_common.consumer import Record, apply_exactly_once, decode_batch, publish_dead_letters
from cte_common.db import Connection, Pool
from cte_common.events import SHARE_INTENT_ADAPTER
from cte_common.metrics import CONSUMER_BATCH_SIZE, CONSUMER_RECORDS
from cte_common.topics import Topics
from netskope_sink import repository
from netskope_sink.domain import latest_intents
from netskope_sink.metrics import INTENTS

CONSUMER = "netskope-sink.share-intents"


class ShareIntentsHandler:
    def __init__(self, pool: Pool, broker: KafkaBroker, topics: Topics) -> None:
        self.pool = pool
        self.broker = broker
        self.topics = topics

    async def handle(self, records: Sequence[Record]) -> None:
        async def apply(conn: Connection, fresh: list[Record]) -> None:
            decoded, rejected = decode_batch(fresh, SHARE_INTENT_ADAPTER)
            if rejected:
                await publish_dead_letters(self.broker, self.topics.dead_letter, CONSUMER, rejected)
                CONSUMER_RECORDS.labels(CONSUMER, "dead_letter").inc(len(rejected))
            intents = latest_intents([d.event for d in decoded])
            await repository.apply_intents(conn, intents)
            for i in intents:
                INTENTS.labels("add" if i.add else "remove").inc()
            CONSUMER_RECORDS.labels(CONSUMER, "applied").inc(len(decoded))

        fresh = await apply_exactly_once(self.pool, CONSUMER, records, apply)
        CONSUMER_RECORDS.labels(CONSUMER, "duplicate").inc(len(records) - len(fresh))
        CONSUMER_BATCH_SIZE.labels(CONSUMER).observe(len(records))
