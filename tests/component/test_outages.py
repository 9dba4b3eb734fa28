"""The API while Kafka or PostgreSQL cannot be reached: 503 with Retry-After naming the dependency, never a
500, a write answered within CTE_PUBLISH_TIMEOUT_SECONDS, /readyz telling it while /healthz does not, and
the same requests served again once the dependency is back.

The API runs in process with its connections through TCP proxies (tests/support/tcpproxy.py) that the
test cuts and closes: the dependency is really unreachable (connections reset, new ones refused), not a
stand-in. PostgreSQL is reached through its proxy from the start. The broker advertises its own port, so
after the start the producer's broker addresses are turned to the Kafka proxy's, and its connections
closed: from then on every connection it opens goes through the proxy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from cte_common.kafka import PatientKafkaBroker
from ingest_api.main import create_app
from ingest_api.settings import Settings
from tests.conftest import BOOTSTRAP_ID, BOOTSTRAP_SECRET, JWT_SECRET, SECRETS_KEY, Env
from tests.support.processes import free_port
from tests.support.tcpproxy import TcpProxy

PUBLISH_TIMEOUT = 2.0


@dataclass
class Outages:
    api: httpx.AsyncClient
    kafka: TcpProxy
    postgres: TcpProxy


def _through(proxy: TcpProxy, producer: AIOKafkaProducer) -> None:
    """Every broker the producer knows addressed at the proxy, now and after each metadata update (which
    brings the advertised addresses back); its open connections closed."""
    client: Any = producer.client
    cluster = client.cluster
    update = cluster.update_metadata

    def redirect() -> None:
        for node_id, broker in list(cluster._brokers.items()):
            cluster._brokers[node_id] = broker._replace(host=proxy.host, port=proxy.listen_port)

    def update_then_redirect(metadata: Any) -> None:
        update(metadata)
        redirect()

    cluster.update_metadata = update_then_redirect
    redirect()
    for conn in list(client._conns.values()):
        conn.close(reason=None)


@pytest.fixture(scope="module")
async def outages(env: Env) -> AsyncIterator[Outages]:
    pg_host_port, _, database = env.database_url.rpartition("@")[2].partition("/")
    kafka_port = int(env.stack.kafka_bootstrap.rpartition(":")[2])
    postgres = TcpProxy(free_port(), int(pg_host_port.rpartition(":")[2])).start()
    kafka = TcpProxy(free_port(), kafka_port).start()
    settings = Settings(
        _env_file=None,
        kafka_bootstrap=f"127.0.0.1:{kafka.listen_port}",
        database_url=f"postgresql://postgres@127.0.0.1:{postgres.listen_port}/{database}",
        topic_prefix=env.topic_prefix,
        secrets_key=SECRETS_KEY,
        bootstrap_client_id=BOOTSTRAP_ID,
        bootstrap_client_secret=BOOTSTRAP_SECRET,
        jwt_secret=JWT_SECRET,
        startup_timeout_seconds=30,
        publish_timeout_seconds=PUBLISH_TIMEOUT,
        ready_timeout_seconds=1,
        db_connect_timeout_seconds=2,
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            broker = app.state.cte.broker
            assert isinstance(broker, PatientKafkaBroker)
            assert broker.producer is not None
            _through(kafka, broker.producer)
            transport = httpx.ASGITransport(app=app)
            # No rule-engine runs here: writes ask for the acknowledgement alone (wait=false).
            async with httpx.AsyncClient(
                transport=transport, base_url="http://api.outages", timeout=60, params={"wait": "false"}
            ) as api:
                form = {"client_id": BOOTSTRAP_ID, "client_secret": BOOTSTRAP_SECRET}
                signed_in = await api.post("/api/auth", data={"grant_type": "client_credentials", **form})
                signed_in.raise_for_status()
                api.headers["Authorization"] = f"Bearer {signed_in.json()['access_token']}"
                created = await api.post("/api/cte/configurations", json={"plugin": "api_source", "name": "OUT"})
                assert created.status_code == 201, created.text
                yield Outages(api, kafka, postgres)
    finally:
        kafka.stop()
        postgres.stop()


def assert_unavailable(r: httpx.Response, dependency: str) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["detail"].startswith(f"{dependency} is unreachable: "), r.json()


def sighting(value: str) -> list[dict[str, str]]:
    return [{"value": value, "type": "domain", "source": "OUT"}]


async def test_everything_ready_before_the_outages(outages: Outages) -> None:
    r = await outages.api.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ready", "checks": {"PostgreSQL": "ok", "Kafka": "ok"}})
    r = await outages.api.post("/api/cte/indicators/", json=sighting("before.outages.example"))
    assert r.status_code == 201, r.text


async def test_postgres_unreachable_is_a_503_naming_it_until_it_is_back(outages: Outages) -> None:
    api = outages.api
    outages.postgres.refuse()  # live connections reset, new ones refused
    try:
        assert_unavailable(await api.get("/api/cte/indicators/"), "PostgreSQL")
        assert_unavailable(await api.post("/api/cte/indicators/", json=sighting("pg.outage.example")), "PostgreSQL")
        assert_unavailable(await api.get("/api/cte/business_rules"), "PostgreSQL")
        ready = await api.get("/readyz")
        assert_unavailable(ready, "PostgreSQL")
        assert ready.json()["checks"]["Kafka"] == "ok"
        assert (await api.get("/healthz")).status_code == 200  # alive: no reason to restart it
    finally:
        outages.postgres.accept()
    assert (await api.get("/api/cte/indicators/")).status_code == 200
    assert (await api.post("/api/cte/indicators/", json=sighting("pg.back.example"))).status_code == 201
    assert (await api.get("/readyz")).status_code == 200


async def test_kafka_unreachable_is_a_503_within_the_publish_timeout_until_it_is_back(outages: Outages) -> None:
    api = outages.api
    outages.kafka.refuse()
    assert outages.kafka.connections > 0, "the producer's connections go through the proxy"
    try:
        started = time.monotonic()
        r = await api.post("/api/cte/indicators/", json=sighting("kafka.outage.example"))
        elapsed = time.monotonic() - started
        assert_unavailable(r, "Kafka")
        assert PUBLISH_TIMEOUT - 0.5 <= elapsed < PUBLISH_TIMEOUT + 3, elapsed
        # A configuration change is published too.
        r = await api.post("/api/cte/configurations", json={"plugin": "api_source", "name": "OUT-2"})
        assert_unavailable(r, "Kafka")
        ready = await api.get("/readyz")
        assert_unavailable(ready, "Kafka")
        assert ready.json()["checks"]["PostgreSQL"] == "ok"
        # Reads need PostgreSQL only.
        assert (await api.get("/api/cte/indicators/")).status_code == 200
        assert (await api.get("/healthz")).status_code == 200
    finally:
        outages.kafka.accept()
    r = await api.post("/api/cte/indicators/", json=sighting("kafka.back.example"))
    assert r.status_code == 201, r.text
    assert (await api.get("/readyz")).status_code == 200


async def test_a_connection_postgres_ended_while_idle_is_a_503_naming_it(outages: Outages, env: Env) -> None:
    """A server shutting down, or whose postmaster died, sends each client a FATAL before closing. On an idle
    pooled connection asyncpg does not expect it, and the connection's next use raises InternalClientError
    until the close arrives: here the proxy passes the FATAL on at once and the close 3 s later."""
    api = outages.api
    assert (await api.get("/api/cte/indicators/")).status_code == 200
    outages.postgres.close_delay = 3.0
    try:
        admin = await asyncpg.connect(env.database_url)  # not through the proxy
        try:
            ended = await admin.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND state = 'idle' AND pid <> pg_backend_pid()) AS t"
            )
        finally:
            await admin.close()
        assert ended > 0
        await asyncio.sleep(0.5)  # the FATAL has arrived, the close has not
        assert_unavailable(await api.get("/api/cte/indicators/"), "PostgreSQL")
    finally:
        outages.postgres.close_delay = 0.0
    await asyncio.sleep(3)
    assert (await api.get("/api/cte/indicators/")).status_code == 200
