"""The chaos suite's own Kafka and PostgreSQL, behind TCP proxies, and every service as a process.

The suite restarts the broker and the database, so it never uses the shared ones: it starts its own
with the project's scripts (``deploy/stack.sh``, state under ``.stack/chaos``, free ports) and stops
them at the end. The broker advertises the proxy's port, so every Kafka connection of the services,
not only the bootstrap one, goes through the proxy and can be cut.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Env, open_env
from tests.support.processes import Service, free_port
from tests.support.stack import ROOT, STACK, Stack
from tests.support.tcpproxy import TcpProxy

OWNER = "chaos"
STATE_DIR = ROOT / ".stack" / "chaos"
# The API's bound on a write waiting for Kafka's acknowledgements (CTE_PUBLISH_TIMEOUT_SECONDS), set here so
# the suite knows within what a write sent while the broker is away must be answered 503.
PUBLISH_TIMEOUT = 10.0


@dataclass
class ChaosStack:
    """The broker and database of this suite, the proxies in front of them, and how to restart them."""

    kafka_port: int
    pg_port: int
    kafka_proxy: TcpProxy
    pg_proxy: TcpProxy
    script_env: dict[str, str]
    restarts: dict[str, float] = field(default_factory=dict)

    def script(self, *args: str) -> None:
        subprocess.run([str(STACK), *args, "--owner", OWNER], check=True, cwd=ROOT, env=self.script_env)

    def restart(self, component: str) -> None:
        self.script("restart", component)

    def sigkill(self, component: str) -> None:
        """SIGKILL to the broker, or to the PostgreSQL postmaster alone (its backends left to notice and
        exit); ``up`` brings it back."""
        pid_file = (
            STATE_DIR / "pg" / "data" / "postmaster.pid" if component == "postgres" else STATE_DIR / "run" / "kafka.pid"
        )
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)

    def up(self, component: str) -> None:
        """``deploy/stack.sh up``: the documented way to bring back what died."""
        self.script("up", component)

    @property
    def stack(self) -> Stack:
        return Stack(
            f"127.0.0.1:{self.kafka_proxy.listen_port}",
            f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres",
            "chaos",
        )

    @property
    def proxied_database(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_proxy.listen_port}"


def _down(env: dict[str, str]) -> None:
    subprocess.run([str(STACK), "down", "--owner", OWNER], check=False, cwd=ROOT, env=env)


# Module scope: in `make test` the suite's broker, database and services stop before the other tiers run.
@pytest.fixture(scope="module")
def chaos_stack() -> Iterator[ChaosStack]:
    kafka_port, controller_port, pg_port = free_port(), free_port(), free_port()
    kafka_proxy = TcpProxy(free_port(), kafka_port).start()
    pg_proxy = TcpProxy(free_port(), pg_port).start()
    script_env = {
        **os.environ,
        "CTE_STACK_DIR": str(STATE_DIR),
        "CTE_KAFKA_PORT": str(kafka_port),
        "CTE_KAFKA_CONTROLLER_PORT": str(controller_port),
        "CTE_KAFKA_ADVERTISED_PORT": str(kafka_proxy.listen_port),
        "CTE_PG_PORT": str(pg_port),
        # The durable settings `make up` uses (fsync, synchronous_commit): the broker and the database are
        # killed without warning, and what they acknowledged must survive.
        "CTE_PG_FAST": "0",
    }
    # A previous run that died left its components running (and ports in its state): stop and start afresh.
    _down(script_env)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    s = ChaosStack(kafka_port, pg_port, kafka_proxy, pg_proxy, script_env)
    try:
        s.script("up", "kafka", "postgres")
        yield s
    finally:
        _down(script_env)
        kafka_proxy.stop()
        pg_proxy.stop()


@pytest.fixture(scope="module")
async def chaos_env(chaos_stack: ChaosStack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async with open_env(chaos_stack.stack, tmp_path_factory.mktemp("chaos-logs")) as e:
        yield e


@dataclass
class Fleet:
    """Every service of the pipeline, with two replicas of the rule-engine and of the sink."""

    api: Service
    rule_engines: list[Service]
    sinks: list[Service]
    ager: Service
    tenant: Service
    api_url: str
    tenant_url: str
    log_dir: Path

    @property
    def crashable(self) -> list[Service]:
        return [self.api, *self.rule_engines, *self.sinks, self.ager]


@pytest.fixture(scope="module")
def fleet(chaos_stack: ChaosStack, chaos_env: Env) -> Iterator[Fleet]:
    database = chaos_stack.proxied_database + "/" + chaos_env.database_url.rpartition("/")[2]
    common = {"CTE_DATABASE_URL": database, "CTE_LOG_LEVEL": "WARNING"}

    def service(command: str, name: str, port_var: str, path: str, **extra: str) -> Service:
        port = free_port()
        return Service(
            command,
            chaos_env.service_env(**common, **{port_var: str(port)}, **extra),
            f"http://127.0.0.1:{port}{path}",
            chaos_env.log_dir,
            name=name,
        )

    tenant_port = free_port()
    tenant = Service(
        "cte-fake-tenant",
        {"CTE_FAKE_TENANT_PORT": str(tenant_port), "CTE_LOG_LEVEL": "WARNING"},
        f"http://127.0.0.1:{tenant_port}/_sim/healthz",
        chaos_env.log_dir,
    )
    api = service(
        "cte-ingest-api", "ingest-api", "CTE_API_PORT", "/healthz", CTE_PUBLISH_TIMEOUT_SECONDS=str(PUBLISH_TIMEOUT)
    )
    sink_settings = {
        "CTE_FLUSH_INTERVAL_SECONDS": "0.5",
        "CTE_REQUEST_TIMEOUT_SECONDS": "5",
        "CTE_BACKOFF_MAX_SECONDS": "2",
    }
    fleet = Fleet(
        api=api,
        rule_engines=[
            service("cte-rule-engine", f"rule-engine-{n}", "CTE_RULE_ENGINE_METRICS_PORT", "/metrics") for n in (1, 2)
        ],
        sinks=[
            service("cte-netskope-sink", f"netskope-sink-{n}", "CTE_SINK_METRICS_PORT", "/metrics", **sink_settings)
            for n in (1, 2)
        ],
        ager=service(
            "cte-ager",
            "ager",
            "CTE_AGER_METRICS_PORT",
            "/metrics",
            CTE_SWEEP_INTERVAL_SECONDS="0.5",
            CTE_SWEEP_BATCH_SIZE="500",
        ),
        tenant=tenant,
        api_url=api.ready_url.removesuffix("/healthz"),
        tenant_url=f"http://127.0.0.1:{tenant_port}",
        log_dir=chaos_env.log_dir,
    )
    started: list[Service] = []
    try:
        for s in (tenant, *fleet.crashable):
            started.append(s)
            s.start()
        yield fleet
    finally:
        for s in reversed(started):
            s.stop()
