"""PostgreSQL plumbing: the connection pool, with codecs every service needs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from cte_common.settings import CommonSettings
from cte_common.startup import until_reachable

__all__ = [
    "BATCH_WRITER_SETTINGS",
    "Connection",
    "Pool",
    "create_pool",
]

# What repositories take: a plain connection or one borrowed from a pool. (The generic form exists
# only in the type stubs, not at run time.)
if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
    Pool: TypeAlias = asyncpg.Pool[Any]
else:
    Connection = asyncpg.Connection | PoolConnectionProxy
    Pool = asyncpg.Pool


# timestamptz on the wire: microseconds since 2000-01-01 UTC. asyncpg's own encoder compares each value
# with its two infinities and converts it to UTC before subtracting the epoch, about 1 µs a value; the
# rule-engine's COPYs send four or five times per indicator, a tenth of its CPU. Through the tuple
# format asyncpg packs the integer in C, and an aware datetime needs one subtraction (about 0.4 µs).
# Every input is taken as asyncpg takes it (a naive time or a date is local time; datetime.max and
# datetime.min, naive or as UTC, are the infinities), and values read back are the ones asyncpg returns.
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INFINITY = 0x7FFFFFFFFFFFFFFF
_NEGATIVE_INFINITY = -0x8000000000000000
_MAX = (datetime.max.replace(tzinfo=UTC) - _PG_EPOCH) // _MICROSECOND
_MIN = (datetime.min.replace(tzinfo=UTC) - _PG_EPOCH) // _MICROSECOND


def _encode_timestamptz(value: datetime | date) -> tuple[int]:
    if type(value) is not datetime or value.tzinfo is None:
        if not isinstance(value, date):
            raise TypeError(f"expected a datetime.date or datetime.datetime instance, got {type(value).__name__!r}")
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day).astimezone()
        elif value == datetime.max:  # (a naive value only: an aware one never equals a naive one)
            return (_INFINITY,)
        elif value == datetime.min:
            return (_NEGATIVE_INFINITY,)
        elif value.tzinfo is None:
            value = value.astimezone(UTC)
    microseconds = (value - _PG_EPOCH) // _MICROSECOND
    if microseconds == _MAX:
        return (_INFINITY,)
    if microseconds == _MIN:
        return (_NEGATIVE_INFINITY,)
    return (microseconds,)


def _decode_timestamptz(value: tuple[int]) -> datetime:
    microseconds = value[0]
    if microseconds == _INFINITY:
        return datetime.max
    if microseconds == _NEGATIVE_INFINITY:
        return datetime.min
    return _PG_EPOCH + timedelta(microseconds=microseconds)


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec(
        "timestamptz", encoder=_encode_timestamptz, decoder=_decode_timestamptz, schema="pg_catalog", format="tuple"
    )


async def _connect(dsn: str | None = None, **options: Any) -> asyncpg.Connection[Any]:
    """asyncpg's connect, whose refused, reset or timed-out connection attempts (plain OSError and
    TimeoutError) are raised as asyncpg's connection failure: a caller can tell the database being
    unreachable from any other OSError or timeout."""
    try:
        connection: asyncpg.Connection[Any] = await asyncpg.connect(dsn, **options)
    except (OSError, TimeoutError) as exc:
        raise asyncpg.ConnectionFailureError(f"cannot connect to PostgreSQL: {exc!r}") from exc
    return connection


# The consumers' statements are batch writes over unnest() and COPY, whose row counts the planner
# guesses: now and then a plan's estimated cost passes jit_above_cost, and one execution spends
# 100-200 ms of the server's CPU compiling expressions it runs for a few thousand rows (946 ms in the
# sink's intents of 300,000 indicators: bench/notes.md). The API's reads keep the server's setting.
BATCH_WRITER_SETTINGS: dict[str, str] = {"jit": "off"}


async def create_pool(
    settings: CommonSettings, *, min_size: int = 1, server_settings: dict[str, str] | None = None
) -> Pool:
    """The pool of a service; ``server_settings`` set on each of its connections (BATCH_WRITER_SETTINGS
    for the consumers)."""

    async def connect() -> Pool:
        pool: Pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=min_size,
            max_size=settings.db_pool_max,
            init=_init_connection,
            connect=_connect,
            server_settings=server_settings,
            # Bounds a connection attempt, so a pool waiting for a new connection to a database that
            # does not answer gives up (as a connection failure) instead of holding its caller.
            timeout=settings.db_connect_timeout_seconds,
            command_timeout=60,
        )
        return pool

    return await until_reachable("PostgreSQL", connect, give_up_after=settings.startup_timeout_seconds)
