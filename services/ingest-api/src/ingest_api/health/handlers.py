"""Liveness and readiness, for an orchestrator; outside the OpenAPI document, without a token.

``/healthz`` (liveness): the process serves requests; it does not look at Kafka or PostgreSQL, so an
outage of theirs never gets the API restarted. ``/readyz`` (readiness): both answer now, each within
``CTE_READY_TIMEOUT_SECONDS``; a 503 names the one that does not, and the API is better left out of
rotation (its answers would be 503s) until it is 200 again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from cte_common.kafka import check_reachable
from ingest_api.health.repository import ping
from ingest_api.shared import OUTAGES, RETRY_AFTER_SECONDS, AppState, State, Unavailable

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    problems = {
        "PostgreSQL": await _problem(state, lambda: _ping_database(state), OUTAGES["PostgreSQL"]),
        "Kafka": await _problem(state, lambda: check_reachable(state.broker), (KafkaError, *OUTAGES["Kafka"])),
    }
    checks = {dependency: problem or "ok" for dependency, problem in problems.items()}
    missing = [str(Unavailable(dependency, problem)) for dependency, problem in problems.items() if problem]
    if missing:
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": "; ".join(missing), "checks": checks},
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return JSONResponse({"status": "ready", "checks": checks})


async def _ping_database(state: AppState) -> None:
    async with state.pool.acquire() as conn:
        await ping(conn)


async def _problem(
    state: AppState, check: Callable[[], Awaitable[Any]], outage: tuple[type[Exception], ...]
) -> str | None:
    """None when ``check`` succeeds in time; else what went wrong."""
    limit = state.settings.ready_timeout_seconds
    try:
        async with asyncio.timeout(limit):
            await check()
    except TimeoutError:
        return f"no answer within {limit:g} s"
    except outage as exc:
        return repr(exc)
    return None
