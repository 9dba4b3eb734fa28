"""Start-up that waits for Kafka and PostgreSQL: a service started while the broker or the database is
restarting, or while its connections are being cut, keeps trying instead of exiting, and gives up only
after ``CTE_STARTUP_TIMEOUT_SECONDS``, leaving the rest to its supervisor."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_random_exponential

__all__ = [
    "UNREACHABLE",
    "until_reachable",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Refused, reset or timed-out connections, a broker without a controller yet, a database in recovery.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    KafkaError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)


async def until_reachable(
    what: str,
    connect: Callable[[], Awaitable[T]],
    *,
    give_up_after: float,
    undo: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """``connect()`` until it succeeds; ``undo()`` after each failure releases what it half opened."""

    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("%s unreachable at start-up (%s); trying again", what, error)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(UNREACHABLE),
        wait=wait_random_exponential(multiplier=0.5, max=10),
        stop=stop_after_delay(give_up_after),
        before_sleep=waiting,
        reraise=True,
    ):
        with attempt:
            try:
                return await connect()
            except BaseException:
                if undo is not None:
                    await undo()
                raise
    raise AssertionError("unreachable: tenacity either returns or reraises")
