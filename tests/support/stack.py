"""Where the tests find Kafka and PostgreSQL.

In order: addresses given in the environment (CTE_TEST_KAFKA_BOOTSTRAP, CTE_TEST_DATABASE_URL: an
already-running stack); testcontainers when a Docker engine answers; otherwise the project's own
scripts (deploy/stack.sh), which start the real broker and database on loopback and are stopped
again at the end if this run started them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "stack.sh"
OWNER = "pytest"


@dataclass(frozen=True)
class Stack:
    kafka_bootstrap: str
    # A DSN of the server's maintenance database; tests create their own database next to it.
    admin_database_url: str
    how: str


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20).returncode == 0


@contextmanager
def _testcontainers() -> Iterator[Stack]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer("apache/kafka:4.1.1") as kafka, PostgresContainer("postgres:15", driver=None) as pg:
        yield Stack(kafka.get_bootstrap_server(), pg.get_connection_url(), "testcontainers")


@contextmanager
def _local_scripts() -> Iterator[Stack]:
    subprocess.run([str(STACK), "up", "kafka", "postgres", "--owner", OWNER], check=True, cwd=ROOT)
    try:
        port_kafka = os.environ.get("CTE_KAFKA_PORT", "9092")
        port_pg = os.environ.get("CTE_PG_PORT", "5433")
        yield Stack(f"127.0.0.1:{port_kafka}", f"postgresql://postgres@127.0.0.1:{port_pg}/postgres", "local")
    finally:
        # Stops only what this run started; a stack brought up by `make up` keeps running.
        subprocess.run([str(STACK), "down", "--owner", OWNER], check=False, cwd=ROOT)


@contextmanager
def provide_stack() -> Iterator[Stack]:
    kafka = os.environ.get("CTE_TEST_KAFKA_BOOTSTRAP")
    database = os.environ.get("CTE_TEST_DATABASE_URL")
    if kafka and database:
        yield Stack(kafka, database, "given")
    elif _docker_engine():
        with _testcontainers() as stack:
            yield stack
    else:
        with _local_scripts() as stack:
            yield stack
