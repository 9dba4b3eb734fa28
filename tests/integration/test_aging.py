"""Aging, retraction and removal: indicators leave every list on time, never earlier, never staying."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import Pipeline
from tests.integration.test_api_first_path import token
from tests.support.waiting import eventually

HASH = "9e107d9d372bb6826bd81d3542a419d6"


@pytest.fixture(scope="module")
def world(pipeline: Pipeline) -> dict[str, Any]:
    """A source aging after one minute, shared by "All" to a URL list and a file hash list."""
    api = httpx.Client(
        base_url=pipeline.api_url, headers={"Authorization": f"Bearer {token(pipeline.api_url)}"}, timeout=30
    )
    tenant = httpx.Client(base_url=pipeline.tenant_url, timeout=30)
    tenant.post("/_sim/filehashlists", json={"name": "aging-hashes"}).raise_for_status()
    assert (
        api.post(
            "/api/tenants",
            json={
                "name": "aging-tenant",
                "tenantName": pipeline.tenant_url,
                "v1Token": "fake-v1-token",
                "v2Token": "fake-v2-token",
            },
        ).status_code
        == 201
    )
    minute = {"value": 1, "unit": "minutes", "base": "lastSeen"}
    assert (
        api.post(
            "/api/cte/configurations", json={"name": "aging-src", "plugin": "api_source", "agingCriteria": minute}
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/api/cte/configurations", json={"name": "aging-ns", "plugin": "netskope", "tenant": "aging-tenant"}
        ).status_code
        == 201
    )
    for action, params in (("url", {"list": "create", "name": "aging-urls"}), ("file", {"file_list": "aging-hashes"})):
        r = api.post(
            "/api/cte/sharing",
            json={
                "sourceConfiguration": "aging-src",
                "businessRule": "All",
                "destinationConfiguration": "aging-ns",
                "action": action,
                "parameters": params,
            },
        )
        assert r.status_code == 201, r.text
    return {"api": api, "tenant": tenant}


def lists(tenant: httpx.Client) -> tuple[set[str], set[str]]:
    state = tenant.get("/_sim/state").json()
    return set(state["urllists"].get("aging-urls", {}).get("deployed", [])), set(state["filehashlists"]["aging-hashes"])


def post(api: httpx.Client, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = api.post("/api/cte/indicators/", params={"wait": "true"}, json=[{"source": "aging-src", **i} for i in items])
    assert r.status_code == 201, r.text
    return list(r.json())


def test_one_minute_aging_leaves_the_lists_within_a_minute_of_expiry(world: dict[str, Any]) -> None:
    api, tenant = world["api"], world["tenant"]
    stored = post(api, [{"value": "aging-minute.example", "type": "domain"}, {"value": HASH, "type": "md5"}])
    expires = {i["value"]: datetime.fromisoformat(i["expiresAt"]) for i in stored}
    assert all(timedelta(seconds=50) < at - datetime.now(UTC) <= timedelta(seconds=61) for at in expires.values())

    def deployed() -> None:
        urls, hashes = lists(tenant)
        assert "aging-minute.example" in urls
        assert HASH in hashes

    eventually(deployed)
    # Never earlier than due: still there shortly before expiry.
    time.sleep(max(0.0, (min(expires.values()) - datetime.now(UTC)).total_seconds() - 5))
    deployed()

    def gone() -> None:
        urls, hashes = lists(tenant)
        assert "aging-minute.example" not in urls
        assert HASH not in hashes

    eventually(gone, timeout=75)
    assert datetime.now(UTC) - max(expires.values()) < timedelta(seconds=60)
    # The removal from the URL list was deployed: the log shows a deploy after the expiry.
    log = tenant.get("/_sim/requests").json()
    entries = log if isinstance(log, list) else log.get("requests", [])
    assert any(e["path"].endswith("/urllist/deploy") for e in entries)


def test_a_resighting_before_expiry_keeps_the_indicator(world: dict[str, Any]) -> None:
    api, tenant = world["api"], world["tenant"]
    soon = (datetime.now(UTC) + timedelta(seconds=6)).isoformat()
    post(api, [{"value": "kept.example", "type": "domain", "expiresAt": soon}])
    eventually(lambda: _in(lists(tenant)[0], "kept.example"))
    time.sleep(3)
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    post(api, [{"value": "kept.example", "type": "domain", "expiresAt": later}])
    time.sleep(6)
    assert "kept.example" in lists(tenant)[0]
    [item] = api.get("/api/cte/indicators/", params={"filters": '{"value": "kept.example"}'}).json()
    assert item["active"] is True


async def test_killed_ager_misses_nothing(world: dict[str, Any], pipeline: Pipeline, db: asyncpg.Pool[Any]) -> None:
    api = world["api"]
    api.post("/api/cte/configurations", json={"name": "aging-bulk", "plugin": "api_source", "ageAfterDays": 0})
    due = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    items = [
        {"value": f"due-{n}.aging.example", "type": "domain", "source": "aging-bulk", "expiresAt": due}
        for n in range(3000)
    ]
    for start in range(0, len(items), 1000):
        assert (
            api.post("/api/cte/indicators/", params={"wait": "true"}, json=items[start : start + 1000]).status_code
            == 201
        )
    query = (
        "SELECT count(*) FROM indicators i JOIN indicator_sources s USING (value) "
        "WHERE s.source = 'aging-bulk' AND i.active"
    )
    deadline = time.monotonic() + 30
    while await db.fetchval(query) == 3000:  # wait for the sweep to start
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The ager sweeps 200 at a time here (see the pipeline fixture): this kill lands mid-way.
    pipeline.ager.kill()
    assert await db.fetchval(query) > 0
    pipeline.ager.start()
    deadline = time.monotonic() + 60
    while (left := await db.fetchval(query)) > 0:
        assert time.monotonic() < deadline, f"{left} indicators never expired"
        time.sleep(0.2)
    # Expired as due: the expiry time is unchanged, and nothing that was not due was touched.
    assert (
        await db.fetchval(
            "SELECT count(DISTINCT i.expires_at) FROM indicators i JOIN indicator_sources s USING (value) "
            "WHERE s.source = 'aging-bulk'"
        )
        == 1
    )


def test_retraction_and_deletion_remove_and_unretraction_puts_back(world: dict[str, Any]) -> None:
    api, tenant = world["api"], world["tenant"]
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    post(api, [{"value": "retracted.aging.example", "type": "domain", "expiresAt": later}])
    eventually(lambda: _in(lists(tenant)[0], "retracted.aging.example"))
    body = {"value": "retracted.aging.example", "source": "aging-src", "retracted": True}
    assert api.patch("/api/cte/indicators/", params={"wait": "true"}, json=body).status_code == 201
    eventually(lambda: _out(lists(tenant)[0], "retracted.aging.example"))
    assert (
        api.patch("/api/cte/indicators/", params={"wait": "true"}, json={**body, "retracted": False}).status_code == 201
    )
    eventually(lambda: _in(lists(tenant)[0], "retracted.aging.example"))
    api.request(
        "DELETE", "/api/cte/indicators/bulk", params={"wait": "true"}, json={"values": ["retracted.aging.example"]}
    )
    eventually(lambda: _out(lists(tenant)[0], "retracted.aging.example"))


def test_delete_inactive_indicators_after_they_left_every_list(world: dict[str, Any]) -> None:
    api, tenant = world["api"], world["tenant"]
    assert api.patch("/api/settings/cte", json={"deleteInactiveIndicators": True}).status_code == 200
    try:
        soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
        post(api, [{"value": "short-lived.aging.example", "type": "domain", "expiresAt": soon}])
        eventually(lambda: _in(lists(tenant)[0], "short-lived.aging.example"))

        def deleted() -> None:
            assert "short-lived.aging.example" not in lists(tenant)[0]
            found = api.get("/api/cte/indicators/", params={"filters": '{"value": "short-lived.aging.example"}'}).json()
            assert found == []

        eventually(deleted, timeout=40)
    finally:
        api.patch("/api/settings/cte", json={"deleteInactiveIndicators": False})


def _in(values: set[str], value: str) -> None:
    assert value in values


def _out(values: set[str], value: str) -> None:
    assert value not in values
