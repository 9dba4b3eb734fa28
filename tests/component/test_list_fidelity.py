"""Destination fidelity against the fake tenant in process: the sink touches only the entries it put on a
list (an entry added by hand survives every kind of push, removals, expiry, rule changes, a lost answer
and a new flusher), restores its own entries that went missing, fills an overflowing list to at least
99% of its cap counted on the entries as pushed, reads refusals in both documented shapes, and a list
the tenant refuses, or a tenant rejecting its credentials, is visible in the list status and bounded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cte_common.db import Pool
from cte_common.sharing import MIB
from netskope_sink.alerts.handlers import Poller
from netskope_sink.lists.handlers import Flusher
from tests.support.component import TENANT_URL, TENANT_V2_TOKEN, System

NOW = datetime.now(UTC).replace(microsecond=0)
V2 = {"Netskope-Api-Token": TENANT_V2_TOKEN}
URLLIST = "/api/v2/policy/urllist"


@pytest.fixture(scope="module", autouse=True)
async def destination(system: System) -> str:
    destination = await system.netskope_destination("fid-tenant")
    await system.configure({"name": "fid-src", "ageAfterDays": 0})
    return destination


async def share(system: System, destination: str, list_name: str, **parameters: Any) -> dict[str, Any]:
    return await system.share(
        {
            "sourceConfiguration": "fid-src",
            "businessRule": "All",
            "destinationConfiguration": destination,
            "action": "url",
            "parameters": {"list": list_name, **parameters},
        }
    )


async def post(system: System, values: list[str], **extra: Any) -> None:
    items = [{"value": v, "type": "url" if "/" in v else "domain", "source": "fid-src", **extra} for v in values]
    await system.post_indicators(items)


async def held(system: System, name: str) -> set[str]:
    """The list as the next deploy leaves it (the sink deploys after every push)."""
    state = (await system.tenant.get("/_sim/state")).json()["urllists"]
    return set(state[name]["pending"] or []) if name in state else set()


async def list_id(system: System, name: str) -> int:
    lists = (await system.tenant.get(URLLIST, params={"field": "id,name"}, headers=V2)).json()
    return next(int(x["id"]) for x in lists if x["name"] == name)


async def add_by_hand(system: System, name: str, entries: list[str]) -> None:
    """What an administrator does in the tenant's console: append, then deploy."""
    r = await system.tenant.patch(
        f"{URLLIST}/{await list_id(system, name)}/append", json={"data": {"urls": entries}}, headers=V2
    )
    assert r.status_code == 200, r.text
    assert (await system.tenant.post(f"{URLLIST}/deploy", headers=V2)).status_code == 200


async def test_an_entry_added_by_hand_survives_every_kind_of_push(system: System, destination: str, db: Pool) -> None:
    # The list exists on the tenant before the sharing's first push, with an entry of the administrator's.
    r = await system.tenant.post(
        URLLIST, json={"name": "fid-owned", "data": {"urls": ["hand.example"], "type": "exact"}}, headers=V2
    )
    assert r.status_code == 201, r.text
    sharing = await share(system, destination, "fid-owned")
    await post(system, ["ours-a.example", "https://ours-b.example/x"])
    await system.push_lists()  # the first push: read back, then only appends
    assert await held(system, "fid-owned") == {"hand.example", "ours-a.example", "ours-b.example/x"}
    st = await system.sharing_status(sharing["id"])
    assert (st["entries"], st["foreign"]["entries"], st["state"]) == (2, 1, "ok")
    assert st["lastReadBackAt"] is not None

    # Added by hand after a push, then a removal of ours (the tenant's content less ours replaces it).
    await add_by_hand(system, "fid-owned", ["hand-2.example"])
    body = {"value": "ours-a.example", "source": "fid-src", "retracted": True}
    assert (await system.api.patch("/api/cte/indicators/", json=body)).status_code == 201
    await system.apply_pending()
    await system.push_lists()
    assert await held(system, "fid-owned") == {"hand.example", "hand-2.example", "ours-b.example/x"}

    # Expiry by the ager.
    await post(system, ["ours-c.example"], expiresAt=(NOW + timedelta(hours=1)).isoformat())
    await system.push_lists()
    assert "ours-c.example" in await held(system, "fid-owned")
    await system.sweep(NOW + timedelta(hours=2))
    await system.push_lists()
    assert await held(system, "fid-owned") == {"hand.example", "hand-2.example", "ours-b.example/x"}

    # A rule change that takes every value of ours out, then back: the hand-added entries stay, and no
    # placeholder is needed while they hold the list.
    r = await system.api.post(
        "/api/cte/business_rules", json={"name": "fid-none", "filters": {"query": 'value = "nothing.example"'}}
    )
    assert r.status_code == 201, r.text
    assert (
        await system.api.patch(f"/api/cte/sharing/{sharing['id']}", json={"businessRule": "fid-none"})
    ).status_code == 200
    await system.apply_pending()
    await system.push_lists()
    assert await held(system, "fid-owned") == {"hand.example", "hand-2.example"}
    assert (
        await system.api.patch(f"/api/cte/sharing/{sharing['id']}", json={"businessRule": "All"})
    ).status_code == 200
    await system.apply_pending()
    await system.push_lists()
    assert await held(system, "fid-owned") == {"hand.example", "hand-2.example", "ours-b.example/x"}

    # A push whose answer was lost: the list is read back, and what the lost call added is ours.
    await post(system, ["ours-d.example"])
    await db.execute("UPDATE list_state SET uncertain = true WHERE list_key = $1", sharing["listKey"])
    await system.push_lists()
    assert await held(system, "fid-owned") == {"hand.example", "hand-2.example", "ours-b.example/x", "ours-d.example"}
    assert (await system.sharing_status(sharing["id"]))["foreign"]["entries"] == 2

    # A new flusher (nothing of the sink lives in memory) and a removal: still only ours goes.
    system.flusher = Flusher(
        system.flusher.settings,
        db,
        system.flusher.broker,
        system.flusher.topics,
        asyncio.Event(),
        transport=system.flusher.tenants.transport,
    )
    await system.api.request("DELETE", "/api/cte/indicators/bulk", json={"values": ["ours-d.example"]})
    await system.apply_pending()
    await system.push_lists()
    assert await held(system, "fid-owned") == {"hand.example", "hand-2.example", "ours-b.example/x"}


async def test_entries_of_ours_that_went_missing_are_restored_and_foreign_additions_reported(
    system: System, destination: str, db: Pool
) -> None:
    sharing = await share(system, destination, "create", name="fid-restore")
    await post(system, ["keep-1.example", "keep-2.example"])
    await system.push_lists()
    # An administrator replaces the list: one of ours gone, one entry of theirs.
    lid = await list_id(system, "fid-restore")
    kept = (await held(system, "fid-restore")) - {"keep-2.example"}
    r = await system.tenant.patch(
        f"{URLLIST}/{lid}/replace", json={"data": {"urls": [*sorted(kept), "theirs.example"]}}, headers=V2
    )
    assert r.status_code == 200
    await system.tenant.post(f"{URLLIST}/deploy", headers=V2)
    # The periodic read-back (its interval passed) restores ours and counts theirs.
    await db.execute(
        "UPDATE list_state SET last_read_back_at = now() - interval '2 days' WHERE list_key = $1", sharing["listKey"]
    )
    await system.push_lists()
    now_held = await held(system, "fid-restore")
    assert {"keep-1.example", "keep-2.example", "theirs.example"} <= now_held
    st = await system.sharing_status(sharing["id"])
    assert (st["entries"], st["foreign"]["entries"]) == (len(now_held) - 1, 1)
    assert st["foreign"]["bytes"] == len('"theirs.example"') + 3


async def test_an_overflowing_list_is_at_least_99_percent_full(system: System, destination: str) -> None:
    cap_mb = 0.02
    sharing = await share(system, destination, "create", name="fid-full", max_url_list_cap=cap_mb)
    # URLs with their scheme, of varied lengths: the entries pushed are shorter than the values.
    values = [f"https://host-{n}.example/{'p' * (n % 37)}" for n in range(1500)]
    for start in range(0, len(values), 500):
        await post(system, values[start : start + 500])
    await system.push_lists()
    cap = int(cap_mb * MIB)
    state = (await system.tenant.get("/_sim/state")).json()["urllists"]["fid-full"]
    assert 0.99 * cap <= state["pending_bytes"] <= cap
    st = await system.sharing_status(sharing["id"])
    assert st["bytes"] == state["pending_bytes"]  # counted as the tenant counts it
    assert st["fill"] >= 0.99
    assert st["leftOut"]["cap"] > 0


async def test_refused_entries_are_read_in_both_shapes(system: System, destination: str) -> None:
    sharing = await share(system, destination, "create", name="fid-shapes")
    # Entries the documented grammar takes (the pre-check lets them through) that the tenant refuses.
    refused = {"bad-one.example": "Invalid host", "bad-two.example": "Invalid host"}
    for shape, bad in (("message", "bad-one.example"), ("errors", "bad-two.example")):
        behaviour = {"errorShape": shape, "refusedEntries": refused}
        assert (await system.tenant.put("/_sim/behaviour", json=behaviour)).status_code == 200
        await post(system, [bad, f"good-{shape}.example"])
        await system.push_lists()
        assert f"good-{shape}.example" in await held(system, "fid-shapes")
        assert bad not in await held(system, "fid-shapes")
    await system.tenant.put("/_sim/behaviour", json={"errorShape": "message", "refusedEntries": {}})
    st = await system.sharing_status(sharing["id"])
    assert (st["state"], st["leftOut"]["rejected"], st["leftOut"]["invalid"]) == ("ok", 2, 0)


async def test_a_list_the_tenant_refuses_is_failed_and_backs_off(system: System, destination: str, db: Pool) -> None:
    message = "URL list is locked by an administrator"
    await system.tenant.put("/_sim/refusals", json={"fid-refused": {"status": 400, "message": message}})
    r = await system.tenant.post(
        URLLIST, json={"name": "fid-refused-seed", "data": {"urls": ["x.example"], "type": "exact"}}, headers=V2
    )
    assert r.status_code == 201
    sharing = await share(system, destination, "create", name="fid-refused")
    await post(system, ["refused-1.example"])
    await system.push_lists()
    st = await system.sharing_status(sharing["id"])
    assert (st["state"], st["lastError"], st["failures"]) == ("failed", message, 1)
    assert st["nextAttemptAt"] is not None
    # Within the backoff nothing is sent, however often the flusher looks.
    before = await system.tenant_calls()
    for _ in range(3):
        await system.push_lists()
    assert await system.tenant_calls() == before
    # New content: tried again at once (and refused again, the backoff growing).
    await post(system, ["refused-2.example"])
    await system.push_lists()
    assert await system.tenant_calls() > before
    assert (await system.sharing_status(sharing["id"]))["failures"] == 2
    backoff = await db.fetchval(
        "SELECT extract(epoch FROM next_attempt_at - now()) FROM list_state WHERE list_key = $1", sharing["listKey"]
    )
    assert 50 < backoff <= 60  # 30 s, doubled
    # The tenant takes it again, and the configuration changes: pushed at once.
    await system.tenant.put("/_sim/refusals", json={})
    r = await system.api.patch(f"/api/cte/sharing/{sharing['id']}", json={"priority": "severity"})
    assert r.status_code == 200
    await system.apply_pending()
    await system.push_lists()
    st = await system.sharing_status(sharing["id"])
    assert (st["state"], st["lastError"], st["failures"]) == ("ok", None, 0)
    assert {"refused-1.example", "refused-2.example"} <= await held(system, "fid-refused")


async def test_a_tenant_rejecting_its_credentials_gets_no_call_until_they_change(system: System) -> None:
    r = await system.api.post(
        "/api/tenants", json={"name": "fid-denied", "tenantName": TENANT_URL, "v2Token": "wrong-token"}
    )
    assert r.status_code == 201, r.text
    ns = await system.configure({"name": "fid-denied-ns", "plugin": "netskope", "tenant": "fid-denied"})
    sharing = await share(system, ns["name"], "create", name="fid-denied-list")
    await post(system, ["denied-1.example"])
    await system.push_lists()
    st = await system.sharing_status(sharing["id"])
    assert st["state"] == "credentials_rejected"
    assert "403" in st["lastError"]
    before = await system.tenant_calls()
    await post(system, ["denied-2.example"])
    for _ in range(3):
        await system.push_lists()
    since = await system.tenant_calls_since(before)
    assert [c for c in since if c["status"] in (401, 403)] == []  # new content changes nothing
    assert (await system.sharing_status(sharing["id"]))["state"] == "credentials_rejected"
    r = await system.api.patch("/api/tenants/fid-denied", json={"v2Token": TENANT_V2_TOKEN})
    assert r.status_code == 200, r.text
    await system.push_lists()
    st = await system.sharing_status(sharing["id"])
    assert (st["state"], st["lastError"]) == ("ok", None)
    assert {"denied-1.example", "denied-2.example"} <= await held(system, "fid-denied-list")


async def test_the_fake_tenant_answers_its_limits_and_shapes_over_http(system: System) -> None:
    """The fake tenant's own answers (docs/FAKE_TENANT.md): the upload limit, both shapes of refused
    entries, and its /_sim/ settings refusing nonsense."""
    big = {"name": "fid-big", "data": {"urls": ["x" * 1000 + ".example"] * 9000, "type": "exact"}}
    r = await system.tenant.post(URLLIST, json=big, headers=V2)
    assert (r.status_code, r.json()["status"]) == (413, "error")
    assert "upload limit" in r.json()["message"]
    bad = {"name": "fid-shape", "data": {"urls": ["ok.example", "bad host"], "type": "exact"}}
    r = await system.tenant.post(URLLIST, json=bad, headers=V2)
    assert r.status_code == 400
    assert r.json()["message"][0][0] == "bad host"
    await system.tenant.put("/_sim/behaviour", json={"errorShape": "errors"})
    r = await system.tenant.post(URLLIST, json=bad, headers=V2)
    assert r.status_code == 400
    assert set(r.json()) == {"status", "errors"}
    assert r.json()["errors"][0][0] == "bad host"
    # A refusal that names no entry stays a string message whatever the shape.
    r = await system.tenant.post(
        URLLIST, json={"name": "fid/slash", "data": {"urls": ["a.example"], "type": "exact"}}, headers=V2
    )
    assert r.status_code == 400
    assert isinstance(r.json()["message"], str)
    await system.tenant.put("/_sim/behaviour", json={"errorShape": "message"})
    assert (await system.tenant.put("/_sim/behaviour", json={"errorShape": "html"})).status_code == 400
    assert (await system.tenant.put("/_sim/refusals", json={"x": {"status": 400}})).status_code == 400


async def test_the_placeholder_of_an_emptied_list_goes_when_entries_come_back(system: System, destination: str) -> None:
    await system.configure({"name": "fid-empty-src", "ageAfterDays": 0})
    await system.share(
        {
            "sourceConfiguration": "fid-empty-src",
            "businessRule": "All",
            "destinationConfiguration": destination,
            "action": "url",
            "parameters": {"list": "create", "name": "fid-empty"},
        }
    )
    item = {"type": "domain", "source": "fid-empty-src"}
    await system.post_indicators([{"value": "first.example", **item}])
    await system.push_lists()
    assert await held(system, "fid-empty") == {"first.example"}
    await system.api.request("DELETE", "/api/cte/indicators/bulk", json={"values": ["first.example"]})
    await system.apply_pending()
    await system.push_lists()
    assert await held(system, "fid-empty") == {"cedefaultpush.io"}  # the tenant takes no empty list
    await system.post_indicators([{"value": "second.example", **item}])
    await system.push_lists()
    assert await held(system, "fid-empty") == {"second.example"}


async def test_the_poller_stops_calling_a_tenant_that_rejects_its_credentials(system: System, db: Pool) -> None:
    """A 403 from a dataexport endpoint rejects the tenant's credentials as a push's does: no poll, nor
    push, goes to the tenant until a PATCH of the tenant gives it new ones."""
    r = await system.api.post(
        "/api/tenants", json={"name": "fid-deaf", "tenantName": TENANT_URL, "v2Token": "wrong-token"}
    )
    assert r.status_code == 201, r.text
    ns = await system.configure(
        {
            "name": "fid-deaf-ns",
            "plugin": "netskope",
            "tenant": "fid-deaf",
            "parameters": {"enablePolling": True, "threatDataTypes": "Malware"},
        }
    )
    sharing = await share(system, ns["name"], "create", name="fid-deaf-list")
    poller = Poller(system.flusher.settings, system.pool, system.broker, system.topics, transport=system.transport)
    try:
        before = await system.tenant_calls()
        assert await poller.poll_once() == 0
        answered = await system.tenant_calls_since(before)
        assert [c["status"] for c in answered if "dataexport" in c["path"]] == [403]
        rejected = await db.fetchrow("SELECT rejected_message FROM tenant_state WHERE tenant = 'fid-deaf'")
        assert rejected is not None
        assert "403" in rejected["rejected_message"]
        # The push stops too: the list shows the rejection without having called the tenant.
        await post(system, ["deaf-1.example"])
        before = await system.tenant_calls()
        for _ in range(3):
            await poller.poll_once()
            await system.push_lists()
        since = await system.tenant_calls_since(before)
        # (other modules' lists may be pushed meanwhile, with their own tenants' valid tokens)
        assert [c for c in since if "dataexport" in c["path"] or c["status"] in (401, 403)] == []
        assert (await system.sharing_status(sharing["id"]))["state"] == "credentials_rejected"
        # New credentials: polled (and pushed) again.
        r = await system.api.patch("/api/tenants/fid-deaf", json={"v2Token": TENANT_V2_TOKEN})
        assert r.status_code == 200, r.text
        await poller.poll_once()
        answered = await system.tenant_calls_since(before)
        assert [c["status"] for c in answered if "dataexport" in c["path"]][:1] == [200]
        await system.push_lists()
        assert (await system.sharing_status(sharing["id"]))["state"] == "ok"
    finally:
        await poller.close()
