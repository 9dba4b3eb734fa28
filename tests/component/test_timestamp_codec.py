"""timestamptz through the services' pools (cte_common.db encodes it as an integer of microseconds)
against asyncpg's own codec: every value written as asyncpg writes it, as a parameter, in an array and
through COPY, and read back as asyncpg reads it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from cte_common.db import Pool, create_pool
from cte_common.settings import CommonSettings
from tests.conftest import Env


class _Moment(datetime):
    """A datetime of another library's kind (asyncpg takes any subclass)."""


VALUES: list[datetime | date] = [
    datetime(2026, 12, 4, 16, 5, 7, 123456, tzinfo=UTC),
    datetime(2026, 12, 4, 21, 35, 7, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 12, 4, 6, 5, 7, 999999, tzinfo=timezone(timedelta(hours=-10))),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the wire's epoch
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # infinity, as asyncpg writes it
    datetime(1, 1, 1, tzinfo=UTC),  # -infinity
    datetime(2026, 7, 1, 12, 0, 0, 500),  # naive: local time, as asyncpg takes it
    date(2026, 12, 4),  # local midnight
    _Moment(2026, 12, 4, 16, 5, 7, 250000, tzinfo=UTC),
    _Moment(2026, 12, 4, 16, 5, 7, 250000),
    datetime.max,  # infinity
    datetime.min,  # -infinity
]


@pytest.fixture
async def pools(env: Env) -> Any:
    ours = await create_pool(CommonSettings(database_url=env.database_url))
    plain = await asyncpg.create_pool(env.database_url, min_size=1, max_size=1)
    assert plain is not None
    try:
        yield ours, plain
    finally:
        await plain.execute("DROP TABLE IF EXISTS codec_check")  # (the database is shared by the session)
        await ours.close()
        await plain.close()


async def _write(pool: Pool, via: str) -> None:
    async with pool.acquire() as conn:
        rows = [(i, via, v, [v, None]) for i, v in enumerate(VALUES)]
        await conn.copy_records_to_table("codec_check", records=rows)
        await conn.executemany(
            "INSERT INTO codec_check VALUES ($1, $2, $3, $4)", [(i, via + " param", v, a) for i, _, v, a in rows]
        )
        await conn.execute(
            "INSERT INTO codec_check SELECT i - 1, $2, x[i], ARRAY[x[i], NULL] FROM unnest($1::timestamptz[]) "
            "WITH ORDINALITY AS u(v, i), (SELECT $1::timestamptz[] AS x) a",
            VALUES,
            via + " array",
        )


async def test_the_pools_write_and_read_times_as_asyncpg_does(env: Env, pools: Any) -> None:
    ours, plain = pools
    async with plain.acquire() as conn:
        await conn.execute(
            "DROP TABLE IF EXISTS codec_check; "
            "CREATE TABLE codec_check (i int, via text, ts timestamptz, tss timestamptz[])"
        )
    await _write(ours, "ours")
    await _write(plain, "asyncpg")
    async with plain.acquire() as conn:
        differing = await conn.fetch(
            "SELECT i, array_agg(DISTINCT ts::text), array_agg(DISTINCT tss::text) FROM codec_check "
            "GROUP BY i HAVING count(DISTINCT ts) <> 1 OR count(DISTINCT tss) <> 1 OR count(*) <> 6"
        )
        assert differing == []
        assert await conn.fetchval("SELECT count(DISTINCT i) FROM codec_check") == len(VALUES)
        assert await conn.fetchval("SELECT count(*) FROM codec_check WHERE ts = 'infinity'") == 2 * 6
    query = (
        "SELECT i, ts, tss FROM codec_check WHERE via = 'asyncpg' "
        "UNION ALL SELECT -1, '-infinity', ARRAY['infinity', '2026-12-04 16:05:07.5+01']::timestamptz[] "
        "UNION ALL SELECT -2, NULL, NULL ORDER BY 1"
    )
    async with ours.acquire() as conn:
        read_ours = [tuple(r) for r in await conn.fetch(query)]
    async with plain.acquire() as conn:
        read_plain = [tuple(r) for r in await conn.fetch(query)]
    assert read_ours == read_plain
    assert read_ours[1] == (-1, datetime.min, [datetime.max, datetime(2026, 12, 4, 15, 5, 7, 500000, tzinfo=UTC)])
    assert read_ours[3][1] == VALUES[1]
    assert read_ours[3][1].tzinfo == UTC


async def test_a_value_that_is_no_time_is_refused_as_asyncpg_refuses_it(pools: Any) -> None:
    ours, plain = pools
    for pool in (ours, plain):
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.DataError, match=r"expected a datetime\.date or datetime\.datetime"):
                await conn.fetchval("SELECT $1::timestamptz", "2026-12-04")
