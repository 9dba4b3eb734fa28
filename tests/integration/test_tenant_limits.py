"""The tenant's limits across its URL lists with real processes: a fake tenant and a sink whose
tenant-wide entry limit is lowered by environment (``CTE_FAKE_TENANT_URL_ENTRIES_MAX``,
``CTE_TENANT_URL_ENTRIES_MAX``; Netskope documents 300,000). Two sharings whose lists together want more
are kept within it, planned by priority, and the overflow is reported as ``leftOut.tenantLimit``; the
tenant refuses nothing on the way. A namespace of its own (the limit applies to every tenant the sink
pushes to)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration import test_sink_resilience
from tests.integration.test_list_fidelity import fake_tenant, held, status_of
from tests.integration.test_sink_resilience import (
    FakeTenant,
    Namespace,
    Sink,
    destination,
    domains,
    eventually,
    make_source,
    post_domains,
    share,
    sinks,
    start_all,
)

ns = test_sink_resilience.ns  # the module's namespace: a database, topics, an ingest-api and a rule-engine
LIMIT = 10


@pytest.fixture(scope="module")
def tenant(ns: Namespace) -> Iterator[FakeTenant]:
    service, fake = fake_tenant(ns, "limited", CTE_FAKE_TENANT_URL_ENTRIES_MAX=str(LIMIT))
    start_all(service)
    try:
        yield fake
    finally:
        service.stop()


@pytest.fixture(scope="module")
def sink(ns: Namespace, tenant: FakeTenant) -> Iterator[Sink]:
    running = Sink(ns, "limits", f"sink-limits-{ns.env.topic_prefix}", CTE_TENANT_URL_ENTRIES_MAX=str(LIMIT))
    with sinks(running):
        yield running


async def test_two_lists_are_kept_within_the_tenant_entry_limit(ns: Namespace, tenant: FakeTenant, sink: Sink) -> None:
    a = destination(ns, "lim-a", tenant.url)
    b_source, b_list = f"lim-b-src-{a.tenant}", f"lim-b-urls-{a.tenant}"
    make_source(ns, b_source)
    share(ns, b_source, a.configuration, b_list)
    a_values, b_values = domains("lima", 8), domains("limb", 8)
    post_domains(ns, a.source, a_values)
    post_domains(ns, b_source, b_values)

    def within() -> None:
        a_held, b_held = held(tenant, a.list_name), held(tenant, b_list)
        assert len(a_held) + len(b_held) == LIMIT, (a_held, b_held)
        # The newest ten of both (domains() gives later values later lastSeen; a's and b's alternate).
        newest = sorted({**a_values, **b_values}.items(), key=lambda kv: kv[1], reverse=True)[:LIMIT]
        assert a_held | b_held == {v for v, _ in newest}

    await eventually(within)

    def settled() -> None:
        # A list's push can make the other due again (their shares of the tenant's limit are planned
        # together), so a list may still be pending once the tenant holds the final content.
        statuses = [status_of(ns, a.list_name), status_of(ns, b_list)]
        assert sum(s["leftOut"]["tenantLimit"] for s in statuses) == 16 - LIMIT, statuses
        assert {s["state"] for s in statuses} == {"ok"}, statuses

    await eventually(settled)
    within()
    # Nothing the tenant refused on the way.
    assert [r for r in tenant.requests() if r["status"] == 400] == []
