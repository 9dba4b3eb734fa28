"""Netskope alert polling end to end: alerts queued in the fake tenant's export become indicators of
the polling configuration (comments as the reference builds them, internal hits), and every alert is
taken exactly once across kill -9 of the polling sink, lost tenant answers and interrupted publishes.

The pipeline's sink polls every 10 s; this module starts a second sink that polls every 0.5 s (the
advisory lock per iterator keeps the two apart) and kills it mid-stream. The crash windows a kill
cannot be aimed at (between a publish and its checkpoint, half-way through a publish, after the tenant
moved its cursor but before its answer arrived) are reproduced in-process, deterministically, with a
Poller holding the iterator's lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from cte_common.db import create_pool
from cte_common.kafka import make_broker, publish_all
from cte_common.topics import Topics
from netskope_sink.alerts import handlers as polling
from netskope_sink.alerts import repository as polling_repository
from netskope_sink.alerts.domain import iterator_index
from netskope_sink.alerts.handlers import Poller
from netskope_sink.alerts.schemas import Target, targets_from_rows
from netskope_sink.settings import Settings
from netskope_sink.tenant.client import TenantUnavailable
from tests.conftest import SECRETS_KEY, Env, Pipeline
from tests.integration.test_api_first_path import token
from tests.support.processes import Service, free_port
from tests.support.waiting import eventually

RUN = secrets.token_hex(3)
TENANT = f"poll-tenant-{RUN}"


def md5(text: str) -> str:
    return hashlib.md5(f"{RUN}:{text}".encode()).hexdigest()  # noqa: S324 (test data, not security)


def sha256(text: str) -> str:
    return hashlib.sha256(f"{RUN}:{text}".encode()).hexdigest()


@pytest.fixture(scope="module")
def api(pipeline: Pipeline) -> Iterator[httpx.Client]:
    client = httpx.Client(
        base_url=pipeline.api_url, headers={"Authorization": f"Bearer {token(pipeline.api_url)}"}, timeout=30
    )
    r = client.post(
        "/api/tenants",
        json={
            "name": TENANT,
            "tenantName": pipeline.tenant_url,
            "v1Token": "fake-v1-token",
            "v2Token": "fake-v2-token",
        },
    )
    assert r.status_code == 201, r.text
    created: list[str] = []
    client.created = created  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        # Stop polling, so the sinks leave the shared fake tenant alone for the modules that follow.
        for name in created:
            client.patch(f"/api/cte/configurations/{name}", json={"active": False})
        client.close()


@pytest.fixture(scope="module")
def tenant(pipeline: Pipeline) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=pipeline.tenant_url, timeout=30)
    reset(client)
    try:
        yield client
    finally:
        client.put("/_sim/faults", json={}).raise_for_status()
        client.post("/_sim/reset").raise_for_status()  # the export's configured settings again
        client.close()


# A caught-up iterator is polled again after the tenant's wait_time: 1 s here (30 s by default).
WAIT_TIME = 1


def reset(tenant: httpx.Client) -> None:
    tenant.post("/_sim/reset").raise_for_status()
    tenant.put("/_sim/export", json={"wait_time": WAIT_TIME}).raise_for_status()


@pytest.fixture(scope="module")
def poll_sink(env: Env, pipeline: Pipeline) -> Iterator[Service]:
    """A second netskope-sink that polls every 0.5 s (and gives up on a tenant answer after 1.5 s)."""
    port = free_port()
    sink = Service(
        "cte-netskope-sink",
        env.service_env(
            CTE_SINK_METRICS_PORT=str(port),
            CTE_POLL_INTERVAL_SECONDS="0.5",
            CTE_POLL_REQUEST_TIMEOUT_SECONDS="1.5",
            CTE_POLL_PUBLISH_SETTLE_SECONDS="2",
            CTE_FLUSH_INTERVAL_SECONDS="0.5",
            CTE_REQUEST_TIMEOUT_SECONDS="1.5",
            CTE_BACKOFF_MAX_SECONDS="2",
        ),
        f"http://127.0.0.1:{port}/metrics",
        env.log_dir,
    ).start()
    try:
        yield sink
    finally:
        sink.stop()


def configure(api: httpx.Client, name: str, **parameters: Any) -> None:
    body = {
        "name": name,
        "plugin": "netskope",
        "tenant": TENANT,
        "reputation": 7,
        "parameters": {"enablePolling": True, "threatDataTypes": "Both", **parameters},
    }
    r = api.post("/api/cte/configurations", json=body)
    assert r.status_code == 201, r.text
    api.created.append(name)  # type: ignore[attr-defined]


async def stop_polling(api: httpx.Client, database_url: str, name: str) -> None:
    """Deactivate ``name`` and wait out a drain of its iterators already under way: pollers read the
    configuration again under the iterator's lock, so once that lock has been free, none polls it."""
    assert api.patch(f"/api/cte/configurations/{name}", json={"active": False}).status_code == 200
    conn = await asyncpg.connect(database_url)
    try:
        for alert_type in ("malware", "malsite"):
            await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 11))", f"poll:{alert_type}:{name}")
            await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 11))", f"poll:{alert_type}:{name}")
    finally:
        await conn.close()


def enqueue(tenant: httpx.Client, kind: str, alerts: list[dict[str, Any]]) -> None:
    r = tenant.post("/_sim/alerts", json={"type": kind, "alerts": alerts})
    assert r.status_code == 200, r.text


def indicators_of(api: httpx.Client, source: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    filters = '{"sources": {"$elemMatch": {"source": "%s"}}}' % source  # noqa: UP031
    skip = 0
    while True:
        r = api.get("/api/cte/indicators/", params={"filters": filters, "limit": 100, "skip": skip, "sort": "value"})
        assert r.status_code == 200, r.text
        page = r.json()
        out.update({i["value"]: i for i in page})
        if len(page) < 100:
            return out
        skip += 100


def source_entry(indicator: dict[str, Any], source: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [s for s in indicator["sources"] if s["source"] == source]
    (entry,) = entries
    return entry


def seen(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def checkpoint_alerts(db: asyncpg.Pool[Any], configuration: str) -> int:
    """Alerts taken from the configuration's iterators, as their checkpoints count them."""
    sql = "SELECT coalesce(sum(alerts), 0) FROM poll_checkpoints WHERE configuration = $1"
    return int(await db.fetchval(sql, configuration))


async def wait_for_alerts(db: asyncpg.Pool[Any], configuration: str, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    taken = await checkpoint_alerts(db, configuration)
    while taken < at_least and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        taken = await checkpoint_alerts(db, configuration)
    return taken


# ---------------------------------------------------------------------------- conversion, end to end


def test_polled_alerts_become_indicators_with_the_reference_comments(
    api: httpx.Client, tenant: httpx.Client, poll_sink: Service, pipeline: Pipeline, env: Env
) -> None:
    name = f"poll-both-{RUN}"
    now = int(time.time())
    hour_ago = now - 3600
    old = now - 3 * 86400  # before the initial range of 1 day: never taken
    alerts_malware = [
        {
            "timestamp": hour_ago,
            "severity": "High",
            "object": "invoice.exe",
            "malware_name": "W32.Trojan",
            "malware_type": "Trojan",
            "md5": md5("a"),
            "local_md5": md5("a"),
            "sha256": sha256("a"),
            "local_sha256": sha256("a").upper(),  # the same hash in another case: one indicator
        },
        {
            "timestamp": now,
            "severity": "bogus",
            "object": "dropper.js",
            "md5": md5("b"),
            "local_md5": md5("b-local"),
            "sha256": "not-a-sha256",  # invalid: skipped
            "local_sha256": None,
        },
        {"timestamp": old, "severity": "low", "object": "old.exe", "md5": md5("old"), "sha256": sha256("old")},
    ]
    alerts_malsite = [
        {
            "timestamp": hour_ago,
            "severity": "critical",
            "url": f"phish-{RUN}.example/login",
            "malsite_category": ["Phishing", "Scam/Fraud"],
        },
        {"timestamp": old, "severity": "low", "url": f"old-{RUN}.example/"},
    ]
    # Queued before the configuration exists: the initial range decides what is taken.
    enqueue(tenant, "malware", alerts_malware)
    enqueue(tenant, "malsite", alerts_malsite)
    configure(api, name, initialRangeDays=1)

    label = pipeline.tenant_url
    malware_a = f"{label} - invoice.exe, Malware Name: W32.Trojan, Malware Type: Trojan"
    expected = {
        md5("a"): ("md5", "high", hour_ago, malware_a),
        sha256("a"): ("sha256", "high", hour_ago, malware_a),
        md5("b"): ("md5", "unknown", now, f"{label} - dropper.js"),
        md5("b-local"): ("md5", "unknown", now, f"{label} - dropper.js"),
        f"phish-{RUN}.example/login": ("url", "critical", hour_ago, f"{label} - Phishing, Scam/Fraud"),
    }

    def all_there() -> dict[str, dict[str, Any]]:
        found = indicators_of(api, name)
        assert set(found) == set(expected)
        return found

    found = eventually(all_there, timeout=60)
    for value, (kind, severity, ts, comments) in expected.items():
        indicator = found[value]
        entry = source_entry(indicator, name)
        assert indicator["type"] == kind
        assert indicator["internalHits"] == 1
        assert indicator["externalHits"] == 0
        assert entry["comments"] == comments
        assert entry["severity"] == severity
        assert entry["reputation"] == 7  # the configuration's Override Reputation
        assert seen(entry["firstSeen"]) == seen(entry["lastSeen"]) == ts
        assert indicator["active"] is True
        assert indicator["expiresAt"] is not None  # ageAfterDays 90 from ingest, like an API POST

    # A second alert carrying a known hash is a second internal hit; nothing else changes.
    enqueue(tenant, "malware", [{"severity": "medium", "object": "again.exe", "md5": md5("a")}])

    def hit_twice() -> None:
        indicator = indicators_of(api, name)[md5("a")]
        assert indicator["internalHits"] == 2
        assert source_entry(indicator, name)["comments"] == f"{label} - again.exe"  # the latest sighting's

    eventually(hit_twice, timeout=60)
    assert indicators_of(api, name).keys() == expected.keys()
    # Done: the alerts of the next tests are not this configuration's.
    asyncio.run(stop_polling(api, env.database_url, name))


# ---------------------------------------------------------------------------- exactly once, kill -9


async def test_every_alert_is_taken_exactly_once_across_kills_and_lost_answers(
    api: httpx.Client, tenant: httpx.Client, poll_sink: Service, db: asyncpg.Pool[Any], env: Env
) -> None:
    name = f"poll-crash-{RUN}"
    rng = random.Random(7)
    hashes = [(md5(f"c{i}"), sha256(f"c{i}")) for i in range(40)]
    urls = [f"crash-{RUN}-{i}.example/p" for i in range(40)]
    expected: Counter[str] = Counter()
    chunks: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
    for c in range(8):
        malware, malsite = [], []
        for i in range(400):
            m, s = rng.choice(hashes)
            malware.append({"severity": "high", "object": f"f{c}-{i}.exe", "md5": m, "sha256": s})
            expected.update([m, s])
            url = rng.choice(urls)
            malsite.append({"severity": "medium", "url": url, "malsite_category": ["Malware"]})
            expected[url] += 1
        chunks.append((malware, malsite))
    total = sum(len(m) + len(s) for m, s in chunks)

    # Only this test's alerts in the export (the configuration takes the last 7 days).
    reset(tenant)
    # Lost answers on the export only: 500s, drops, and timeouts after the tenant moved its cursor.
    r = tenant.put(
        "/_sim/faults",
        json={"rate_500": 0.1, "rate_drop": 0.05, "rate_timeout": 0.1, "paths": ["/api/v2/events/"], "seed": 11},
    )
    assert r.status_code == 200, r.text
    configure(api, name)
    taken_at_kills: list[int] = []
    try:
        for c, (malware, malsite) in enumerate(chunks):
            enqueue(tenant, "malware", malware)
            enqueue(tenant, "malsite", malsite)
            if c in (1, 3, 5):
                # Mid-stream: some alerts taken, more queued and more to come.
                await wait_for_alerts(db, name, 1, 60)
                await asyncio.sleep(rng.uniform(0.0, 0.6))
                poll_sink.kill()
                taken_at_kills.append(await checkpoint_alerts(db, name))
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                await asyncio.to_thread(poll_sink.start)
    finally:
        tenant.put("/_sim/faults", json={}).raise_for_status()
        if poll_sink.proc is None or poll_sink.proc.poll() is not None:
            await asyncio.to_thread(poll_sink.start)
    assert any(0 < n < total for n in taken_at_kills), taken_at_kills

    await wait_for_alerts(db, name, total, 120)
    assert await checkpoint_alerts(db, name) == total  # every alert taken once, none twice

    def exactly_once() -> None:
        found = indicators_of(api, name)
        assert set(found) == set(expected), f"missing {len(set(expected) - set(found))}"
        hits = {v: (found[v]["internalHits"], source_entry(found[v], name)["internalHits"]) for v in expected}
        wrong = {v: (h, expected[v]) for v, h in hits.items() if h != (expected[v], expected[v])}
        assert not wrong, wrong

    await asyncio.to_thread(eventually, exactly_once, 120)
    state = tenant.get("/_sim/state").json()
    assert state["alerts"]["malware"] >= 8 * 400
    assert not await db.fetchval("SELECT bool_or(pending) FROM poll_checkpoints WHERE configuration = $1", name)
    # Done: the alerts of the next test are not this configuration's.
    await stop_polling(api, env.database_url, name)


# ---------------------------------------------------------------------------- the crash windows, in-process


@pytest.fixture
async def in_process(env: Env, api: httpx.Client) -> AsyncIterator[dict[str, Any]]:
    settings = Settings(
        kafka_bootstrap=env.stack.kafka_bootstrap,
        database_url=env.database_url,
        topic_prefix=env.topic_prefix,
        secrets_key=SecretStr(SECRETS_KEY),
        poll_request_timeout_seconds=5,
        poll_publish_settle_seconds=0,
        request_attempts=3,
        backoff_max_seconds=1,
    )
    pool = await create_pool(settings)
    broker = make_broker(settings, client_id="poll-window-test")
    await broker.start()
    pollers: list[Poller] = []

    def poller() -> Poller:
        p = Poller(settings, pool, broker, Topics(env.topic_prefix))
        pollers.append(p)
        return p

    try:
        yield {"pool": pool, "poller": poller}
    finally:
        for p in pollers:
            await p.close()
        await broker.stop()
        await pool.close()


async def window_target(pool: Any, name: str) -> Target:
    async with pool.acquire() as conn:
        rows = await polling_repository.polled_configurations(conn)
    (target,) = [t for t in targets_from_rows(rows) if t.name == name]
    return target


async def drain(poller: Poller, conn: Any, target: Target) -> int:
    """One poll of the iterator as a freshly started process would do it, on the test's connection,
    which holds the iterator's lock for the whole test: the sink processes keep out of it."""
    return await poller._drain(conn, poller._client(target), target, "lastSeen")


async def test_interrupted_pages_are_finished_without_duplicates(
    api: httpx.Client,
    tenant: httpx.Client,
    in_process: dict[str, Any],
    db: asyncpg.Pool[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = in_process["pool"]
    name = f"poll-window-{RUN}"
    urls = [f"window-{RUN}-{i}.example/x" for i in range(12)]
    async with pool.acquire() as conn:
        # Locked before the configuration exists, so only this test ever polls the iterator.
        await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 11))", f"poll:malsite:{name}")
        try:
            await windows(api, tenant, in_process, db, conn, name, urls, monkeypatch)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 11))", f"poll:malsite:{name}")


async def windows(
    api: httpx.Client,
    tenant: httpx.Client,
    in_process: dict[str, Any],
    db: asyncpg.Pool[Any],
    conn: Any,
    name: str,
    urls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # initialRangeDays 0: the alerts of the tests before are older than the iterator. The fake tenant
    # stamps alerts in whole seconds and the iterator starts at the second it is seeded: alerts posted
    # within that second would be delivered too, so it is seeded in the next one.
    await asyncio.sleep(1 - time.time() % 1)
    configure(api, name, threatDataTypes="URL", initialRangeDays=0)
    target = await window_target(in_process["pool"], name)
    assert target.lock_name == f"poll:malsite:{name}"
    assert await drain(in_process["poller"](), conn, target) == 0

    def alerts(values: list[str]) -> list[dict[str, Any]]:
        return [{"severity": "low", "url": u, "malsite_category": ["Phishing"]} for u in values]

    # 1. Published, then the process dies before the checkpoint commit.
    enqueue(tenant, "malsite", alerts(urls[0:4]))
    crashing = in_process["poller"]()

    async def die(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed between publish and commit")

    monkeypatch.setattr(crashing, "_commit", die)
    with pytest.raises(RuntimeError):
        await drain(crashing, conn, target)
    assert await db.fetchval("SELECT pending FROM poll_checkpoints WHERE configuration = $1", name)
    assert await drain(in_process["poller"](), conn, target) == 4  # recovered: found on the topic, not re-sent

    # 2. Half of a page's sends landed, then the publish failed.
    enqueue(tenant, "malsite", alerts(urls[4:10]))
    real_publish = publish_all

    async def half(broker: Any, topic: str, messages: Any) -> Any:
        items = list(messages)
        await real_publish(broker, topic, items[: len(items) // 2])
        raise RuntimeError("broker went away half-way")

    with monkeypatch.context() as patched:
        patched.setattr(polling, "publish_all", half)
        with pytest.raises(RuntimeError):
            await drain(in_process["poller"](), conn, target)
    assert await drain(in_process["poller"](), conn, target) == 6  # the other half published now

    # 3. The tenant moved its cursor but its answer was lost: once inside a round (a timeout), once
    # because the process died right after the call.
    enqueue(tenant, "malsite", alerts(urls[10:11]))
    losing = in_process["poller"]()
    client = losing._client(target)
    real_once = client.request_once
    lost = 0

    async def lose_first_answer(*args: Any, **kwargs: Any) -> httpx.Response:
        nonlocal lost
        response: httpx.Response = await real_once(*args, **kwargs)
        if lost == 0 and response.json().get("result"):
            lost += 1
            raise TenantUnavailable(None, "ReadTimeout: the answer never arrived")
        return response

    monkeypatch.setattr(client, "request_once", lose_first_answer)
    assert await drain(losing, conn, target) == 1  # taken from the resend
    assert lost == 1
    enqueue(tenant, "malsite", alerts(urls[11:12]))
    dying = in_process["poller"]()
    cp = await dying._checkpoint(conn, target)
    assert not cp.next_sent  # nothing broken: a drain would go straight to `next`
    gone = await dying._next(conn, dying._client(target), target, cp)
    assert len(gone.alerts) == 1  # answered to a process that died before taking it
    assert await drain(in_process["poller"](), conn, target) == 1  # the next drain's resend takes it
    assert await drain(in_process["poller"](), conn, target) == 0  # and nothing is taken twice

    def once_each() -> None:
        found = indicators_of(api, name)
        assert set(found) == set(urls)
        hits = {v: (found[v]["internalHits"], source_entry(found[v], name)["internalHits"]) for v in urls}
        assert hits == dict.fromkeys(urls, (1, 1))

    await asyncio.to_thread(eventually, once_each, 60)
    row = await db.fetchrow("SELECT * FROM poll_checkpoints WHERE configuration = $1", name)
    assert row is not None
    assert (row["alerts"], row["indicators"], row["pending"], row["started"]) == (12, 12, False, True)


# ---------------------------------------------------------------------------- pacing


EXPORT = "/api/v2/events/dataexport/alerts/"


def export_requests(tenant: httpx.Client, since: int) -> list[dict[str, Any]]:
    r = tenant.get("/_sim/requests", params={"since": since, "path_prefix": EXPORT})
    assert r.status_code == 200, r.text
    requests: list[dict[str, Any]] = r.json()["requests"]
    return requests


def last_seq(tenant: httpx.Client) -> int:
    return int(tenant.get("/_sim/requests", params={"path_prefix": "/nothing"}).json()["total"])


def assert_within_the_rate_limit(requests: list[dict[str, Any]]) -> None:
    """Netskope allows 4 requests per second per dataexport endpoint: no 5 calls to one endpoint within
    a second, by the tenant's arrival times, and no 429."""
    for endpoint in {r["path"] for r in requests}:
        times = sorted(r["time"] for r in requests if r["path"] == endpoint)
        spans = [later - earlier for earlier, later in zip(times, times[4:], strict=False)]
        assert not spans or min(spans) >= 1.0, (endpoint, min(spans))
    assert not [r for r in requests if r["status"] == 429]


class Call(NamedTuple):
    operation: str
    status: int | None
    time: float
    seq: int


def operations(requests: list[dict[str, Any]], index: str) -> list[Call]:
    """The calls on one iterator, in order."""
    out = []
    for r in requests:
        query = dict(part.split("=", 1) for part in r["query"].split("&") if "=" in part)
        if query.get("index") == index:
            out.append(Call(query["operation"], r["status"], r["time"], r["seq"]))
    return out


def assert_resend_only_after_a_broken_page(ops: list[Call]) -> int:
    """Every `resend` follows a call that failed (no answer taken) since the last page taken; answers
    how many resends there were."""
    broken, resends = False, 0
    for operation, status, _, _ in ops:
        if operation == "resend":
            assert broken, ops
            resends += 1
            broken = status != 200
        else:
            broken = status != 200
    return resends


async def wait_started(db: asyncpg.Pool[Any], configuration: str) -> None:
    deadline = time.monotonic() + 30
    sql = "SELECT count(*) FILTER (WHERE started) FROM poll_checkpoints WHERE configuration = $1"
    while await db.fetchval(sql, configuration) < 2:
        assert time.monotonic() < deadline, "the iterators were never seeded"
        await asyncio.sleep(0.2)


async def test_the_poller_keeps_to_the_rate_limit_and_wait_time_and_resends_only_broken_pages(
    api: httpx.Client, tenant: httpx.Client, poll_sink: Service, db: asyncpg.Pool[Any], env: Env
) -> None:
    name = f"poll-pace-{RUN}"
    wait_time = 3
    # Small pages, so a backlog takes many calls: without pacing, a drain would send them at once.
    r = tenant.put("/_sim/export", json={"page_size": 20, "wait_time": wait_time})
    assert r.status_code == 200, r.text
    try:
        configure(api, name, initialRangeDays=0)
        await wait_started(db, name)
        since = last_seq(tenant)
        enqueue(tenant, "malware", [{"md5": md5(f"pace{i}"), "object": "p.exe"} for i in range(300)])
        enqueue(tenant, "malsite", [{"url": f"pace-{RUN}-{i}.example/p"} for i in range(300)])
        assert await wait_for_alerts(db, name, 600, 90) == 600
        done = last_seq(tenant)
        await asyncio.sleep(2 * wait_time + 1)  # caught up: polled again only every wait_time

        requests = export_requests(tenant, since)
        assert_within_the_rate_limit(requests)
        for alert_type in ("malware", "malsite"):
            ops = operations(requests, iterator_index(name, alert_type))
            assert len([o for o in ops if o.operation == "next" and o.status == 200]) >= 15  # pages of 20
            assert assert_resend_only_after_a_broken_page(ops) == 0  # nothing broke: no resend at all
            # From the call that answered the last page (wait_time 3) on, calls are wait_time apart.
            last_page = max(i for i, o in enumerate(ops) if o.seq <= done)
            paced = [o.time for o in ops[last_page:]]
            assert len(paced) >= 2, ops
            gaps = [b - a for a, b in itertools.pairwise(paced)]
            assert min(gaps) >= wait_time - 0.05, gaps

        # Broken pages: some calls fail (500, dropped connections); each is recovered with `resend`.
        r = tenant.put("/_sim/faults", json={"rate_500": 0.2, "rate_drop": 0.05, "paths": [EXPORT], "seed": 5})
        assert r.status_code == 200, r.text
        tenant.put("/_sim/export", json={"wait_time": 0}).raise_for_status()
        since = last_seq(tenant)
        enqueue(tenant, "malware", [{"md5": md5(f"broken{i}"), "object": "b.exe"} for i in range(300)])
        enqueue(tenant, "malsite", [{"url": f"broken-{RUN}-{i}.example/b"} for i in range(300)])
        assert await wait_for_alerts(db, name, 1200, 120) == 1200  # each once (the counts would pass it)
        tenant.put("/_sim/faults", json={}).raise_for_status()
        requests = export_requests(tenant, since)
        assert_within_the_rate_limit(requests)
        resends = sum(
            assert_resend_only_after_a_broken_page(operations(requests, iterator_index(name, t)))
            for t in ("malware", "malsite")
        )
        assert resends > 0  # the faults broke pages, and resend recovered them
    finally:
        tenant.put("/_sim/faults", json={}).raise_for_status()
        tenant.put("/_sim/export", json={"page_size": 10_000, "wait_time": WAIT_TIME}).raise_for_status()
        await stop_polling(api, env.database_url, name)
