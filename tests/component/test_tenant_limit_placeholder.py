"""A list of ours left empty holds the default placeholder on the tenant, and the tenant counts it against
its URL-list entry limit like any entry: the other lists are planned within the limit less that entry, so
the tenant never refuses them for one entry too many (the limit lowered in the fake tenant and the sink)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.component.conftest import module_system
from tests.conftest import Env
from tests.support.component import System

LIMIT = 6
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
async def system(env: Env) -> AsyncIterator[System]:
    async with module_system(
        env,
        tenant_settings={"fake_tenant_url_entries_max": LIMIT},
        sink_settings={"tenant_url_entries_max": LIMIT},
    ) as s:
        yield s


def _items(source: str, prefix: str, n: int) -> list[dict[str, object]]:
    return [
        {
            "value": f"{prefix}-{k}.example",
            "type": "domain",
            "source": source,
            "lastSeen": (NOW - timedelta(minutes=k)).isoformat(),
        }
        for k in range(n)
    ]


async def test_an_emptied_lists_placeholder_counts_against_the_tenant_limit(system: System) -> None:
    destination = await system.netskope_destination("ph-tenant")
    for name in ("ph-empty", "ph-full"):
        await system.share_to_url_list(name, destination)
    # One list gets an entry, which then goes: the list is left holding the placeholder.
    await system.post_indicators(_items("ph-empty-src", "gone", 1))
    await system.push_lists()
    r = await system.api.request("DELETE", "/api/cte/indicators/bulk", json={"values": ["gone-0.example"]})
    assert r.status_code in (200, 201), r.text
    await system.apply_pending()
    await system.push_lists()
    state = (await system.tenant.get("/_sim/state")).json()["urllists"]
    assert state["ph-empty"]["pending"] == ["cedefaultpush.io"]

    # The other list wants more than the limit leaves: it takes the limit less the placeholder.
    await system.post_indicators(_items("ph-full-src", "full", LIMIT + 2))
    for _ in range(2):
        await system.push_lists()
    state = (await system.tenant.get("/_sim/state")).json()["urllists"]
    assert set(state["ph-full"]["pending"]) == {f"full-{k}.example" for k in range(LIMIT - 1)}
    assert sum(len(lst["pending"] or []) for lst in state.values()) == LIMIT
    st = {s["listName"]: s for s in (await system.api.get("/api/cte/sharing/status")).json()}
    assert st["ph-full"]["state"] == "ok", st["ph-full"]
    assert st["ph-full"]["leftOut"]["tenantLimit"] == 3
