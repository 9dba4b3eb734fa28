"""`deploy/stack.sh up` brings back a PostgreSQL or a Kafka killed without warning, whatever the timing.

A broker and a database of the test's own (their own state directory and free ports, the durable settings
`make up` uses) are put under load, then the PostgreSQL postmaster alone (its backends left to notice and
exit) or the broker is sent SIGKILL, and `deploy/stack.sh up` of it is run at once, as the operations guide
says to. Several timings: early and late in the load, with backends busy in a long query (they outlive
their postmaster until it ends), with the dead postmaster's pid taken by another process. Each time `up`
must succeed, say in one line what it did, and everything acknowledged before the kill must be there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.processes import free_port
from tests.support.stack import ROOT, STACK

OWNER = "recovery-test"
STATE_DIR = ROOT / ".stack" / "recovery-test"
# The backends of a killed postmaster busy in a long query are sent SIGKILL after this (20 s by default).
EXIT_WAIT = 3


@dataclass
class OwnStack:
    env: dict[str, str]
    kafka_port: int
    pg_port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def script(self, *args: str) -> str:
        """Runs deploy/stack.sh; its output, or the test fails with it."""
        done = subprocess.run(
            [str(STACK), *args, "--owner", OWNER], cwd=ROOT, env=self.env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"stack.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def pid(self, component: str) -> int:
        path = (
            STATE_DIR / "pg" / "data" / "postmaster.pid" if component == "postgres" else STATE_DIR / "run" / "kafka.pid"
        )
        return int(path.read_text().split()[0])


@pytest.fixture(scope="module")
def own_stack() -> Iterator[OwnStack]:
    kafka_port, controller_port, pg_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "CTE_STACK_DIR": str(STATE_DIR),
        "CTE_KAFKA_PORT": str(kafka_port),
        "CTE_KAFKA_CONTROLLER_PORT": str(controller_port),
        "CTE_KAFKA_ADVERTISED_PORT": str(kafka_port),
        "CTE_PG_PORT": str(pg_port),
        "CTE_PG_FAST": "0",
        "CTE_PG_SHARED_BUFFERS": "128MB",
        "CTE_STACK_EXIT_WAIT_SECONDS": str(EXIT_WAIT),
    }
    s = OwnStack(env, kafka_port, pg_port)
    subprocess.run([str(STACK), "down", "--owner", OWNER], cwd=ROOT, env=env, check=False, capture_output=True)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    try:
        s.script("up", "kafka", "postgres")
        yield s
    finally:
        subprocess.run([str(STACK), "down", "--owner", OWNER], cwd=ROOT, env=env, check=False, capture_output=True)
        shutil.rmtree(STATE_DIR, ignore_errors=True)


def recovery_line(output: str, component: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(f"{component}: recovered after an unclean stop")]
    assert len(lines) == 1, output
    return lines[0]


async def sigkill_and_up(own_stack: OwnStack, component: str) -> str:
    os.kill(own_stack.pid(component), signal.SIGKILL)
    return await asyncio.to_thread(own_stack.script, "up", component)


class Writers:
    """Rows inserted by a few connections, each committed on its own; ``acked`` holds the ones whose commit
    was answered, which must survive the postmaster's death."""

    def __init__(self, dsn: str, table: str) -> None:
        self.dsn = dsn
        self.table = table
        self.acked: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []

    async def _write(self, n: int) -> None:
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(self.dsn)
            i = 0
            while True:
                keys = [f"{n}-{i}-{j}" for j in range(50)]
                await conn.execute(f"INSERT INTO {self.table} (k) SELECT unnest($1::text[])", keys)
                self.acked.update(keys)
                i += 1

    def start(self, n: int = 4) -> None:
        self.tasks = [asyncio.create_task(self._write(i)) for i in range(n)]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def long_query(dsn: str, started: asyncio.Event) -> None:
    """A backend busy for a minute in a query that never waits: it notices its postmaster is gone only at
    its end, so it outlives it."""
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(dsn)
        started.set()
        # In the select list, the series is streamed, not stored first.
        await conn.execute("SELECT count(*) FROM (SELECT generate_series(1, 2000000000)) AS s")


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("case", "after"),
    [
        ("early in the load", 0.3),
        ("later in the load", 2.5),
        ("backends busy in a long query", 1.0),
        ("its pid taken by another process", 1.0),
    ],
)
async def test_postgres_killed_under_load_comes_back_with_every_commit(
    own_stack: OwnStack, case: str, after: float
) -> None:
    table = "t_" + "_".join(case.split()[:2])
    admin = await asyncpg.connect(own_stack.dsn)
    await admin.execute(f"CREATE TABLE {table} (k text PRIMARY KEY)")
    await admin.close()
    writers = Writers(own_stack.dsn, table)
    writers.start()
    busy = asyncio.Event()
    query = asyncio.create_task(long_query(own_stack.dsn, busy)) if "long query" in case else None
    if query is not None:
        await asyncio.wait_for(busy.wait(), 10)
    await asyncio.sleep(after)
    stand_in = None
    if "pid taken" in case:
        # The kernel gave the dead postmaster's pid to another process: postmaster.pid names a live pid.
        stand_in = await asyncio.create_subprocess_exec("sleep", "60")
        postmaster_pid = STATE_DIR / "pg" / "data" / "postmaster.pid"
        os.kill(own_stack.pid("postgres"), signal.SIGKILL)
        lines = postmaster_pid.read_text().splitlines(keepends=True)
        postmaster_pid.write_text("".join([f"{stand_in.pid}\n", *lines[1:]]))
        t0 = time.monotonic()
        output = await asyncio.to_thread(own_stack.script, "up", "postgres")
    else:
        t0 = time.monotonic()
        output = await sigkill_and_up(own_stack, "postgres")
    took = time.monotonic() - t0
    await writers.stop()
    if query is not None:
        query.cancel()
        await asyncio.gather(query, return_exceptions=True)
    if stand_in is not None:
        stand_in.kill()
        await stand_in.wait()
    line = recovery_line(output, "postgres")
    if query is not None:
        assert "still running" in line, line
        assert "sent SIGKILL" in line, line
    assert took < 120, output

    assert writers.acked, "the load committed something before the kill"
    conn = await asyncpg.connect(own_stack.dsn)
    try:
        stored = {r["k"] for r in await conn.fetch(f"SELECT k FROM {table}")}
    finally:
        await conn.close()
    missing = writers.acked - stored
    assert not missing, f"{len(missing)} committed rows lost, e.g. {sorted(missing)[:5]}"


async def _produce(bootstrap: str, topic: str, acked: set[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    try:
        with contextlib.suppress(Exception):
            await producer.start()
            i = 0
            while True:
                values = [f"{i}-{j}" for j in range(50)]
                futures = [await producer.send(topic, v.encode(), key=v.encode()) for v in values]
                await asyncio.gather(*futures)
                acked.update(values)
                i += 1
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 5)


async def _read_all(bootstrap: str, topic: str) -> set[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, "the topic could not be read to its end"
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                seen.update(r.value.decode() for r in records if r.value is not None)
        return seen
    finally:
        await consumer.stop()


@pytest.fixture
async def topic(own_stack: OwnStack) -> str:
    name = f"recovery-{time.monotonic_ns()}"
    admin = AIOKafkaAdminClient(bootstrap_servers=own_stack.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    return name


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("case", "after"), [("early in the load", 0.3), ("later in the load", 3.0)])
async def test_kafka_killed_under_load_comes_back_with_every_acknowledged_record(
    own_stack: OwnStack, topic: str, case: str, after: float
) -> None:
    acked: set[str] = set()
    load = asyncio.create_task(_produce(own_stack.bootstrap, topic, acked))
    deadline = time.monotonic() + 60
    while not acked:
        assert time.monotonic() < deadline, "nothing acknowledged"
        await asyncio.sleep(0.05)
    await asyncio.sleep(after)
    t0 = time.monotonic()
    output = await sigkill_and_up(own_stack, "kafka")
    took = time.monotonic() - t0
    load.cancel()
    await asyncio.gather(load, return_exceptions=True)
    recovery_line(output, "kafka")
    assert took < 180, output

    stored = await _read_all(own_stack.bootstrap, topic)
    missing = acked - stored
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"


async def test_kafka_killed_again_while_it_starts_comes_back(own_stack: OwnStack) -> None:
    """A second SIGKILL while `up` is starting the broker after the first: that same `up` starts it again."""
    old = own_stack.pid("kafka")
    os.kill(old, signal.SIGKILL)
    up = asyncio.create_task(asyncio.to_thread(own_stack.script, "up", "kafka"))
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            if own_stack.pid("kafka") != old:
                break
        assert time.monotonic() < deadline, "up did not start a broker"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the new broker is booting (a JVM start, then its logs recovered): not ready yet
    os.kill(own_stack.pid("kafka"), signal.SIGKILL)
    output = await up
    line = recovery_line(output, "kafka")
    assert "start 1 exited" in line, line
    assert "started on attempt 2" in line, line
    admin = AIOKafkaAdminClient(bootstrap_servers=own_stack.bootstrap)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()
