"""Entry point of the rule-engine: ``cte-rule-engine``."""

from __future__ import annotations

import asyncio

from faststream.kafka import KafkaBroker

from cte_common.consumer import register_batch_consumer
from cte_common.db import Pool
from cte_common.service import run_consumer_service
from cte_common.topics import Topics
from rule_engine.handlers import (
    CONFIG_CONSUMER,
    CONSUMER,
    ConfigChangesHandler,
    Decider,
    IndicatorEventsHandler,
    Reevaluator,
)
from rule_engine.settings import Settings


def run() -> None:
    settings = Settings()
    # Set by the configuration consumer when it requested a re-evaluation: starts it at once.
    wake = asyncio.Event()

    async def setup(broker: KafkaBroker, pool: Pool, topics: Topics) -> None:
        handler = IndicatorEventsHandler(pool, broker, topics, Decider(pool))
        register_batch_consumer(
            broker,
            topic=topics.indicator_events,
            group_id=topics.group(settings.consumer_group),
            consumer=CONSUMER,
            handle=handler.handle,
            max_records=settings.batch_max_records,
            batch_timeout_ms=settings.batch_timeout_ms,
        )
        register_batch_consumer(
            broker,
            topic=topics.config_changes,
            group_id=topics.group(f"{settings.consumer_group}-config"),
            consumer=CONFIG_CONSUMER,
            handle=ConfigChangesHandler(pool, broker, topics, wake).handle,
            max_records=500,
            batch_timeout_ms=100,
        )
        broker.publisher(
            topics.share_intents,
            title="share intents",
            description='ShareIntent events in envelopes ({"envelope": 2, "events": [...]}): a batch\'s intents '
            "of one list share a record (more than one past 256 KiB), in order, keyed by the list; published "
            "before the deciding transaction commits.",
        )

    async def background(broker: KafkaBroker, pool: Pool, topics: Topics) -> None:
        await Reevaluator(
            pool,
            broker,
            topics,
            wake,
            settings.reevaluation_batch_size,
            settings.republish_intents_after_seconds,
        ).run_forever()

    run_consumer_service(
        settings,
        service="rule-engine",
        metrics_port=settings.rule_engine_metrics_port,
        setup=setup,
        background=background,
    )


if __name__ == "__main__":
    run()
