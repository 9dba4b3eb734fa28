"""The write path of indicators: events published to Kafka, and waiting for the read model to show them.

Writes to indicators are events, published in envelopes (``cte_common.envelope``: the events of a
request that hash to one partition share a record, in order): a POST answers 2xx only after Kafka
acknowledged every record (idempotent producer, acks=all), so what was accepted is durable. Without
every acknowledgement within ``CTE_PUBLISH_TIMEOUT_SECONDS`` it answers 503 (``AppState.acknowledged``):
not accepted, though events of it may still land later. The read model catches up within milliseconds;
by default a write answers once it shows the write (:func:`visible`), ``wait=false`` at once.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import HTTPException, Response, status

from cte_common.envelope import publish_in_envelopes
from cte_common.events import AnyIndicatorEvent, SightingRecord, encode, encode_sighting
from ingest_api.indicators.repository import positions_reached
from ingest_api.shared import AppState


async def publish_indicator_events(state: AppState, events: list[AnyIndicatorEvent]) -> list[tuple[str, int, int]]:
    """Publish indicator events; the (topic, partition, offset) of each record, for ?wait."""
    return await _publish(state, [(e.value, encode(e)) for e in events])


async def publish_sightings(state: AppState, sightings: list[SightingRecord]) -> list[tuple[str, int, int]]:
    """Publish a POST's sightings; the (topic, partition, offset) of each record, for ?wait."""
    return await _publish(state, [(s.value, encode_sighting(s)) for s in sightings])


async def _publish(state: AppState, events: list[tuple[str, bytes]]) -> list[tuple[str, int, int]]:
    acks = await state.acknowledged(publish_in_envelopes(state.broker, state.topics.indicator_events, events))
    return [(a.topic, a.partition, a.offset) for a in acks]


async def read_model_shows(state: AppState, marks: list[tuple[str, int, int]]) -> bool:
    """Whether the read model shows the write (the rule-engine's positions passed every mark) within
    ``CTE_WAIT_TIMEOUT_SECONDS``."""
    deadline = time.monotonic() + state.settings.wait_timeout_seconds
    delay = 0.005
    while True:
        async with state.pool.acquire() as conn:
            if await positions_reached(conn, state.settings.read_model_consumer, marks):
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


async def wait_for_read_model(state: AppState, marks: list[tuple[str, int, int]]) -> None:
    """``?wait=true``: the read model shows the write, or a 504."""
    if not await read_model_shows(state, marks):
        # Accepted and durable, but not yet visible: say so rather than pretend.
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            "Accepted, but the read model did not show the write within "
            f"{state.settings.wait_timeout_seconds:g} s; it will appear when the rule-engine catches up.",
        )


async def visible(state: AppState, marks: list[tuple[str, int, int]], wait: bool | None, response: Response) -> bool:
    """Whether to answer with the read model, by the write's ``wait``: None (the default, the
    reference's semantics) waits for the read model and, past ``CTE_WAIT_TIMEOUT_SECONDS``, sets the
    answer to 202 (accepted, durable, not yet visible) and returns False; True waits or answers 504;
    False (the fastest acknowledgement) does not wait."""
    if wait is False:
        return False
    if wait is True:
        await wait_for_read_model(state, marks)
        return True
    if await read_model_shows(state, marks):
        return True
    response.status_code = status.HTTP_202_ACCEPTED
    return False
