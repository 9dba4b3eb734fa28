"""Routes of ``/api/cte/pipeline``: each consumer's lag, for the console's Home page and for scripts."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from cte_common.kafka import topic_offsets
from ingest_api.pipeline import repository
from ingest_api.pipeline.domain import consumer_lags
from ingest_api.pipeline.schemas import PipelineOut
from ingest_api.shared import WRITE_ERRORS, Reader, State

router = APIRouter(prefix="/cte/pipeline", tags=["Pipeline"], responses=WRITE_ERRORS)


@router.get("", summary="Each consumer's lag: records on its topics it has not applied yet")
async def pipeline(state: State, _: Reader) -> PipelineOut:
    """Positions are the ones each consumer records with its writes (exactly what it has applied); the
    ends are read from Kafka now. A consumer that has never applied a record of a topic is not listed."""
    async with state.pool.acquire() as conn:
        positions = await repository.consumer_positions(conn)
    topics = sorted({row["topic"] for row in positions})
    offsets = await topic_offsets(state.settings.kafka_bootstrap, topics, "ingest-api-pipeline") if topics else {}
    return PipelineOut(consumers=consumer_lags(positions, offsets), measuredAt=datetime.now(UTC))
