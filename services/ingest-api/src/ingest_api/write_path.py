"""The write path of indicators: events published to Kafka, and waiting for the read model to show them.

Writes to indicators are events: a POST answers 2xx only after Kafka acknowledged every event
(idempotent producer, acks=all), so what was accepted is durable. Without every acknowledgement within
``CTE_PUBLISH_TIMEOUT_SECONDS`` it answers 503 (``AppState.publish``): not accepted, though events of it
may still land later. The read model catches up within
milliseconds; ``wait=true`` answers once it shows the write.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import HTTPException, status

from cte_common.events import AnyIndicatorEvent, encode
from cte_common.kafka import Outgoing
from ingest_api.indicators.repository import positions_reached
from ingest_api.shared import AppState


async def publish_indicator_events(state: AppState, events: list[AnyIndicatorEvent]) -> list[tuple[str, int, int]]:
    """Publish indicator events keyed by value; the (topic, partition, offset) of each, for ?wait."""
    acks = await state.publish(
        state.topics.indicator_events, (Outgoing(key=e.value.encode(), value=encode(e)) for e in events)
    )
    return [(a.topic, a.partition, a.offset) for a in acks]


async def wait_for_read_model(state: AppState, marks: list[tuple[str, int, int]]) -> None:
    deadline = time.monotonic() + state.settings.wait_timeout_seconds
    delay = 0.005
    while True:
        async with state.pool.acquire() as conn:
            if await positions_reached(conn, state.settings.read_model_consumer, marks):
                return
        if time.monotonic() >= deadline:
            # Accepted and durable, but not yet visible: say so rather than pretend.
            raise HTTPException(
                status.HTTP_504_GATEWAY_TIMEOUT,
                "Accepted, but the read model did not show the write within "
                f"{state.settings.wait_timeout_seconds:g} s; it will appear when the rule-engine catches up.",
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)
