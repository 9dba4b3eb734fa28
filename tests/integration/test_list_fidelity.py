"""Destination fidelity with real processes (ingest-api, rule-engine, netskope-sink, fake tenants) on the
real broker and database:

- an entry an administrator added to a list survives appends, removals and a kill -9 of the sink; our
  entries removed on the tenant come back at the next periodic read-back; the list status counts the
  foreign entry;
- an overflowing list is at least 99% full;
- a list the tenant refuses shows its error in the status API within seconds and is not tried more often
  than the backoff allows (the fake's request log);
- a tenant answering 403 gets no call until it is patched, then its lists are pushed.

The module runs in a namespace of its own (test_sink_resilience's ``ns``) and starts its sinks and fake
tenants itself.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration import test_sink_resilience
from tests.integration.test_sink_resilience import (
    DEFAULT_URL,
    URLLIST,
    FakeTenant,
    Namespace,
    Sink,
    destination,
    domains,
    eventually,
    make_destination,
    make_source,
    post_domains,
    settled,
    share,
    sinks,
    start_all,
)
from tests.support.processes import Service, free_port

ns = test_sink_resilience.ns  # the module's namespace: a database, topics, an ingest-api and a rule-engine

V2 = {"Netskope-Api-Token": "fake-v2-token"}
QUICK = {
    "CTE_LIST_READ_BACK_INTERVAL_SECONDS": "2",
    "CTE_REFUSED_BACKOFF_INITIAL_SECONDS": "2",
    "CTE_REFUSED_BACKOFF_MAX_SECONDS": "8",
}


def fake_tenant(ns: Namespace, label: str, **env: str) -> tuple[Service, FakeTenant]:
    folder = ns.log_dir / f"tenant-{label}"
    folder.mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = Service(
        "cte-fake-tenant",
        {"CTE_LOG_LEVEL": "WARNING", "CTE_FAKE_TENANT_PORT": str(port), **env},
        f"{url}/_sim/healthz",
        folder,
    )
    return service, FakeTenant(url, httpx.Client(base_url=url, timeout=30, trust_env=False))


@pytest.fixture(scope="module")
def tenant(ns: Namespace) -> Iterator[FakeTenant]:
    service, fake = fake_tenant(ns, "plain")
    start_all(service)
    try:
        yield fake
    finally:
        service.stop()


@pytest.fixture(scope="module")
def sink(ns: Namespace, tenant: FakeTenant) -> Iterator[Sink]:
    running = Sink(ns, "fidelity", f"sink-fidelity-{ns.env.topic_prefix}", **QUICK)
    with sinks(running):
        yield running


def held(tenant: FakeTenant, name: str) -> set[str]:
    lst = tenant.url_list(name)
    return set(lst["deployed"]) if lst else set()


def list_id(tenant: FakeTenant, name: str) -> int:
    lists = tenant.client.get(URLLIST, params={"field": "id,name"}, headers=V2).json()
    return next(int(x["id"]) for x in lists if x["name"] == name)


def by_hand(tenant: FakeTenant, name: str, action: str, urls: list[str]) -> None:
    r = tenant.client.patch(f"{URLLIST}/{list_id(tenant, name)}/{action}", json={"data": {"urls": urls}}, headers=V2)
    assert r.status_code == 200, r.text
    tenant.client.post(f"{URLLIST}/deploy", headers=V2).raise_for_status()


def status_of(ns: Namespace, list_name: str) -> dict[str, Any]:
    r = ns.api.get("/api/cte/sharing/status")
    assert r.status_code == 200, r.text
    found: dict[str, Any] = next(s for s in r.json() if s["listName"] == list_name)
    return found


async def test_a_hand_added_entry_survives_pushes_and_a_sink_restart(
    ns: Namespace, tenant: FakeTenant, sink: Sink
) -> None:
    d = destination(ns, "hand", tenant.url)
    ours = domains("hand", 4)
    values = list(ours)
    post_domains(ns, d.source, {v: ours[v] for v in values[:2]})
    await eventually(lambda: _holds(tenant, d.list_name, set(values[:2])))
    by_hand(tenant, d.list_name, "append", ["admin.example"])
    post_domains(ns, d.source, {values[2]: ours[values[2]]})  # an append
    await eventually(lambda: _holds(tenant, d.list_name, {*values[:3], "admin.example"}))
    r = ns.api.request("DELETE", "/api/cte/indicators/bulk", params={"wait": "true"}, json={"values": [values[0]]})
    assert r.status_code in (200, 201, 204)
    await eventually(lambda: _holds(tenant, d.list_name, {*values[1:3], "admin.example"}))  # a removal

    sink.service.kill()
    sink.restart_after_kill()
    await eventually(lambda: sink.assert_started(), timeout=60)
    post_domains(ns, d.source, {values[3]: ours[values[3]]})
    r = ns.api.request("DELETE", "/api/cte/indicators/bulk", params={"wait": "true"}, json={"values": [values[1]]})
    assert r.status_code in (200, 201, 204)
    await eventually(lambda: _holds(tenant, d.list_name, {values[2], values[3], "admin.example"}))

    # An administrator takes one of ours out: the periodic read-back puts it back.
    by_hand(tenant, d.list_name, "replace", [values[3], "admin.example"])
    await eventually(lambda: _holds(tenant, d.list_name, {values[2], values[3], "admin.example"}), timeout=20)

    def counted() -> None:
        st = status_of(ns, d.list_name)
        assert (st["entries"], st["foreign"]["entries"], st["state"]) == (2, 1, "ok"), st

    await eventually(counted, timeout=10)


def _holds(tenant: FakeTenant, name: str, expected: set[str]) -> None:
    lst = tenant.url_list(name)
    assert lst is not None
    assert lst["pending"] == lst["deployed"]
    assert set(lst["deployed"]) == expected, sorted(lst["deployed"])


async def test_an_overflowing_list_is_at_least_99_percent_full(ns: Namespace, tenant: FakeTenant, sink: Sink) -> None:
    cap_mb = 0.01
    d = destination(ns, "full", tenant.url, cap_mb=cap_mb)
    post_domains(ns, d.source, domains("full", 600))
    await settled(ns, d.key)

    def full() -> None:
        lst = tenant.url_list(d.list_name)
        assert lst is not None
        assert 0.99 * cap_mb * 1024 * 1024 <= lst["deployed_bytes"] <= cap_mb * 1024 * 1024

    await eventually(full)
    assert status_of(ns, d.list_name)["fill"] >= 0.99


async def test_a_refused_list_shows_its_error_at_once_and_backs_off(
    ns: Namespace, tenant: FakeTenant, sink: Sink
) -> None:
    d = destination(ns, "refused", tenant.url)
    post_domains(ns, d.source, domains("refused", 1))
    await settled(ns, d.key)
    message = "URL list is being edited in the console"
    tenant.client.put("/_sim/refusals", json={d.list_name: {"status": 400, "message": message}}).raise_for_status()
    lid = list_id(tenant, d.list_name)
    since = tenant.requests()[-1]["seq"]
    post_domains(ns, d.source, domains("refused", 1, start=1))
    started = time.monotonic()

    def failed() -> None:
        st = status_of(ns, d.list_name)
        assert (st["state"], st["lastError"]) == ("failed", message), st

    await eventually(failed, timeout=10)
    assert time.monotonic() - started < 10
    await asyncio.sleep(16)  # attempts after 2, 4 and 8 seconds at most
    changes = [
        r["time"]
        for r in tenant.requests(since)
        if r["method"] == "PATCH" and r["path"].startswith(f"{URLLIST}/{lid}/")
    ]
    assert 2 <= len(changes) <= 4, changes
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    for n, gap in enumerate(gaps):
        assert gap >= min(2 * 2**n, 8) - 0.5, gaps
    assert status_of(ns, d.list_name)["failures"] == len(changes)

    tenant.client.put("/_sim/refusals", json={}).raise_for_status()
    await eventually(lambda: _holds(tenant, d.list_name, set(domains("refused", 2))), timeout=15)
    assert status_of(ns, d.list_name)["state"] == "ok"


async def test_a_tenant_answering_403_is_left_alone_until_it_is_patched(
    ns: Namespace, tenant: FakeTenant, sink: Sink
) -> None:
    name = "denied-tenant-" + ns.env.topic_prefix
    body = {"name": name, "tenantName": tenant.url, "v1Token": "fake-v1-token", "v2Token": "revoked-token"}
    assert ns.api.post("/api/tenants", json=body).status_code == 201
    make_source(ns, f"{name}-src")
    make_destination(ns, f"{name}-ns", name)
    share(ns, f"{name}-src", f"{name}-ns", f"{name}-urls")
    since = tenant.requests()[-1]["seq"] if tenant.requests() else 0
    post_domains(ns, f"{name}-src", domains("denied", 1))

    def rejected() -> None:
        assert status_of(ns, f"{name}-urls")["state"] == "credentials_rejected"

    await eventually(rejected, timeout=10)
    post_domains(ns, f"{name}-src", domains("denied", 1, start=1))  # new content changes nothing
    await asyncio.sleep(5)
    denied = [r for r in tenant.requests(since) if r["status"] in (401, 403)]
    assert len(denied) == 1, denied
    assert ns.api.patch(f"/api/tenants/{name}", json={"v2Token": "fake-v2-token"}).status_code == 200
    await eventually(lambda: _holds(tenant, f"{name}-urls", set(domains("denied", 2))), timeout=15)
    assert status_of(ns, f"{name}-urls")["state"] == "ok"
    assert DEFAULT_URL not in held(tenant, f"{name}-urls")
