"""Tenant faults at 50%: a quarter of the failures each 429 with Retry-After, 500, a held answer (the
change applied, the answer lost to the sink's timeout) and a dropped connection. Two URL lists and two file
hash lists converge exactly to what the test itself posted and deleted, and the tenant's own request log
shows the sink's per-tenant request budget held in every sliding window, with the budget tight enough that
the sink really runs against it.

Runs in a namespace of its own (see test_sink_resilience) so no other sink pushes these lists.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from netskope_sink.tenant.client import RequestBudget
from tests.conftest import Env
from tests.integration.test_sink_resilience import (
    RUN,
    FakeTenant,
    Namespace,
    Sink,
    assert_list_holds,
    make_destination,
    make_source,
    make_tenant,
    ns,  # noqa: F401  (the module's namespace fixture)
    share,
    sinks,
)
from tests.support.processes import Service, free_port
from tests.support.waiting import eventually

report = logging.getLogger(__name__)  # the figures, with --log-cli-level=INFO

# Tight budgets, so a workload of a few seconds presses against them.
V1_BUDGET, V1_PERIOD = 3, 2.0
V2_BUDGET, V2_PERIOD = 4, 1.0
FAULTS = {"rate_429": 0.125, "rate_500": 0.125, "rate_timeout": 0.125, "rate_drop": 0.125}


@pytest.fixture(scope="module")
def tenant(ns: Namespace) -> Iterator[FakeTenant]:  # noqa: F811
    folder = ns.log_dir / "fault-tenant"
    folder.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = Service(
        "cte-fake-tenant",
        {
            "CTE_FAKE_TENANT_PORT": str(port),
            "CTE_LOG_LEVEL": "WARNING",
            # Held answers outlast the sink's 2 s request timeout.
            "CTE_FAKE_TENANT_TIMEOUT_SECONDS": "3",
            # The tenant's own limits off: every 429 in the log is an injected one.
            "CTE_FAKE_TENANT_V1_RATE_LIMIT": "0",
            "CTE_FAKE_TENANT_V2_RATE_LIMIT": "0",
        },
        f"{url}/_sim/healthz",
        folder,
    ).start()
    try:
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
            yield FakeTenant(url, client)
    finally:
        service.stop()


def most_in_a_window(times: list[float], period: float) -> int:
    """The largest number of requests whose arrival times fall within any half-open window of ``period``."""
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= period:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_most_in_a_window() -> None:
    assert most_in_a_window([], 1.0) == 0
    assert most_in_a_window([0.0, 0.5, 0.99, 1.0, 1.5], 1.0) == 3
    assert most_in_a_window([0.0, 1.0, 2.0], 1.0) == 1


async def test_replicas_share_one_sliding_window(env: Env) -> None:
    """Two processes' budgets for one tenant (a pool each, as two replicas have) let no more than the
    budget into any window, however their callers interleave."""
    requests, period = 3, 0.5
    tenant = f"budget-{RUN}"
    pools = [await asyncpg.create_pool(env.database_url, min_size=1, max_size=2) for _ in range(2)]
    try:
        # The margin covers the moment between the database's stamp and this process's.
        budgets = [RequestBudget(pool, tenant, "v2", requests, period, margin=0.1) for pool in pools]
        sent: list[float] = []

        async def call(budget: RequestBudget) -> None:
            async with budget:
                sent.append(time.monotonic())

        await asyncio.gather(*(call(budgets[i % 2]) for i in range(12)))
    finally:
        for pool in pools:
            await pool.close()
    assert len(sent) == 12
    assert most_in_a_window(sent, period) <= requests
    assert sent[-1] - sent[0] >= 3 * period  # four windows' worth of calls, no faster


def post(api: httpx.Client, items: list[dict[str, Any]]) -> None:
    # wait: a delete by value finds what the read model holds, so the test's deletes must see these.
    r = api.post("/api/cte/indicators/", params={"wait": "true"}, json=items)
    assert r.status_code == 201, r.text


@pytest.mark.timeout(180)
def test_lists_converge_and_the_budget_holds_under_half_failing_answers(
    ns: Namespace,  # noqa: F811
    tenant: FakeTenant,
) -> None:
    rng = random.Random(20261130)
    t, source, conf = f"faults-{RUN}", f"faults-src-{RUN}", f"faults-ns-{RUN}"
    url_lists = [f"faults-urls{n}-{RUN}" for n in range(3)]
    hash_lists = [f"faults-hashes{n}-{RUN}" for n in range(3)]
    make_tenant(ns, t, tenant.url)
    make_source(ns, source)
    make_destination(ns, conf, t)
    for name in hash_lists:
        tenant.client.post("/_sim/filehashlists", json={"name": name}).raise_for_status()
    for name in url_lists:
        share(ns, source, conf, name)
    for name in hash_lists:
        share(ns, source, conf, name, action="file")

    # Two replicas: the budget is the tenant's, not each process's.
    replicas = [
        Sink(
            ns,
            f"faults-{n}",
            f"sink-faults-{RUN}",
            CTE_V1_REQUESTS=str(V1_BUDGET),
            CTE_V1_PERIOD_SECONDS=str(V1_PERIOD),
            CTE_V2_REQUESTS=str(V2_BUDGET),
            CTE_V2_PERIOD_SECONDS=str(V2_PERIOD),
        )
        for n in (1, 2)
    ]
    since = tenant.last_seq()
    tenant.faults(**FAULTS, retry_after=1, timeout_seconds=3, seed=11)
    domains: set[str] = set()
    hashes: set[str] = set()
    started = time.monotonic()
    try:
        with sinks(*replicas):
            for round_ in range(15):
                new_domains = [f"d{round_}-{n}.faults-{RUN}.example" for n in range(30)]
                new_hashes = [hashlib.sha256(f"{RUN}-{round_}-{n}".encode()).hexdigest() for n in range(15)]
                post(ns.api, [{"value": v, "type": "domain", "source": source} for v in new_domains])
                post(ns.api, [{"value": v, "type": "sha256", "source": source} for v in new_hashes])
                domains |= set(new_domains)
                hashes |= set(new_hashes)
                if round_ % 3 == 2:
                    doomed = rng.sample(sorted(domains), 8) + rng.sample(sorted(hashes), 4)
                    r = ns.api.request("DELETE", "/api/cte/indicators/bulk", json={"values": doomed})
                    assert r.status_code == 201, r.text
                    assert r.json() == {"deleted": len(doomed)}
                    domains -= set(doomed)
                    hashes -= set(doomed)
                time.sleep(0.4)

            def converged() -> None:
                for name in url_lists:
                    assert_list_holds(tenant, name, domains)
                held = tenant.client.get("/_sim/state").json()["filehashlists"]
                for name in hash_lists:
                    assert len(held[name]) == len(set(held[name])), f"duplicates in {name}"
                    assert set(held[name]) == hashes, (name, len(held[name]), len(hashes))

            eventually(converged, timeout=120, interval=0.5)
            converged_after = time.monotonic() - started
    finally:
        tenant.faults()

    log = tenant.requests(since)
    faults = Counter(r["fault"] or "none" for r in log)
    report.info("%d tenant requests, faults %s, converged after %.1f s", len(log), dict(faults), converged_after)
    failed = len(log) - faults["none"]
    assert 0.35 <= failed / len(log) <= 0.65, faults
    assert {"429", "500", "timeout", "drop"} <= set(faults), faults
    for api, budget, period in (("/api/v1/", V1_BUDGET, V1_PERIOD), ("/api/v2/", V2_BUDGET, V2_PERIOD)):
        times = [r["time"] for r in log if r["path"].startswith(api)]
        most = most_in_a_window(times, period)
        report.info("%s: %d requests, at most %d in any %s s (budget %d)", api, len(times), most, period, budget)
        assert most <= budget, f"{api}: {most} requests within {period} s, budget {budget}"
        # The budget must have been the bound, or the assertion above proves nothing.
        assert most == budget, f"{api}: the workload never reached the budget ({most} of {budget})"
