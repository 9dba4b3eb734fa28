"""A URL list at its cap fed without a pause keeps room below its cap (netskope_sink.lists.domain.CapReserve).

Through the sink's own flusher and the fake tenant: the first trim after a quiet spell keeps the longest
prefix that fits; a second trim soon after gives up room for the inflow as well; the values that arrive
next are appended, with no replace of the list; once a push finds no change, the list is filled up to
its cap and holds exactly what the reference selection keeps. The list's status reads "pending" while
candidates that fit wait for that push. (``cap_settle_seconds`` is 0 here, so the filling push is the
next flush that finds no change; its delay is the setting's.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from cte_common.db import Pool
from cte_common.sharing import MIB, Candidate, cost_bytes, select_within_cap
from tests.component.conftest import module_system
from tests.conftest import Env
from tests.support.component import System

NOW = datetime.now(UTC).replace(microsecond=0)
CAP_VALUES = 20
SHARE = 0.1  # the sink's default cap_reserve_max_share


@pytest.fixture(scope="module")
async def system(env: Env) -> AsyncIterator[System]:
    async with module_system(env, sink_settings={"cap_settle_seconds": 0}) as s:
        yield s


def value(n: int) -> str:
    return f"reserve-{n:04d}.example"  # equal lengths: equal costs


COST = cost_bytes(value(0))
CAP = 1 + CAP_VALUES * COST  # the first entry counts one byte more


class Feed:
    """Values posted with a newer lastSeen each round: the newest outrank every value before them."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.posted: dict[str, float] = {}
        self.next = 0

    async def post(self, count: int) -> None:
        items = []
        for _ in range(count):
            n = self.next
            self.next += 1
            seen = NOW - timedelta(hours=1) + timedelta(seconds=n)
            self.posted[value(n)] = seen.timestamp()
            items.append(
                {"value": value(n), "type": "domain", "source": "reserve-urls-src", "lastSeen": seen.isoformat()}
            )
        await self.system.post_indicators(items)

    def reference(self, cap: int) -> set[str]:
        """What the longest prefix within ``cap`` keeps (the priority is the last sighting)."""
        candidates = [Candidate(v, p, COST) for v, p in self.posted.items()]
        return {c.value for c in select_within_cap(candidates, cap, 300_000)[0]}


async def held(system: System) -> set[str]:
    state = (await system.tenant.get("/_sim/state")).json()["urllists"]["reserve-urls"]
    return set(state["deployed"])


async def calls_since(system: System, seq: int) -> list[str]:
    """The URL-list calls the sink made since ``seq``: 'append', 'replace' (and 'deploy')."""
    log = await system.tenant_calls_since(seq)
    return [str(c["path"]).rsplit("/", 1)[-1] for c in log if c["method"] in ("PATCH", "POST")]


async def test_a_list_fed_at_its_cap_is_appended_to_and_filled_once_quiet(system: System, db: Pool) -> None:
    destination = await system.netskope_destination("reserve-tenant")
    sharing = await system.share_to_url_list("reserve-urls", destination, max_url_list_cap=CAP / MIB)
    feed = Feed(system)
    key = "reserve-tenant/url/reserve-urls"

    # At its cap, from more candidates than fit.
    await feed.post(CAP_VALUES + 6)
    await system.push_lists()
    assert await held(system) == feed.reference(CAP)

    # The first trim after a quiet spell gives up only what the cap needs.
    await feed.post(2)
    seq = await system.tenant_calls()
    await system.push_lists()
    assert "replace" in await calls_since(system, seq)
    assert await held(system) == feed.reference(CAP)
    assert await db.fetchval("SELECT trimmed_at IS NOT NULL FROM list_state WHERE list_key = $1", key)

    # A second trim soon after: a list fed without a pause. Room for the inflow is given up as well
    # (ten seconds of two values a push is more than the share of the cap: the share bounds it).
    await feed.post(2)
    seq = await system.tenant_calls()
    await system.push_lists()
    assert "replace" in await calls_since(system, seq)
    reserve = int(CAP * SHARE)
    assert reserve >= COST  # (the test is about a reserve of at least one value)
    trimmed = feed.reference(CAP - reserve)
    assert await held(system) == trimmed
    assert len(trimmed) < len(feed.reference(CAP))

    # The next value at the top is appended: nothing is replaced while the reserve has room.
    await feed.post(1)
    seq = await system.tenant_calls()
    await system.push_lists()
    assert await calls_since(system, seq) == ["append", "deploy"]
    newest = value(feed.next - 1)
    assert await held(system) == trimmed | {newest}
    st = await system.sharing_status(sharing["id"])
    assert st["state"] == "pending"  # candidates that fit wait for the feed to pause
    assert st["bytes"] <= CAP

    # No change since: the list is filled up to its cap, by appends, and holds the reference selection.
    seq = await system.tenant_calls()
    await system.push_lists()
    assert await calls_since(system, seq) == ["append", "deploy"]
    assert await held(system) == feed.reference(CAP)
    assert await db.fetchval("SELECT settle_at FROM list_state WHERE list_key = $1", key) is None
    st = await system.sharing_status(sharing["id"])
    assert st["state"] == "ok"
    assert st["leftOut"]["cap"] == len(feed.posted) - CAP_VALUES
    # And nothing more to do.
    seq = await system.tenant_calls()
    await system.push_lists()
    assert await calls_since(system, seq) == []
