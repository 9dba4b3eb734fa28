"""The tenant's limits across its URL lists, lowered for the test in the fake tenant and in the sink alike
(Netskope documents 300,000 URL-list entries and 1,000 regex entries per tenant): two sharings whose
lists together want more are kept within the limit, planned by priority across both, and what the limit
leaves out is reported as ``leftOut.tenantLimit``; entries of other lists count too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.component.conftest import module_system
from tests.conftest import Env
from tests.support.component import TENANT_V2_TOKEN, System

LIMIT = 10
REGEX_LIMIT = 3
NOW = datetime.now(UTC).replace(microsecond=0)
URLLIST = "/api/v2/policy/urllist"


@pytest.fixture(scope="module")
async def system(env: Env) -> AsyncIterator[System]:
    async with module_system(
        env,
        tenant_settings={"fake_tenant_url_entries_max": LIMIT, "fake_tenant_regex_entries_max": REGEX_LIMIT},
        sink_settings={"tenant_url_entries_max": LIMIT, "tenant_regex_entries_max": REGEX_LIMIT},
    ) as s:
        yield s


async def lists(system: System) -> dict[str, set[str]]:
    state = (await system.tenant.get("/_sim/state")).json()["urllists"]
    return {name: set(lst["pending"] or []) for name, lst in state.items()}


async def statuses(system: System) -> dict[str, dict[str, Any]]:
    r = await system.api.get("/api/cte/sharing/status")
    assert r.status_code == 200, r.text
    return {s["listName"]: s for s in r.json()}


async def test_two_lists_share_the_tenant_limit_by_priority(system: System) -> None:
    # An administrator's list elsewhere on the tenant holds two entries: the limit counts them too.
    v2 = {"Netskope-Api-Token": TENANT_V2_TOKEN}
    theirs = {"name": "lim-theirs", "data": {"urls": ["t1.example", "t2.example"], "type": "exact"}}
    created = await system.tenant.post(URLLIST, json=theirs, headers=v2)
    assert created.status_code == 201
    await system.tenant.post(f"{URLLIST}/deploy", headers=v2)
    destination = await system.netskope_destination("lim-tenant")
    for name in ("lim-a", "lim-b"):
        await system.share_to_url_list(name, destination)
    # Eight values each, the newest first: a's at even hours back, b's at odd ones.
    for offset, name in enumerate(("lim-a", "lim-b")):
        items = [
            {
                "value": f"{name}-{n}.example",
                "type": "domain",
                "source": f"{name}-src",
                "lastSeen": (NOW - timedelta(hours=2 * n + offset)).isoformat(),
            }
            for n in range(8)
        ]
        await system.post_indicators(items)
    for _ in range(3):  # the lists settle their shares within a few rounds
        await system.push_lists()
    held = await lists(system)
    assert len(held["lim-a"]) + len(held["lim-b"]) == LIMIT - 2
    # The newest eight across both lists: four of each.
    assert held["lim-a"] == {f"lim-a-{n}.example" for n in range(4)}
    assert held["lim-b"] == {f"lim-b-{n}.example" for n in range(4)}
    assert held["lim-theirs"] == {"t1.example", "t2.example"}
    st = await statuses(system)
    for name in ("lim-a", "lim-b"):
        assert st[name]["state"] == "ok", st[name]
        assert st[name]["leftOut"] == {"cap": 0, "tenantLimit": 4, "invalid": 0, "rejected": 0}

    # The administrator's list goes: at the next read-back ours take the room, five each.
    lid = created.json()[0]["id"]
    assert (await system.tenant.delete(f"{URLLIST}/{lid}", headers=v2)).status_code == 200
    await system.tenant.post(f"{URLLIST}/deploy", headers=v2)
    await system.pool.execute("UPDATE list_state SET last_read_back_at = now() - interval '2 days'")
    for _ in range(3):
        await system.push_lists()
    held = await lists(system)
    assert held["lim-a"] == {f"lim-a-{n}.example" for n in range(5)}
    assert held["lim-b"] == {f"lim-b-{n}.example" for n in range(5)}
    st = await statuses(system)
    assert st["lim-a"]["leftOut"]["tenantLimit"] + st["lim-b"]["leftOut"]["tenantLimit"] == 16 - LIMIT
    assert {st[n]["state"] for n in ("lim-a", "lim-b")} == {"ok"}


async def test_a_regex_list_lives_within_the_regex_limit(system: System) -> None:
    destination = "lim-tenant-ns"
    await system.configure({"name": "lim-rx-src", "ageAfterDays": 0})
    sharing = await system.share(
        {
            "sourceConfiguration": "lim-rx-src",
            "businessRule": "All",
            "destinationConfiguration": destination,
            "action": "url",
            "parameters": {"list": "create", "name": "lim-rx", "url_list_type": "regex"},
        }
    )
    items = [
        {
            "value": f"rx-{n}.example",
            "type": "domain",
            "source": "lim-rx-src",
            "lastSeen": (NOW - timedelta(minutes=n)).isoformat(),
        }
        for n in range(5)
    ]
    await system.post_indicators(items)
    for _ in range(3):
        await system.push_lists()
    held = await lists(system)
    assert held["lim-rx"] == {f"rx-{n}.example" for n in range(REGEX_LIMIT)}
    st = (await system.api.get(f"/api/cte/sharing/{sharing['id']}/status")).json()
    assert st["state"] == "ok"
    assert st["leftOut"]["tenantLimit"] == 5 - REGEX_LIMIT
    # Every list together still within the tenant's entry limit.
    assert sum(len(v) for v in held.values()) <= LIMIT
