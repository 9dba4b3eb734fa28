"""Session fixtures: the real Kafka and PostgreSQL, a fresh database and topic namespace per run."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cte_common.crypto import new_key
from cte_common.migrate import upgrade
from cte_common.topics import create_topics
from tests.support import wire
from tests.support.processes import Service, free_port
from tests.support.stack import Stack, provide_stack

BOOTSTRAP_ID = "test-bootstrap-client"
BOOTSTRAP_SECRET = "test-bootstrap-secret-" + secrets.token_hex(8)
SECRETS_KEY = new_key()
JWT_SECRET = "test-signing-key-" + secrets.token_hex(16)
ADMIN_USERNAME = "test-admin"
ADMIN_PASSWORD = "test-first-login-" + secrets.token_hex(8)


def pytest_configure(config: pytest.Config) -> None:
    wire.install()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/component/" in str(item.path):
            item.add_marker(pytest.mark.component)
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
        if "tests/chaos/" in str(item.path):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with provide_stack() as s:
        yield s


@dataclass(frozen=True)
class Env:
    """One isolated namespace on the shared stack: its own database and topic prefix."""

    stack: Stack
    database_url: str
    topic_prefix: str
    log_dir: Path

    def service_env(self, **extra: str) -> dict[str, str]:
        return {
            "CTE_KAFKA_BOOTSTRAP": self.stack.kafka_bootstrap,
            "CTE_DATABASE_URL": self.database_url,
            "CTE_TOPIC_PREFIX": self.topic_prefix,
            "CTE_LOG_LEVEL": "INFO",
            "CTE_BOOTSTRAP_CLIENT_ID": BOOTSTRAP_ID,
            "CTE_BOOTSTRAP_CLIENT_SECRET": BOOTSTRAP_SECRET,
            "CTE_JWT_SECRET": JWT_SECRET,
            "CTE_SECRETS_KEY": SECRETS_KEY,
            "CTE_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USERNAME,
            "CTE_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # Every test signs in from 127.0.0.1 and some fail on purpose (fuzzing /api/auth among them):
            # no address lockout here. tests/component/test_users.py proves the lockout.
            "CTE_SIGNIN_ADDRESS_MAX_FAILURES": "0",
            **extra,
        }


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@asynccontextmanager
async def open_env(stack: Stack, log_dir: Path) -> AsyncIterator[Env]:
    """A fresh database (migrated) and topic namespace on ``stack``, dropped afterwards."""
    name = "cte_test_" + secrets.token_hex(4)
    admin = await asyncpg.connect(stack.admin_database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = _with_database(stack.admin_database_url, name)
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    prefix = "t" + secrets.token_hex(4)
    await create_topics(stack.kafka_bootstrap, prefix)
    try:
        yield Env(stack, url, prefix, log_dir)
    finally:
        # A new connection: the database server may have been restarted meanwhile.
        admin = await asyncpg.connect(stack.admin_database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def env(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async with open_env(stack, tmp_path_factory.mktemp("logs")) as e:
        yield e


@pytest.fixture(scope="session")
async def db(env: Env) -> AsyncIterator[asyncpg.Pool[Any]]:
    pool = await asyncpg.create_pool(env.database_url, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@dataclass
class Running:
    api: Service
    rule_engine: Service
    api_url: str


@contextmanager
def run_services(env: Env) -> Iterator[Running]:
    """The ingest-api and the rule-engine as real processes on ``env``'s namespace."""
    api_port, re_port = free_port(), free_port()
    api = Service(
        "cte-ingest-api",
        env.service_env(CTE_API_PORT=str(api_port)),
        f"http://127.0.0.1:{api_port}/healthz",
        env.log_dir,
    )
    rule_engine = Service(
        "cte-rule-engine",
        env.service_env(CTE_RULE_ENGINE_METRICS_PORT=str(re_port)),
        f"http://127.0.0.1:{re_port}/metrics",
        env.log_dir,
    )
    running = Running(api.start(), rule_engine.start(), f"http://127.0.0.1:{api_port}")
    try:
        yield running
    finally:
        rule_engine.stop()
        api.stop()


@pytest.fixture(scope="session")
def services(env: Env) -> Iterator[Running]:
    with run_services(env) as running:
        yield running


@dataclass
class Pipeline:
    """Every service running: the API, the rule-engine, the sink and the fake Netskope tenant."""

    api_url: str
    tenant_url: str
    sink: Service
    fake_tenant: Service
    ager: Service


@contextmanager
def run_pipeline(env: Env, services: Running) -> Iterator[Pipeline]:
    """The sink, the ager and the fake Netskope tenant beside ``services``, on ``env``'s namespace."""
    tenant_port, sink_port, ager_port = free_port(), free_port(), free_port()
    fake = Service(
        "cte-fake-tenant",
        # Injected timeouts hold the answer a little longer than the sink waits.
        {"CTE_FAKE_TENANT_PORT": str(tenant_port), "CTE_LOG_LEVEL": "WARNING", "CTE_FAKE_TENANT_TIMEOUT_SECONDS": "3"},
        f"http://127.0.0.1:{tenant_port}/_sim/healthz",
        env.log_dir,
    ).start()
    sink = Service(
        "cte-netskope-sink",
        env.service_env(
            CTE_SINK_METRICS_PORT=str(sink_port),
            CTE_FLUSH_INTERVAL_SECONDS="0.5",
            CTE_REQUEST_TIMEOUT_SECONDS="1.5",
            CTE_BACKOFF_MAX_SECONDS="2",
        ),
        f"http://127.0.0.1:{sink_port}/metrics",
        env.log_dir,
    ).start()
    ager = Service(
        "cte-ager",
        env.service_env(
            CTE_AGER_METRICS_PORT=str(ager_port), CTE_SWEEP_INTERVAL_SECONDS="0.5", CTE_SWEEP_BATCH_SIZE="200"
        ),
        f"http://127.0.0.1:{ager_port}/metrics",
        env.log_dir,
    ).start()
    try:
        yield Pipeline(services.api_url, f"http://127.0.0.1:{tenant_port}", sink, fake, ager)
    finally:
        ager.stop()
        sink.stop()
        fake.stop()


@pytest.fixture(scope="session")
def pipeline(env: Env, services: Running) -> Iterator[Pipeline]:
    with run_pipeline(env, services) as running:
        yield running
