"""Entry point of the netskope-sink: ``cte-netskope-sink``."""

from __future__ import annotations

import asyncio

from faststream.kafka import KafkaBroker

from cte_common.consumer import register_batch_consumer
from cte_common.db import Pool
from cte_common.service import run_consumer_service
from cte_common.topics import Topics
from netskope_sink.alerts.handlers import Poller
from netskope_sink.lists.handlers import CONSUMER, Flusher, ShareIntentsHandler
from netskope_sink.settings import Settings


def run() -> None:
    settings = Settings()
    # Set when intents arrived: the flusher pushes at once instead of at its next tick.
    wake = asyncio.Event()

    async def setup(broker: KafkaBroker, pool: Pool, topics: Topics) -> None:
        handler = ShareIntentsHandler(pool, broker, topics, wake)
        register_batch_consumer(
            broker,
            topic=topics.share_intents,
            group_id=topics.group(settings.consumer_group),
            consumer=CONSUMER,
            handle=handler.handle,
            max_records=settings.batch_max_records,
            batch_timeout_ms=settings.batch_timeout_ms,
            max_partition_fetch_bytes=settings.batch_partition_fetch_bytes,
        )

    async def background(broker: KafkaBroker, pool: Pool, topics: Topics) -> None:
        flusher = Flusher(settings, pool, broker, topics, wake)
        # Alert polling runs next to the flusher, within the same per-tenant request budgets.
        poller = Poller(settings, pool, broker, topics, limiters=flusher.limiters)
        await asyncio.gather(flusher.run_forever(), poller.run_forever())

    run_consumer_service(
        settings,
        service="netskope-sink",
        metrics_port=settings.sink_metrics_port,
        setup=setup,
        background=background,
        server_settings=settings.pool_settings(),
    )


if __name__ == "__main__":
    run()
