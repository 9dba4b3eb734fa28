"""Entry point of the ager: ``cte-ager``."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from ager.handlers import Sweeper
from ager.settings import Settings
from cte_common.db import Pool
from cte_common.service import run_consumer_service
from cte_common.topics import Topics


def run() -> None:
    settings = Settings()

    async def setup(broker: KafkaBroker, pool: Pool, topics: Topics) -> None:
        # The ager only publishes; declaring the publisher documents it in the AsyncAPI description.
        broker.publisher(
            topics.indicator_events,
            title="expire and delete commands",
            description="IndicatorExpire events for due indicators; IndicatorDelete for inactive ones that left "
            "every list (deleteInactiveIndicators).",
        )

    async def background(broker: KafkaBroker, pool: Pool, topics: Topics) -> None:
        await Sweeper(settings, pool, broker, topics).run_forever()

    run_consumer_service(
        settings, service="ager", metrics_port=settings.ager_metrics_port, setup=setup, background=background
    )


if __name__ == "__main__":
    run()
