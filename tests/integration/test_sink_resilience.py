"""The netskope-sink's connection settings and its resilience, with real processes:

- SSL verification follows the destination configuration (a fake tenant over HTTPS with a self-signed
  certificate): refused while ``sslValidation`` is on, visibly (``list_state.last_error``), the list staying
  due; pushed once it is turned off.
- The system proxy follows the configuration (``useProxy``) and the tenant (``useSystemProxy``): a real
  forwarding HTTP proxy in this module (CONNECT for HTTPS, absolute-URI requests for HTTP) sees the pushes of
  the lists that use it and none of the others.
- kill -9 of the sink while it pushes a large list, then a restart, changes nothing in the outcome.
- Two sink processes on the same lists give the same outcome as one.
- A push whose answer was lost (the sink killed, or timing out, while the tenant applied it) does not leave a
  stale record of what the tenant holds: the list is marked uncertain before the call and rewritten whole by
  the next push, so a value that should have gone does go.

Proxy and loopback: httpx 0.28 (``trust_env``) bypasses a proxy only for the hosts NO_PROXY/no_proxy name;
it has no implicit loopback exception, so ``127.0.0.1`` goes through HTTP(S)_PROXY. The sinks started here
get NO_PROXY, no_proxy, ALL_PROXY and all_proxy emptied so the developer's environment cannot change that.

Isolation: every sink process flushes every due list of its database, so a sink of the session (the
``pipeline`` fixture, alive for the rest of a full run once a module requested it) would push these lists
too, directly instead of through the proxy. This module therefore runs in a namespace of its own (a
database and a topic prefix on the session's stack) with its own ingest-api and rule-engine, and starts its
sinks and fake tenants itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from cte_common.migrate import upgrade
from cte_common.topics import create_topics
from tests.conftest import Env
from tests.integration.test_api_first_path import token
from tests.integration.test_fake_tenant import self_signed_certificate
from tests.support.processes import Service, free_port
from tests.support.stack import Stack
from tests.support.waiting import eventually as wait_until

RUN = secrets.token_hex(3)
DEFAULT_URL = "cedefaultpush.io"
URLLIST = "/api/v2/policy/urllist"
NO_SYSTEM_PROXY = {"NO_PROXY": "", "no_proxy": "", "ALL_PROXY": "", "all_proxy": ""}


# ---------------------------------------------------------------------------- the namespace


def start_all(*services: Service) -> None:
    """Start processes side by side (each takes seconds to import); stop them all if one does not start."""
    with ThreadPoolExecutor(len(services)) as pool:
        futures = [pool.submit(s.start) for s in services]
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        for s in services:
            s.stop()
        raise RuntimeError(failed)


@dataclass
class Namespace:
    env: Env
    db: asyncpg.Pool[Any]
    api: httpx.Client
    log_dir: Path


@pytest.fixture(scope="module")
async def ns(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Namespace]:
    """A database and topic prefix of this module's own, with an ingest-api and a rule-engine on them."""
    name = "cte_test_sink_" + secrets.token_hex(4)
    admin = await asyncpg.connect(stack.admin_database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    services: list[Service] = []
    pool: asyncpg.Pool[Any] | None = None
    try:
        url = stack.admin_database_url.rpartition("/")[0] + "/" + name
        await asyncio.to_thread(upgrade, url)
        prefix = "s" + secrets.token_hex(4)
        await create_topics(stack.kafka_bootstrap, prefix)
        log_dir = tmp_path_factory.mktemp("sink-resilience")
        env = Env(stack, url, prefix, log_dir)
        api_port, re_port = free_port(), free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        services = [
            Service("cte-ingest-api", env.service_env(CTE_API_PORT=str(api_port)), f"{api_url}/healthz", log_dir),
            Service(
                "cte-rule-engine",
                # Its own group: consumer groups are not namespaced by the topic prefix, and a shared group
                # rebalances with every rule-engine of every namespace on the broker.
                env.service_env(CTE_RULE_ENGINE_METRICS_PORT=str(re_port), CTE_CONSUMER_GROUP=f"rule-engine-{prefix}"),
                f"http://127.0.0.1:{re_port}/metrics",
                log_dir,
            ),
        ]
        await asyncio.to_thread(start_all, *services)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        assert pool is not None
        with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token(api_url)}"}, timeout=60) as api:
            yield Namespace(env, pool, api, log_dir)
    finally:
        if pool is not None:
            await pool.close()
        for service in reversed(services):
            service.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@dataclass
class FakeTenant:
    url: str
    client: httpx.Client

    def faults(self, **faults: Any) -> None:
        self.client.put("/_sim/faults", json=faults).raise_for_status()

    def url_list(self, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.client.get("/_sim/state").json()["urllists"].get(name)
        return found

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self.client.get("/_sim/requests", params={"since": since}).json()["requests"])

    def last_seq(self) -> int:
        seq: int = self.client.get("/_sim/requests").json()["total"]
        return seq


@dataclass
class Tenants:
    http: FakeTenant
    https: FakeTenant  # a self-signed certificate


@pytest.fixture(scope="module")
def tenants(ns: Namespace) -> Iterator[Tenants]:
    """Two fake Netskope tenants for the module (each test uses lists of its own): HTTP, and HTTPS with a
    self-signed certificate."""
    folder = ns.log_dir / "tenants"
    folder.mkdir()
    cert, key = self_signed_certificate(folder)
    http_port, https_port = free_port(), free_port()
    common = {"CTE_LOG_LEVEL": "WARNING", "CTE_FAKE_TENANT_TIMEOUT_SECONDS": "5"}
    http_url, https_url = f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}"
    services = [
        Service(
            "cte-fake-tenant", {**common, "CTE_FAKE_TENANT_PORT": str(http_port)}, f"{http_url}/_sim/healthz", folder
        ),
        Service(
            "cte-fake-tenant",
            {
                **common,
                "CTE_FAKE_TENANT_PORT": str(https_port),
                "CTE_FAKE_TENANT_TLS_CERTFILE": str(cert),
                "CTE_FAKE_TENANT_TLS_KEYFILE": str(key),
            },
            f"{https_url}/_sim/healthz",
            folder,
        ),
    ]
    with pytest.MonkeyPatch.context() as mp:
        # For the readiness probes of this process only: the sinks, started later, must not trust it.
        mp.setenv("SSL_CERT_FILE", str(cert))
        start_all(*services)
    try:
        with (
            httpx.Client(base_url=http_url, timeout=30, trust_env=False) as http,
            httpx.Client(
                base_url=https_url, verify=ssl.create_default_context(cafile=str(cert)), timeout=30, trust_env=False
            ) as https,
        ):
            yield Tenants(FakeTenant(http_url, http), FakeTenant(https_url, https))
    finally:
        for service in services:
            service.stop()


@pytest.fixture(autouse=True)
def no_faults(tenants: Tenants) -> Iterator[None]:
    yield
    tenants.http.faults()
    tenants.https.faults()


class Sink:
    """One netskope-sink process with settings that make failures and retries quick."""

    def __init__(self, ns: Namespace, label: str, group: str, **extra: str) -> None:
        self.metrics_port = free_port()
        folder = ns.log_dir / f"sink-{label}"
        folder.mkdir(exist_ok=True)
        self.service = Service(
            "cte-netskope-sink",
            ns.env.service_env(
                CTE_SINK_METRICS_PORT=str(self.metrics_port),
                CTE_CONSUMER_GROUP=group,
                CTE_FLUSH_INTERVAL_SECONDS="0.3",
                CTE_REQUEST_TIMEOUT_SECONDS="2",
                CTE_REQUEST_ATTEMPTS="2",
                CTE_BACKOFF_MAX_SECONDS="1",
                **NO_SYSTEM_PROXY,
                **extra,
            ),
            f"http://127.0.0.1:{self.metrics_port}/metrics",
            folder,
        )

    def restart_after_kill(self) -> None:
        """Start again in a new consumer group: the killed member would hold the old group's partitions until
        its session times out. Positions live in the database, so nothing is applied twice."""
        self.service.env["CTE_CONSUMER_GROUP"] += "-again"
        self.service.start()

    def assert_started(self) -> None:
        assert "FastStream app started successfully" in self.service.log_tail(400), self.service.log_tail()

    def pushes(self) -> float:
        """Successful list pushes so far, from the process's metrics."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("cte_sink_pushes_total{") and 'outcome="ok"' in line
        )


@contextlib.contextmanager
def sinks(*running: Sink) -> Iterator[None]:
    try:
        start_all(*(s.service for s in running))
        # /metrics answers before the app has joined its consumer group and started its flusher: a
        # test that needs every sink at work waits for that too.
        for sink in running:
            wait_until(lambda sink=sink: sink.assert_started(), timeout=60)
        yield
    finally:
        for sink in running:
            sink.service.stop()


# ---------------------------------------------------------------------------- a forwarding proxy


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    finally:
        dst.close()


class ForwardingProxy:
    """A real HTTP forward proxy on loopback, run by a thread with its own event loop: CONNECT tunnels (HTTPS)
    and absolute-URI requests (HTTP, forwarded with ``Connection: close``). ``forwarded`` lists each tunnel
    and each request it passed on, as (method, target)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.forwarded: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="forwarding-proxy", daemon=True)
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> ForwardingProxy:
        self._thread.start()
        assert self._ready.wait(10), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forward(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines if line)]
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            self.forwarded.append((method, target))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
            return
        url = urlsplit(target)
        lower = {k.lower(): v for k, v in headers}
        if url.scheme != "http" or not url.hostname or "transfer-encoding" in lower:
            writer.write(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        body = await reader.readexactly(int(lower.get("content-length", "0")))
        hop_by_hop = {"connection", "proxy-connection", "keep-alive", "proxy-authorization"}
        kept = "".join(f"{k}: {v}\r\n" for k, v in headers if k.lower() not in hop_by_hop)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        self.forwarded.append((method, target))
        up_writer.write(f"{method} {path} HTTP/1.1\r\n{kept}Connection: close\r\n\r\n".encode("latin-1") + body)
        await up_writer.drain()
        await _pipe(up_reader, writer)  # the tenant closes after its answer
        up_writer.close()


# ---------------------------------------------------------------------------- helpers


def created(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def make_tenant(ns: Namespace, name: str, url: str, *, use_system_proxy: bool = False) -> None:
    body = {"name": name, "tenantName": url, "v1Token": "fake-v1-token", "v2Token": "fake-v2-token"}
    created(ns.api.post("/api/tenants", json={**body, "useSystemProxy": use_system_proxy}))


def make_source(ns: Namespace, name: str) -> None:
    created(ns.api.post("/api/cte/configurations", json={"name": name, "plugin": "api_source", "ageAfterDays": 0}))


def make_destination(ns: Namespace, name: str, tenant: str, **settings: Any) -> None:
    created(
        ns.api.post(
            "/api/cte/configurations",
            json={
                "name": name,
                "plugin": "netskope",
                "tenant": tenant,
                "parameters": {"enablePolling": False},
                **settings,
            },
        )
    )


def share(
    ns: Namespace, source: str, destination: str, list_name: str, cap_mb: float | None = None, action: str = "url"
) -> None:
    params: dict[str, Any] = {"list": "create", "name": list_name} if action == "url" else {"file_list": list_name}
    if cap_mb is not None:
        params["max_url_list_cap"] = cap_mb
    created(
        ns.api.post(
            "/api/cte/sharing",
            json={
                "sourceConfiguration": source,
                "businessRule": "All",
                "destinationConfiguration": destination,
                "action": action,
                "parameters": params,
            },
        )
    )


def post_domains(ns: Namespace, source: str, seen: dict[str, datetime], *, chunk: int = 1000) -> None:
    """Domains of ``source``, each with its own lastSeen (the lists' priority), through the API."""
    items = [
        {"value": v, "type": "domain", "source": source, "severity": "high", "lastSeen": t.isoformat()}
        for v, t in seen.items()
    ]
    for start in range(0, len(items), chunk):
        r = ns.api.post("/api/cte/indicators/", params={"wait": "true"}, json=items[start : start + chunk])
        assert r.status_code == 201, r.text


def delete_values(ns: Namespace, values: list[str]) -> None:
    r = ns.api.request("DELETE", "/api/cte/indicators/bulk", params={"wait": "true"}, json={"values": values})
    assert r.status_code in (200, 201, 204), r.text


def cost(value: str) -> int:
    return len(json.dumps(value)) + 3


def expected_selection(seen: dict[str, datetime], cap_mb: float | None) -> set[str]:
    """The newest values within the cap as the reference counts bytes, computed here independently."""
    cap = None if cap_mb is None else int(cap_mb * 1024 * 1024)
    out, used = set(), 1
    for value, _ in sorted(seen.items(), key=lambda kv: (-kv[1].timestamp(), kv[0])):
        if cap is not None and used + cost(value) > cap:
            break
        used += cost(value)
        out.add(value)
    return out


def domains(label: str, count: int, start: int = 0) -> dict[str, datetime]:
    base = datetime.now(UTC) - timedelta(days=2)
    return {f"d{n:05d}.{label}.example": base + timedelta(seconds=n) for n in range(start, start + count)}


def assert_list_holds(tenant: FakeTenant, name: str, expected: set[str]) -> None:
    """Deployed, nothing pending, each entry once, exactly ``expected`` (the placeholder when empty)."""
    held = tenant.url_list(name)
    assert held is not None, f"{name} is not in the tenant"
    deployed = held["deployed"]
    assert len(deployed) == len(set(deployed)), f"duplicates in {name}"
    assert held["pending"] == deployed, f"{name} has undeployed changes"
    want = expected or {DEFAULT_URL}
    missing, extra = sorted(want - set(deployed)), sorted(set(deployed) - want)
    assert not missing, f"{name} misses {len(missing)}: {missing[:5]}"
    assert not extra, f"{name} holds {len(extra)} too many: {extra[:5]}"


async def until(check: Callable[[], Awaitable[None]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def eventually(check: Callable[[], None], timeout: float = 30.0) -> None:
    async def run() -> None:
        check()

    await until(run, timeout)


async def list_state(ns: Namespace, key: str) -> dict[str, Any]:
    row = await ns.db.fetchrow("SELECT * FROM list_state WHERE list_key = $1", key)
    assert row is not None, f"no list_state for {key}"
    return dict(row)


async def settled(ns: Namespace, key: str) -> None:
    """The sink recorded a push of the list's latest version: it will not call the tenant for it again."""

    async def check() -> None:
        state = await list_state(ns, key)
        assert state["flushed_version"] == state["version"], state

    await until(check)


async def members(ns: Namespace, key: str) -> set[str]:
    return {r["value"] for r in await ns.db.fetch("SELECT value FROM list_members WHERE list_key = $1", key)}


@dataclass(frozen=True)
class Destination:
    """A tenant, a source, a Netskope configuration and one URL list shared from the source, named by ``label``."""

    tenant: str
    source: str
    configuration: str
    list_name: str

    @property
    def key(self) -> str:
        return f"{self.tenant}/url/{self.list_name}"


def destination(
    ns: Namespace,
    label: str,
    url: str,
    *,
    use_system_proxy: bool = False,
    cap_mb: float | None = None,
    **settings: Any,
) -> Destination:
    d = Destination(f"{label}-{RUN}", f"{label}-src-{RUN}", f"{label}-ns-{RUN}", f"{label}-urls-{RUN}")
    make_tenant(ns, d.tenant, url, use_system_proxy=use_system_proxy)
    make_source(ns, d.source)
    make_destination(ns, d.configuration, d.tenant, **settings)
    share(ns, d.source, d.configuration, d.list_name, cap_mb)
    return d


# ---------------------------------------------------------------------------- SSL verification


async def test_ssl_verification_follows_the_configuration(ns: Namespace, tenants: Tenants) -> None:
    tenant = tenants.https
    since = tenant.last_seq()
    with sinks(Sink(ns, "tls", f"sink-tls-{RUN}")):
        d = destination(ns, "tls", tenant.url)  # sslValidation: on by default
        first = domains(f"tls{RUN}", 3)
        post_domains(ns, d.source, first)

        # Verification on: the self-signed certificate is refused, visibly, and the list stays due.
        async def refused() -> None:
            state = await list_state(ns, d.key)
            assert state["failures"] >= 1
            assert "certificate" in (state["last_error"] or "").lower(), state["last_error"]
            assert state["flushed_version"] < state["version"]

        await until(refused)
        await asyncio.sleep(1.5)  # a retry or two later: still refused
        await refused()
        assert tenant.requests(since) == [], "a request got past the failed handshake"
        assert tenant.url_list(d.list_name) is None

        # Verification off: the next attempt pushes (the sink reads the configuration on every flush).
        created(ns.api.patch(f"/api/cte/configurations/{d.configuration}", json={"sslValidation": False}))
        await eventually(lambda: assert_list_holds(tenant, d.list_name, set(first)))
        await settled(ns, d.key)
        state = await list_state(ns, d.key)
        assert (state["last_error"], state["failures"]) == (None, 0)

        # On again: a new value is refused again; off again: it arrives.
        created(ns.api.patch(f"/api/cte/configurations/{d.configuration}", json={"sslValidation": True}))
        second = domains(f"tls{RUN}", 2, start=10)
        post_domains(ns, d.source, second)
        await until(refused)
        assert_list_holds(tenant, d.list_name, set(first))
        created(ns.api.patch(f"/api/cte/configurations/{d.configuration}", json={"sslValidation": False}))
        await eventually(lambda: assert_list_holds(tenant, d.list_name, set(first) | set(second)))
        await settled(ns, d.key)


# ---------------------------------------------------------------------------- system proxy


async def test_the_system_proxy_follows_the_configuration_and_the_tenant(ns: Namespace, tenants: Tenants) -> None:
    http, https = tenants.http, tenants.https
    https_since = https.last_seq()
    with ForwardingProxy() as proxy:
        proxy_env = {"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url, "http_proxy": proxy.url}
        with sinks(Sink(ns, "proxy", f"sink-proxy-{RUN}", **proxy_env, https_proxy=proxy.url)):
            # Neither the tenant nor the configuration uses the proxy: direct, although the sink has one.
            off = destination(ns, "px-off", http.url)
            off_values = domains(f"pxoff{RUN}", 3)
            post_domains(ns, off.source, off_values)
            await eventually(lambda: assert_list_holds(http, off.list_name, set(off_values)))
            await settled(ns, off.key)
            assert proxy.forwarded == []
            direct_until = http.last_seq()

            # The tenant's "Use System Proxy" (HTTP: absolute-URI requests).
            by_tenant = destination(ns, "px-sys", http.url, use_system_proxy=True)
            # The configuration's "Use Proxy" (HTTPS: a CONNECT tunnel; the certificate is not verified).
            by_config = destination(ns, "px-cfg", https.url, useProxy=True, sslValidation=False)
            tenant_values, config_values = domains(f"pxsys{RUN}", 3), domains(f"pxcfg{RUN}", 3)
            post_domains(ns, by_tenant.source, tenant_values)
            post_domains(ns, by_config.source, config_values)
            await eventually(lambda: assert_list_holds(http, by_tenant.list_name, set(tenant_values)))
            await eventually(lambda: assert_list_holds(https, by_config.list_name, set(config_values)))
            await settled(ns, by_tenant.key)
            await settled(ns, by_config.key)

            http_host, https_host = urlsplit(http.url).netloc, urlsplit(https.url).netloc
            forwarded = list(proxy.forwarded)
            tunnels = [t for m, t in forwarded if m == "CONNECT"]
            requests = [(m, urlsplit(t)) for m, t in forwarded if m != "CONNECT"]
            assert tunnels, forwarded
            assert set(tunnels) == {https_host}
            assert {u.netloc for _, u in requests} == {http_host}
            assert {(m, u.path) for m, u in requests} >= {
                ("GET", URLLIST),
                ("POST", URLLIST),
                ("POST", f"{URLLIST}/deploy"),
            }
            # Every call the HTTP tenant received since the direct list was pushed came through the proxy.
            received = sorted((r["method"], r["path"]) for r in http.requests(direct_until))
            assert received == sorted((m, u.path) for m, u in requests)
            assert https.requests(https_since), "nothing reached the HTTPS tenant through the tunnel"

            # Turning the tenant's proxy on is seen at the next push.
            created(ns.api.patch(f"/api/tenants/{off.tenant}", json={"useSystemProxy": True}))
            before = len(proxy.forwarded)
            more = domains(f"pxoff{RUN}", 2, start=10)
            post_domains(ns, off.source, more)
            await eventually(lambda: assert_list_holds(http, off.list_name, set(off_values) | set(more)))
            assert len(proxy.forwarded) > before


# ---------------------------------------------------------------------------- restart mid-flush


async def test_kill_during_a_large_push_changes_nothing_in_the_outcome(ns: Namespace, tenants: Tenants) -> None:
    tenant = tenants.http
    cap_mb = 0.05  # 52,428 bytes: some 1,940 of the 3,000 values
    sink = Sink(ns, "crash", f"sink-crash-{RUN}")
    with sinks(sink):
        # Hold the pushes back (every call fails) until all the intents are in: one large push.
        tenant.faults(rate_500=1.0)
        d = destination(ns, "crash", tenant.url, cap_mb=cap_mb)
        seen = domains(f"crash{RUN}", 3000)
        post_domains(ns, d.source, seen)
        expected = expected_selection(seen, cap_mb)
        assert 1500 < len(expected) < 2500

        async def all_members() -> None:
            assert await members(ns, d.key) == set(seen)

        async def kill_mid_push(phase: str) -> None:
            await until(all_members)
            # Each call now takes 300 ms: kill -9 once the list has an undeployed change in the tenant.
            tenant.faults(latency_ms=300)
            deadline = time.monotonic() + 30
            while not (tenant.url_list(d.list_name) or {}).get("has_pending_change"):
                assert time.monotonic() < deadline, f"{phase}: no push started"
                await asyncio.sleep(0.02)
            sink.service.kill()
            state = await list_state(ns, d.key)
            assert state["flushed_version"] < state["version"], f"{phase}: the push was recorded already"
            sink.restart_after_kill()

        await kill_mid_push("create")
        await eventually(lambda: assert_list_holds(tenant, d.list_name, expected), timeout=40)
        await settled(ns, d.key)

        # Newer values move the cut and deleted ones leave: a replace, killed while pending too.
        tenant.faults(rate_500=1.0)
        newer = domains(f"crash{RUN}", 400, start=5000)
        doomed = sorted(expected)[-50:]
        post_domains(ns, d.source, newer)
        delete_values(ns, doomed)
        seen |= newer
        for value in doomed:
            del seen[value]
        expected = expected_selection(seen, cap_mb)
        assert set(newer) <= expected
        await kill_mid_push("replace")
        await eventually(lambda: assert_list_holds(tenant, d.list_name, expected), timeout=40)
        await settled(ns, d.key)
        assert (await list_state(ns, d.key))["entries"] == len(expected)


# ---------------------------------------------------------------------------- two sink processes


async def test_two_sink_processes_give_the_same_outcome(ns: Namespace, tenants: Tenants) -> None:
    tenant = tenants.http
    since = tenant.last_seq()
    caps: dict[str, float | None] = {"all": None, "half": 0.006, "quarter": 0.003}
    source = f"two-src-{RUN}"
    tenant.faults(latency_ms=40)  # pushes overlap in time
    first, second = Sink(ns, "two-a", f"sink-two-{RUN}"), Sink(ns, "two-b", f"sink-two-{RUN}")
    with sinks(first, second):
        make_source(ns, source)
        lists: dict[str, float | None] = {}
        for t in ("a", "b"):
            make_tenant(ns, f"two-{t}-{RUN}", tenant.url)
            make_destination(ns, f"two-ns-{t}-{RUN}", f"two-{t}-{RUN}")
            for label, cap in caps.items():
                lists[f"two-{t}-{label}-{RUN}"] = cap
                share(ns, source, f"two-ns-{t}-{RUN}", f"two-{t}-{label}-{RUN}", cap)
        seen: dict[str, datetime] = {}
        for wave in range(3):
            batch = domains(f"two{RUN}", 150, start=wave * 1000)
            post_domains(ns, source, batch)
            seen |= batch
            doomed = sorted(seen)[wave * 7 :: 11]
            delete_values(ns, doomed)
            for value in doomed:
                del seen[value]
            await asyncio.sleep(0.3)

        def converged() -> None:
            for name, cap in lists.items():
                assert_list_holds(tenant, name, expected_selection(seen, cap))

        await eventually(converged, timeout=40)

        # Which of the two pushed what above is up to timing: one's flusher can win every lock. Each then
        # pushes a wave alone, the other stopped (gracefully: its partitions and locks are let go at once),
        # so both are seen to push onto the lists the two of them built.
        for wave, (alone, stopped) in enumerate(((first, second), (second, first)), start=3):
            stopped.service.stop()
            before = alone.pushes()
            batch = domains(f"two{RUN}", 40, start=wave * 1000)
            post_domains(ns, source, batch)
            seen |= batch
            await eventually(converged, timeout=40)
            assert alone.pushes() > before
            stopped.service.start()
    log = tenant.requests(since)
    errors = [(r["method"], r["path"], r["status"]) for r in log if r["status"] is None or r["status"] >= 400]
    assert errors == []
    creates = [r for r in log if (r["method"], r["path"]) == ("POST", URLLIST)]
    assert len(creates) == len(lists), "a list was created more than once"


# ---------------------------------------------------------------------------- a lost answer


async def test_kill_while_the_deploy_answer_is_held_then_a_removal(ns: Namespace, tenants: Tenants) -> None:
    tenant = tenants.http
    sink = Sink(ns, "lost", f"sink-lost-{RUN}")
    with sinks(sink):
        d = destination(ns, "lost", tenant.url)
        kept = domains(f"lost{RUN}", 2)
        post_domains(ns, d.source, kept)
        await eventually(lambda: assert_list_holds(tenant, d.list_name, set(kept)))
        await settled(ns, d.key)

        # The deploy runs but its answer never comes back in time; the sink dies waiting for it.
        tenant.faults(rate_timeout=1.0, timeout_seconds=5, paths=[f"{URLLIST}/deploy"])
        late = domains(f"lost{RUN}", 1, start=10)
        post_domains(ns, d.source, late)
        await eventually(lambda: assert_list_holds(tenant, d.list_name, set(kept) | set(late)))
        sink.service.kill()

        # The late value goes again before the sink is back; the tenant refuses every call until the
        # restarted sink has taken the removal in, so the push that goes through knows of it.
        tenant.faults(rate_500=1.0)
        delete_values(ns, list(late))
        sink.restart_after_kill()

        async def removal_applied() -> None:
            assert await members(ns, d.key) == set(kept)

        await until(removal_applied)
        # A round that began before the removal was applied may still be failing; the one after it began
        # later. Let two rounds fail, then let the next one through.
        failures = (await list_state(ns, d.key))["failures"]

        async def two_more_failures() -> None:
            assert (await list_state(ns, d.key))["failures"] >= failures + 2

        await until(two_more_failures)
        tenant.faults()
        await settled(ns, d.key)
        assert_list_holds(tenant, d.list_name, set(kept))
