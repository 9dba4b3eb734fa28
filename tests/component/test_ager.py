"""Expiry by the ager: its sweep, run as of a chosen time, publishes expire commands for what is due
then, and the rule-engine's handler applies them; never earlier, and a later sighting wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cte_common.db import Pool
from tests.support.component import System


@pytest.fixture
def now() -> datetime:
    """The present when the test starts: a module-level time is minutes old by then in a full run, which
    would put a 5-minute expiry in the past."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module", autouse=True)
async def source(system: System) -> None:
    await system.configure({"name": "ager-src", "ageAfterDays": 0})  # expiries come with the indicators
    await system.apply_pending()


async def post(system: System, value: str, expires: datetime | None) -> None:
    due = expires.isoformat() if expires else None
    await system.post_indicators([{"value": value, "type": "domain", "source": "ager-src", "expiresAt": due}])


async def active(system: System, value: str) -> bool:
    item = await system.indicator(value)
    assert item is not None
    return bool(item["active"])


async def test_indicators_expire_when_due_and_not_before(system: System, db: Pool, now: datetime) -> None:
    await post(system, "in-one-hour.example", now + timedelta(hours=1))
    await post(system, "in-three-hours.example", now + timedelta(hours=3))
    await post(system, "never-expires.example", None)
    assert await system.sweep() == 0  # nothing is due yet
    assert await system.sweep(now + timedelta(hours=2)) == 1
    assert not await active(system, "in-one-hour.example")
    assert await active(system, "in-three-hours.example")
    assert await active(system, "never-expires.example")
    # Expired as due: the stored expiry is unchanged.
    expires = await db.fetchval("SELECT expires_at FROM indicators WHERE value = 'in-one-hour.example'")
    assert expires == now + timedelta(hours=1)
    assert await system.sweep(now + timedelta(hours=2)) == 0  # an inactive indicator is not due again
    assert await system.sweep(now + timedelta(days=365)) == 1
    assert not await active(system, "in-three-hours.example")
    assert await active(system, "never-expires.example")


async def test_a_later_sighting_before_expiry_keeps_the_indicator(system: System, now: datetime) -> None:
    await post(system, "resighted.example", now + timedelta(hours=1))
    await post(system, "resighted.example", now + timedelta(hours=5))
    assert await system.sweep(now + timedelta(hours=2)) == 0
    assert await active(system, "resighted.example")


async def test_a_sighting_after_expiry_makes_it_active_again(system: System, now: datetime) -> None:
    await post(system, "back-again.example", now + timedelta(minutes=30))
    assert await system.sweep(now + timedelta(hours=1)) == 1
    assert not await active(system, "back-again.example")
    await post(system, "back-again.example", now + timedelta(days=1))
    assert await active(system, "back-again.example")


async def test_inactive_indicators_are_deleted_when_the_setting_says_so(system: System, now: datetime) -> None:
    await post(system, "short-lived.example", now + timedelta(minutes=5))
    assert await system.sweep(now + timedelta(minutes=10)) == 1
    assert not await active(system, "short-lived.example")
    # Kept while the setting is off.
    await system.sweep(now + timedelta(minutes=10))
    assert await system.indicator("short-lived.example") is not None
    r = await system.api.patch("/api/settings/cte", json={"deleteInactiveIndicators": True})
    assert r.status_code == 200, r.text
    try:
        await system.sweep(now + timedelta(minutes=10))
        assert await system.indicator("short-lived.example") is None
        # Its source rows went with it (no foreign key cascades them: migration 0024).
        sources = "SELECT count(*) FROM indicator_sources WHERE value = 'short-lived.example'"
        assert await system.pool.fetchval(sources) == 0
        assert await system.indicator("never-expires.example") is not None  # active ones stay
    finally:
        r = await system.api.patch("/api/settings/cte", json={"deleteInactiveIndicators": False})
        assert r.status_code == 200, r.text


async def test_an_inactive_indicator_a_list_holds_or_wants_is_kept(system: System, db: Pool, now: datetime) -> None:
    """Deletion waits until no list holds the value on its tenant (a URL as its entry, without the
    scheme) and no list has it as a member; the ager asks each list through its primary key."""
    value, entry = "https://held.ager.example/p", "held.ager.example/p"
    pushed_in, member_of = "ager-tenant/url/held", "ager-tenant/url/wanted"
    due = (now + timedelta(minutes=5)).isoformat()
    await system.post_indicators([{"value": value, "type": "url", "source": "ager-src", "expiresAt": due}])
    await system.sweep(now + timedelta(minutes=10))
    assert not await active(system, value)
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO list_state (list_key, version) SELECT unnest($1::text[]), 1 ON CONFLICT DO NOTHING",
            [pushed_in, member_of],
        )
        await conn.execute("INSERT INTO list_pushed (list_key, value) VALUES ($1, $2)", pushed_in, entry)
    r = await system.api.patch("/api/settings/cte", json={"deleteInactiveIndicators": True})
    assert r.status_code == 200, r.text
    try:
        await system.sweep(now + timedelta(minutes=10))
        assert await system.indicator(value) is not None  # held on a tenant
        async with db.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO list_members (list_key, value, type, priority, cost_bytes) VALUES ($1, $2, 'url', 1, 20)",
                member_of,
                value,
            )
            await conn.execute("DELETE FROM list_pushed WHERE list_key = $1", pushed_in)
        await system.sweep(now + timedelta(minutes=10))
        assert await system.indicator(value) is not None  # wanted by another list
        await db.execute("DELETE FROM list_members WHERE list_key = $1", member_of)
        await system.sweep(now + timedelta(minutes=10))
        assert await system.indicator(value) is None
    finally:
        r = await system.api.patch("/api/settings/cte", json={"deleteInactiveIndicators": False})
        assert r.status_code == 200, r.text
