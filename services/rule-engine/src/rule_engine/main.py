"""Entry point of the rule-engine: ``cte-rule-engine``."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from cte_common.consumer import register_batch_consumer
from cte_common.db import Pool
from cte_common.service import run_consumer_service
from cte_common.topics import Topics
from rule_engine.handlers import CONSUMER, IndicatorEventsHandler
from rule_engine.settings import Settings


def run() -> None:
    settings = Settings()

    async def setup(broker: KafkaBroker, pool: Pool, topics: Topics) -> None:
        handler = IndicatorEventsHandler(pool, broker, topics)
        register_batch_consumer(
            broker,
            topic=topics.indicator_events,
            group_id=settings.consumer_group,
            consumer=CONSUMER,
            handle=handler.handle,
            max_records=settings.batch_max_records,
            batch_timeout_ms=settings.batch_timeout_ms,
        )

    run_consumer_service(settings, service="rule-engine", metrics_port=settings.rule_engine_metrics_port, setup=setup)


if __name__ == "__main__":
    run()
