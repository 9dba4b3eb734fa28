"""Running a consumer service: logging, metrics endpoint, pool and broker lifecycle, uvloop."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import uvloop
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY

from cte_common.db import BATCH_WRITER_SETTINGS, Pool, create_pool
from cte_common.kafka import make_broker
from cte_common.logs import configure_logging
from cte_common.metrics import serve_metrics
from cte_common.settings import CommonSettings
from cte_common.topics import Topics

__all__ = [
    "Setup",
    "build_broker",
    "run_consumer_service",
    "settle_heap",
]

# For a service that works in batches of small objects (the consumers): young objects collected every
# 50,000 net allocations instead of 700. A batch of thousands of sightings, states or intents lives
# until the batch ends, so at 700 each of its objects is walked by several young collections and
# promoted, and the older generations' collections walk it again (bench/notes.md, "the collector": a
# third of the rule-engine's Python work per batch). Reference counting frees memory as before; only
# reference cycles wait longer, so a service whose large buffers sit in cycles collects them itself
# (the sink after each round of pushes or polls: an httpx response and its stream refer to each other)
# or keeps the interpreter's thresholds (the ingest-api, whose request bodies sit in its HTTP stack's
# cycles).
_BATCH_THRESHOLDS = (50_000, 10, 10)


def settle_heap(*, batches: bool = False) -> None:
    """Call once startup is done: what exists now (modules, models, the app) lives as long as the
    process, so it leaves the collector's generations and full collections no longer walk it; with
    ``batches``, the collector then runs at thresholds sized for batches of small objects."""
    gc.collect()
    gc.freeze()
    if batches:
        gc.set_threshold(*_BATCH_THRESHOLDS)


Setup = Callable[[KafkaBroker, Pool, Topics], Awaitable[None]]


def build_broker(settings: CommonSettings, service: str) -> KafkaBroker:
    return make_broker(
        settings,
        client_id=service,
        middlewares=[KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service)],
    )


def run_consumer_service(
    settings: CommonSettings,
    *,
    service: str,
    metrics_port: int,
    setup: Setup,
    background: Callable[[KafkaBroker, Pool, Topics], Coroutine[Any, Any, None]] | None = None,
    server_settings: Mapping[str, str] = BATCH_WRITER_SETTINGS,
) -> None:
    """Start a FastStream app whose subscribers ``setup`` registers; serve /metrics; run until signalled.
    Once started, :func:`settle_heap` with the batch thresholds. ``server_settings``: PostgreSQL's
    settings on each connection of the service's pool."""
    configure_logging(settings.log_level, service)
    serve_metrics(metrics_port, settings.metrics_host)
    topics = Topics(settings.topic_prefix)

    async def main() -> None:
        broker = build_broker(settings, service)
        pool = await create_pool(settings, server_settings=dict(server_settings))
        await setup(broker, pool, topics)
        tasks: list[asyncio.Task[None]] = []

        async def start_background() -> None:
            settle_heap(batches=True)
            if background is not None:
                tasks.append(asyncio.create_task(background(broker, pool, topics)))

        async def stop_background() -> None:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pool.close()

        app = FastStream(broker, after_startup=[start_background], on_shutdown=[stop_background])
        await app.run()

    uvloop.run(main())
