"""The benchmark harness: baselines and the whole pipeline, in one run, on one machine, with one data set.

    uv run --frozen python bench/run.py --size 1000000      # make bench
    uv run --frozen python bench/run.py --size 100000       # make bench-quick

It brings up Kafka and PostgreSQL with ``deploy/stack.sh up kafka postgres --owner bench`` (durable
settings; stopped again at the end only if this run started them), creates its own database and topic
prefix, starts the ingest-api, rule-engine, netskope-sink, ager and the fake tenant as processes on free
ports, and measures:

1. baselines: raw Kafka produce and consume of the same events, raw PostgreSQL COPY and set-wise upserts
   of the same rows, the fake tenant's raw URL-list append, replace and deploy;
2. the pipeline: N indicators POSTed in batches of 1,000 until the read model holds them all and every
   list is flushed; POST-to-deployed latency at a steady 5,000 per second; expiry-to-removal latency;
   rule evaluation in-process; a list at its cap selected and pushed from 100,000 and from 1,000,000
   candidates; peak RSS of each service; PostgreSQL bytes per stored indicator; CPU per component;
3. the read path (bench/read_path.py) at the same size.

Results: bench/results/pipeline-<N>.json (and read_path-<N>.json); docs/BENCHMARKS.md is regenerated
from them (bench/render.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from bench import baselines, data, evaluation, read_path, render
from bench.common import (
    RESULTS_DIR,
    BenchError,
    CpuMeter,
    Services,
    admin_database_url,
    copy_database,
    durability,
    free_port,
    git_commit,
    kafka_bootstrap,
    load_average,
    machine,
    metric,
    now_iso,
    peak_rss_mb,
    process_tree,
    rate,
    scrape,
    scratch_database,
    stack,
    stack_pid,
    summary_ms,
    wait_until,
    with_database,
)
from tqdm import tqdm

from ager.settings import Settings as AgerSettings
from cte_common.crypto import new_key
from cte_common.events import ShareIntent
from cte_common.indicators import IndicatorType
from cte_common.migrate import upgrade
from cte_common.topics import INDICATOR_EVENTS, Topics, create_topics
from netskope_sink.settings import Settings as SinkSettings

OWNER = "bench"
TENANT = "bench-tenant"
NETSKOPE = "bench-netskope"
SOURCES = {"live": "bench-live", "expiry": "bench-expiry", "cap": "bench-cap"}
V1_TOKEN, V2_TOKEN = "fake-v1-token", "fake-v2-token"
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret-" + secrets.token_hex(8)
RE_CONSUMER, SINK_CONSUMER = "rule-engine.indicators", "netskope-sink.share-intents"
# What the samplers inside a measured window read (see common.scrape).
RECORDS = ("cte_consumer_records_total",)
# Raw ingest: the fastest acknowledgement (a feed that never reads back); the bench times the read model's
# catching up itself. Without ``wait`` a write answers once the read model shows it (the default mode).
INGEST_PATH = "/api/cte/indicators/?wait=false"
SERVICES = ("ingest-api", "rule-engine", "netskope-sink", "ager", "fake-tenant")
INGEST_ALONE = "ingest-api-alone"
CAP_SIZES = (100_000, 1_000_000)


class Bench:
    """One run: its namespace, its processes, and the clients that drive and watch them."""

    def __init__(self, args: argparse.Namespace, run_id: str) -> None:
        self.args = args
        self.n: int = args.size
        self.bootstrap = kafka_bootstrap()
        self.db_name = f"cte_bench_{run_id}"
        self.database_url = with_database(admin_database_url(), self.db_name)
        self.prefix = f"bench-{run_id}"
        self.topics = Topics(self.prefix)
        self.services = Services()
        self.ports = {name: free_port() for name in SERVICES}
        # Further members of the rule-engine's consumer group (--rule-engines), each a process of its own.
        self.replicas = [f"rule-engine-{n}" for n in range(2, args.rule_engines + 1)]
        self.ports.update({name: free_port() for name in self.replicas})
        # HTTP ingest on its own: an ingest-api whose topics (under this prefix) no consumer reads.
        self.alone_prefix = f"{self.prefix}.alone"
        # Merges on their own: rule-engine members reading a copy of those events, in topics of their
        # own (empty until the members have settled in their group), into a copy of the configured
        # database, with no sink.
        self.merge_prefix = f"{self.prefix}.merge"
        self.merge_group = f"{self.merge_prefix}-re"
        self.alone_db = f"{self.db_name}_alone"
        self.alone_members = [f"rule-engine-alone-{n}" for n in range(1, args.rule_engines + 1)]
        self.secrets_key = new_key()
        self.pool: asyncpg.Pool | None = None
        self.api: httpx.AsyncClient | None = None
        self.tenant: httpx.AsyncClient | None = None
        self.watch = httpx.AsyncClient(timeout=10, follow_redirects=True)
        self.list_keys: dict[str, str] = {}
        self.pg_pids: list[int] = []
        # Each backend's client service (its application_name), "server" for the server's own processes.
        self.pg_clients: dict[int, str] = {}
        self.result: dict[str, Any] = {}

    # --- set-up -------------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['ingest-api']}"

    @property
    def tenant_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['fake-tenant']}"

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}/metrics"

    def env(self, service: str, **extra: str) -> dict[str, str]:
        return {
            "CTE_KAFKA_BOOTSTRAP": self.bootstrap,
            # Named backends: PostgreSQL's CPU is also reported per client service.
            "CTE_DATABASE_URL": f"{self.database_url}?application_name={service}",
            "CTE_TOPIC_PREFIX": self.prefix,
            "CTE_LOG_LEVEL": "WARNING",
            "CTE_SECRETS_KEY": self.secrets_key,
            "CTE_BOOTSTRAP_CLIENT_ID": CLIENT_ID,
            "CTE_BOOTSTRAP_CLIENT_SECRET": CLIENT_SECRET,
            "CTE_JWT_SECRET": "bench-signing-key-" + "x" * 32,
            **extra,
        }

    def start_services(self) -> None:
        p = self.ports
        s = self.services
        s.start(
            "fake-tenant",
            {"CTE_FAKE_TENANT_PORT": str(p["fake-tenant"]), "CTE_LOG_LEVEL": "WARNING"},
            f"{self.tenant_url}/_sim/healthz",
        )
        s.start("ingest-api", self.env("ingest-api", CTE_API_PORT=str(p["ingest-api"])), f"{self.api_url}/healthz")
        # Consumer groups of their own, so a test run sharing the broker never joins them.
        for name in ("rule-engine", *self.replicas):
            s.start(
                name,
                self.env(
                    "rule-engine",
                    CTE_RULE_ENGINE_METRICS_PORT=str(p[name]),
                    CTE_CONSUMER_GROUP=f"{self.prefix}-rule-engine",
                ),
                self.metrics_url(name),
                command="cte-rule-engine",
            )
        s.start(
            "netskope-sink",
            self.env(
                "netskope-sink",
                CTE_SINK_METRICS_PORT=str(p["netskope-sink"]),
                CTE_CONSUMER_GROUP=f"{self.prefix}-netskope-sink",
            ),
            self.metrics_url("netskope-sink"),
        )
        s.start("ager", self.env("ager", CTE_AGER_METRICS_PORT=str(p["ager"])), self.metrics_url("ager"))

    async def api_client(self, api_url: str) -> httpx.AsyncClient:
        auth = await self.watch.post(
            f"{api_url}/api/auth",
            data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        if auth.status_code != 200:
            raise BenchError(f"could not get a token: {auth.status_code} {auth.text[:300]}")
        token = auth.json()["access_token"]
        return httpx.AsyncClient(
            base_url=api_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    async def connect(self) -> None:
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=4)
        self.api = await self.api_client(self.api_url)
        self.tenant = httpx.AsyncClient(base_url=self.tenant_url, timeout=120)

    async def close(self) -> None:
        for client in (self.api, self.tenant, self.watch):
            if client is not None:
                await client.aclose()
        if self.pool is not None:
            await self.pool.close()

    async def call(self, method: str, path: str, body: Any, expect: int = 201) -> Any:
        assert self.api is not None
        r = await self.api.request(method, path, json=body)
        if r.status_code != expect:
            raise BenchError(f"{method} {path} answered {r.status_code} (wanted {expect}): {r.text[:500]}")
        return r.json()

    async def configure(self) -> None:
        """The tenant, the sources, and every sharing up front: a sharing created later would start a
        re-evaluation of every stored indicator in the middle of the measurements."""
        assert self.tenant is not None
        (await self.tenant.post("/_sim/filehashlists", json={"name": "bench-hashes"})).raise_for_status()
        await self.call(
            "POST",
            "/api/tenants",
            {"name": TENANT, "tenantName": self.tenant_url, "v1Token": V1_TOKEN, "v2Token": V2_TOKEN},
        )
        for name in (data.SOURCE_A, data.SOURCE_B, *SOURCES.values()):
            await self.call(
                "POST", "/api/cte/configurations", {"name": name, "plugin": "api_source", "ageAfterDays": 90}
            )
        await self.call(
            "POST",
            "/api/cte/configurations",
            {"name": NETSKOPE, "plugin": "netskope", "tenant": TENANT, "parameters": {"enablePolling": False}},
        )
        sharings = {
            "urls": (data.SOURCE_A, "url", {"list": "create", "name": "bench-urls"}),
            "hashes": (data.SOURCE_A, "file", {"file_list": "bench-hashes"}),
            "live": (SOURCES["live"], "url", {"list": "create", "name": "bench-live"}),
            "expiry": (SOURCES["expiry"], "url", {"list": "create", "name": "bench-expiry"}),
            **{
                f"cap-{size}": (SOURCES["cap"], "url", {"list": "create", "name": f"bench-cap-{size}"})
                for size in CAP_SIZES
            },
        }
        for key, (source, action, params) in sharings.items():
            out = await self.call(
                "POST",
                "/api/cte/sharing",
                {
                    "sourceConfiguration": source,
                    "businessRule": "All",
                    "destinationConfiguration": NETSKOPE,
                    "action": action,
                    "parameters": params,
                },
            )
            self.list_keys[key] = out["listKey"]
        await self.settled("the configuration")

    async def settled(self, what: str) -> None:
        """The rule-engine has read every configuration change and finished every re-evaluation."""
        assert self.pool is not None
        ends = await self.end_offsets(self.topics.config_changes, 1)

        async def done() -> bool:
            async with self.pool.acquire() as conn:  # type: ignore[union-attr]
                at = await conn.fetchval(
                    "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer = 'rule-engine.config'"
                )
                busy = await conn.fetchval("SELECT count(*) FROM reevaluations WHERE finished_at IS NULL")
            return at >= sum(ends.values()) and busy == 0

        await wait_until(done, within=120, what=f"the rule-engine to apply {what}", alive=self.services.check_alive)

    async def end_offsets(self, topic: str, partitions: int) -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            ends = await consumer.end_offsets(tps)
            return {tp.partition: off for tp, off in ends.items()}
        finally:
            await consumer.stop()

    async def position(self, consumer: str, topic: str) -> dict[int, int]:
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            rows = await conn.fetch(
                "SELECT partition, next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2",
                consumer,
                topic,
            )
        return {r["partition"]: r["next_offset"] for r in rows}

    async def caught_up(self, consumer: str, topic: str, ends: dict[int, int]) -> bool:
        at = await self.position(consumer, topic)
        return all(at.get(p, 0) >= end for p, end in ends.items())

    async def lists_flushed(self) -> bool:
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            # (A list a reserve holds below its cap is not done until the push that fills it: settle_at.)
            behind = await conn.fetchval(
                "SELECT count(*) FROM list_state WHERE version > flushed_version OR settle_at IS NOT NULL"
            )
        return behind == 0

    async def rss(self) -> dict[str, float | None]:
        return {name: peak_rss_mb(self.services.pid(name)) for name in SERVICES}

    async def refresh_pg_pids(self) -> None:
        """This database's backends and the server's own processes (not other databases' backends: the
        server may be shared with a test run)."""
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            rows = await conn.fetch(
                "SELECT pid, application_name, backend_type FROM pg_stat_activity "
                "WHERE datname = current_database() OR backend_type <> 'client backend'"
            )
        postmaster = stack_pid("postgres")
        self.pg_pids = [r["pid"] for r in rows] + ([postmaster] if postmaster else [])
        for r in rows:
            named = r["application_name"] if r["application_name"] in SERVICES else None
            self.pg_clients[r["pid"]] = named or ("server" if r["backend_type"] != "client backend" else "other")

    async def statements_reset(self) -> bool:
        """Start pg_stat_statements' counts afresh, if the server loads it (CTE_PG_STAT_STATEMENTS=1)."""
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            preload = await conn.fetchval("SHOW shared_preload_libraries")
            if "pg_stat_statements" not in preload:
                return False
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.execute("SELECT pg_stat_statements_reset()")
        return True

    async def statements(self, n: int, top: int = 25) -> list[dict[str, Any]]:
        """This database's statements since the reset, by total execution time: time and calls per
        indicator of the run (execution time is wall time in the backend, not CPU alone)."""
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            rows = await conn.fetch(
                "SELECT query, calls, rows, total_exec_time, mean_exec_time, total_plan_time, "
                "shared_blks_hit, shared_blks_read, local_blks_read, local_blks_written, wal_bytes "
                "FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "ORDER BY total_exec_time DESC LIMIT $1",
                top,
            )
        return [
            {
                "query": " ".join(r["query"].split())[:300],
                "calls": r["calls"],
                "rows": r["rows"],
                "total_ms": round(r["total_exec_time"], 1),
                "mean_ms": round(r["mean_exec_time"], 3),
                "plan_ms": round(r["total_plan_time"], 1),
                "us_per_indicator": round(r["total_exec_time"] * 1000 / n, 1),
                "blocks_hit": r["shared_blks_hit"],
                "blocks_read": r["shared_blks_read"],
                # temporary tables' blocks read from and written to disk: past the session's temp_buffers
                "local_blocks_read": r["local_blks_read"],
                "local_blocks_written": r["local_blks_written"],
                "wal_bytes": int(r["wal_bytes"]),
            }
            for r in rows
        ]

    def cpu_meter(self) -> CpuMeter:
        kafka = stack_pid("kafka")
        groups: dict[str, Callable[[], list[int]]] = {
            name: (lambda name=name: process_tree(self.services.pid(name))) for name in SERVICES
        }
        # The rule-engine's figures are its group's: every member's CPU together.
        groups["rule-engine"] = lambda: [self.services.pid(n) for n in ("rule-engine", *self.replicas)]
        groups["kafka"] = lambda: [kafka] if kafka else []
        groups["postgresql"] = lambda: self.pg_pids
        return CpuMeter(groups)

    async def snapshot(self) -> dict[str, list[tuple[str, dict[str, str], float]]]:
        out = {}
        for name in ("ingest-api", "rule-engine", "netskope-sink", "ager"):
            out[name] = await scrape(
                self.watch, self.metrics_url(name) if name != "ingest-api" else f"{self.api_url}/metrics"
            )
        for name in self.replicas:  # their counters add to the first member's (metric() sums series)
            out["rule-engine"] += await scrape(self.watch, self.metrics_url(name))
        return out

    # --- the pipeline ----------------------------------------------------------------------------------

    @staticmethod
    async def read_model_holds(pool: asyncpg.Pool, expected: dict[str, Any]) -> bool:
        """Whether the read model behind ``pool`` holds every source entry and value of the data set."""
        async with pool.acquire() as conn:
            entries = await conn.fetchval("SELECT count(*) FROM indicator_sources")
            values = await conn.fetchval("SELECT count(*) FROM indicators")
        return bool(entries >= expected["source_entries"] and values >= expected["distinct_values"])

    async def post_all(
        self,
        api: httpx.AsyncClient,
        bodies: list[bytes],
        statuses: dict[int, int],
        post_seconds: list[float],
        on_posted: Callable[[int], None] = lambda count: None,
    ) -> None:
        """POST every body, ``--concurrency`` at a time, each retried on a 5xx (counted in ``statuses``)."""
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for b in bodies:
            queue.put_nowait(b)

        async def poster() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                for attempt in range(4):
                    t = time.perf_counter()
                    r = await api.post(INGEST_PATH, content=body, headers={"content-type": "application/json"})
                    post_seconds.append(time.perf_counter() - t)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 201:
                        break
                    if attempt == 3 or r.status_code < 500:
                        raise BenchError(f"POST of a batch answered {r.status_code}: {r.text[:500]}")
                    await asyncio.sleep(0.5)
                on_posted(body.count(b'"value"'))

        await asyncio.gather(*(poster() for _ in range(self.args.concurrency)))

    async def ingest_alone(self, bodies: list[bytes]) -> dict[str, Any]:
        """The pipeline's POSTs to an ingest-api of their own whose topics no consumer reads: the API's
        rate with the machine to itself, as the raw produce baseline is measured (in the pipeline the
        POSTs share the cores with the rule-engine, the sink and PostgreSQL). Same client, same
        concurrency, same bodies; its events stay in topics of their own and are not merged."""
        # (A port is taken when it is used: one taken at the start may be a client's by now.)
        self.ports[INGEST_ALONE] = free_port()
        url = f"http://127.0.0.1:{self.ports[INGEST_ALONE]}"
        env = self.env("ingest-api", CTE_API_PORT=str(self.ports[INGEST_ALONE]), CTE_TOPIC_PREFIX=self.alone_prefix)
        await asyncio.to_thread(self.services.start, INGEST_ALONE, env, f"{url}/healthz", command="cte-ingest-api")
        statuses: dict[int, int] = {}
        post_seconds: list[float] = []
        try:
            api = await self.api_client(url)
            try:
                kafka = stack_pid("kafka")
                meter = CpuMeter(
                    {
                        "ingest-api": lambda: process_tree(self.services.pid(INGEST_ALONE)),
                        "kafka": lambda: [kafka] if kafka else [],
                    }
                )
                meter.start()
                t0 = time.perf_counter()
                await self.post_all(api, bodies, statuses, post_seconds)
                seconds = time.perf_counter() - t0
                cpu = meter.stop()
            finally:
                await api.aclose()
        finally:
            await asyncio.to_thread(self.services.stop, INGEST_ALONE)
        return {
            "http_seconds": round(seconds, 2),
            "http_per_second": rate(self.n, seconds),
            "statuses": {str(k): v for k, v in statuses.items()},
            "post_answer": summary_ms(post_seconds),
            "cpu": cpu,
        }

    async def merges_alone(self) -> dict[str, Any]:
        """The events ``ingest_alone`` published, merged by rule-engine members of their own into a
        copy of the configured database (made before the pipeline's first indicator), no sink, the
        pipeline's services idle: the merge rate with the machine to itself, as the raw upserts are
        measured. The copy is dropped afterwards."""
        async with scratch_database(admin_database_url(), self.alone_db) as url:
            await asyncio.to_thread(copy_database, self.database_url, url)
            return await self._merge_alone(url)

    async def group_settled(self, group: str, members: int) -> None:
        """Wait until the consumer group ``group`` has ``members`` members and no rebalance under way."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()

        async def settled() -> bool:
            responses = await admin.describe_consumer_groups([group])
            described = [g for r in responses for g in r.to_object()["groups"]]
            return any(g["state"] == "Stable" and len(g["members"]) == members for g in described)

        try:
            await wait_until(
                settled,
                within=60,
                what=f"the {members} members of {group} to settle in their consumer group",
                interval=0.1,
                alive=self.services.check_alive,
            )
        finally:
            await admin.close()

    async def copy_events(self, source: str, target: str) -> int:
        """Every record of the indicator events under prefix ``source`` written to the same partition
        under prefix ``target``, key, value, headers and time unchanged; returns how many."""
        src, dst = Topics(source).indicator_events, Topics(target).indicator_events
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            # Batches of several records each, below the broker's limit of about 1 MiB a batch: a record
            # is an envelope of many events, larger than the default batch, and a batch per record made
            # the copy a round trip per record.
            max_batch_size=960 * 1024,
            max_request_size=8 * 1024 * 1024,
            linger_ms=20,
        )
        await consumer.start()
        await producer.start()
        try:
            tps = [TopicPartition(src, p) for p in range(INDICATOR_EVENTS.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            left = {tp for tp, end in ends.items() if end > 0}
            sent: list[asyncio.Future[Any]] = []
            while left:
                for tp, records in (await consumer.getmany(*left, timeout_ms=1000)).items():
                    for r in records:
                        sent.append(
                            await producer.send(
                                dst,
                                r.value,
                                key=r.key,
                                partition=tp.partition,
                                headers=list(r.headers),
                                timestamp_ms=r.timestamp,
                            )
                        )
                    if records and records[-1].offset + 1 >= ends[tp]:
                        left.discard(tp)
            await asyncio.gather(*sent)
            return len(sent)
        finally:
            await producer.stop()
            await consumer.stop()

    async def _merge_alone(self, url: str) -> dict[str, Any]:
        env = {
            **self.env("rule-engine", CTE_TOPIC_PREFIX=self.merge_prefix, CTE_CONSUMER_GROUP=self.merge_group),
            "CTE_DATABASE_URL": f"{url}?application_name=rule-engine",
        }
        expected = data.summary(self.n)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        pg_pids: list[int] = []

        async def backends() -> list[int]:
            async with pool.acquire() as conn:
                # This database's backends (not the bench's own) and the server's own processes.
                rows = await conn.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE (datname = current_database() AND pid <> pg_backend_pid())"
                    " OR backend_type <> 'client backend'"
                )
            return [r["pid"] for r in rows]

        kafka = stack_pid("kafka")
        meter = CpuMeter(
            {
                "rule-engine": lambda: [self.services.pid(m) for m in self.alone_members if m in self.services.running],
                "postgresql": lambda: pg_pids,
                "kafka": lambda: [kafka] if kafka else [],
            }
        )
        first_applied: float | None = None
        applied = 0.0

        async def current_applied() -> float:
            total = 0.0
            for name in (m for m in self.alone_members if m in self.ports):
                with contextlib.suppress(httpx.HTTPError):
                    samples = await scrape(self.watch, self.metrics_url(name), RECORDS)
                    total += metric(samples, "cte_consumer_records_total", consumer=RE_CONSUMER, outcome="applied")
            return total

        async def sampler() -> None:
            # From before the first member starts: it merges while the next one starts.
            nonlocal first_applied, applied, pg_pids
            while True:
                total = await current_applied()
                if total and first_applied is None:
                    first_applied = time.perf_counter() - t0
                applied = total
                pg_pids = sorted(set(pg_pids) | set(await backends()))
                await asyncio.sleep(0.25)

        async def done() -> bool:
            return applied >= self.n and await self.read_model_holds(pool, expected)

        sampling: asyncio.Task[None] | None = None
        try:
            t0 = time.perf_counter()
            sampling = asyncio.create_task(sampler())
            for name in self.alone_members:
                self.ports[name] = free_port()
                await asyncio.to_thread(
                    self.services.start,
                    name,
                    {**env, "CTE_RULE_ENGINE_METRICS_PORT": str(self.ports[name])},
                    self.metrics_url(name),
                    command="cte-rule-engine",
                )
            # Their topics are empty until the group has settled with every member: events there while a
            # member joins would be merged by the first and then stop for the rebalance, inside the measure
            # (the 100,000 runs of the same code measured 12,807 to 28,265 /s, the lower the later the
            # second member joined, when they read the events ingest_alone had left in its topics).
            # (The members' group id, as the rule-engine makes it from its settings.)
            await self.group_settled(Topics(self.merge_prefix).group(self.merge_group), len(self.alone_members))
            t_copy = time.perf_counter()
            records = await self.copy_events(self.alone_prefix, self.merge_prefix)
            copy_seconds = time.perf_counter() - t_copy
            # Measured from here, the events all there: the members' start-up, their join and the copy
            # are not merging, and the events merged before this point are left out of the rate and the
            # CPU alike.
            pg_pids = sorted(set(pg_pids) | set(await backends()))
            meter.start()
            t1 = time.perf_counter()
            applied1 = await current_applied()
            await wait_until(
                done,
                within=180 + self.n / 400,
                what="the rule-engine members of their own to merge every event",
                interval=0.5,
                alive=self.services.check_alive,
            )
            seconds = time.perf_counter() - t1
            cpu = meter.stop()
        finally:
            if sampling is not None:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
            for name in self.alone_members:
                if name in self.services.running:
                    await asyncio.to_thread(self.services.stop, name)
            await pool.close()
        events = self.n - int(applied1)
        return {
            "first_applied_seconds": round(first_applied or 0.0, 2),
            "members_up_seconds": round(t_copy - t0, 2),
            "copied_records": records,
            "copy_seconds": round(copy_seconds, 2),
            "events_before": int(applied1),
            "events": events,
            "seconds": round(seconds, 2),
            "merges_per_second": rate(events, seconds),
            "cpu": cpu,
        }

    async def pipeline(self, bodies: list[bytes]) -> dict[str, Any]:
        assert self.api is not None
        assert self.pool is not None
        n = self.n
        expected = data.summary(n)
        before = await self.snapshot()
        applied0 = metric(before["rule-engine"], "cte_consumer_records_total", consumer=RE_CONSUMER, outcome="applied")
        statements = await self.statements_reset()
        meter = self.cpu_meter()
        statuses: dict[int, int] = {}
        post_seconds: list[float] = []
        timeline: list[tuple[float, int, float, float]] = []
        posted = 0
        marks: dict[str, float] = {}
        error: str | None = None
        progress = tqdm(total=n, unit="ind", desc="POST", mininterval=1.0, smoothing=0.1, dynamic_ncols=True)

        def on_posted(count: int) -> None:
            nonlocal posted
            posted += count
            progress.update(count)

        async def sampler() -> None:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    re = await scrape(self.watch, self.metrics_url("rule-engine"), RECORDS)
                    for name in self.replicas:
                        re += await scrape(self.watch, self.metrics_url(name), RECORDS)
                    sink = await scrape(self.watch, self.metrics_url("netskope-sink"), RECORDS)
                    timeline.append(
                        (
                            round(time.perf_counter() - t0, 2),
                            posted,
                            metric(re, "cte_consumer_records_total", consumer=RE_CONSUMER, outcome="applied")
                            - applied0,
                            metric(sink, "cte_consumer_records_total", consumer=SINK_CONSUMER, outcome="applied"),
                        )
                    )
                await asyncio.sleep(0.5)

        await self.refresh_pg_pids()
        meter.start()
        t0 = time.perf_counter()
        sampling = asyncio.create_task(sampler())
        try:
            await self.post_all(self.api, bodies, statuses, post_seconds, on_posted)
            marks["http"] = time.perf_counter() - t0
            progress.close()
            print(f"pipeline: {n:,} accepted in {marks['http']:.1f} s; waiting for the read model ...", flush=True)
            last_count = 0.0

            async def read_model_done() -> bool:
                nonlocal last_count
                if not timeline or timeline[-1][2] < n or time.monotonic() - last_count < 1.0:
                    return False
                last_count = time.monotonic()
                return await self.read_model_holds(self.pool, expected)  # type: ignore[arg-type]

            async def progress_detail() -> str:
                async with self.pool.acquire() as conn:  # type: ignore[union-attr]
                    entries = await conn.fetchval("SELECT count(*) FROM indicator_sources")
                return f"{entries:,} of {expected['source_entries']:,} source entries in the read model"

            timeout = self.args.pipeline_timeout or 180 + n / 400
            try:
                await wait_until(
                    read_model_done,
                    within=timeout,
                    what="the read model to hold every indicator",
                    interval=0.1,
                    alive=self.services.check_alive,
                    detail=progress_detail,
                )
                marks["read_model"] = time.perf_counter() - t0
                print(
                    f"pipeline: read model complete at {marks['read_model']:.1f} s; waiting for the lists ...",
                    flush=True,
                )
                ends = await self.end_offsets(self.topics.share_intents, 6)

                async def flushed() -> bool:
                    return await self.caught_up(SINK_CONSUMER, self.topics.share_intents, ends) and (
                        await self.lists_flushed()
                    )

                await wait_until(
                    flushed,
                    within=max(timeout - marks["read_model"], 120),
                    what="every list to be flushed",
                    interval=0.1,
                    alive=self.services.check_alive,
                    detail=self.list_detail,
                )
                marks["flushed"] = time.perf_counter() - t0
                print(f"pipeline: every list flushed at {marks['flushed']:.1f} s", flush=True)
            except BenchError as exc:
                # Recorded, not fatal: what was measured stands, and the later phases still run.
                error = str(exc)
                print(f"pipeline: {error}", flush=True)
        finally:
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
            progress.close()
        await self.refresh_pg_pids()
        cpu = meter.stop()
        cpu["postgresql_by_client"] = meter.by_label("postgresql", self.pg_clients, "server")
        after = await self.snapshot()
        top_statements = await self.statements(n) if statements else None

        first_applied = next((t for t, _, a, _ in timeline if a > 0), 0.0)
        re_delta = {
            k: metric(after["rule-engine"], k, consumer=RE_CONSUMER)
            - metric(before["rule-engine"], k, consumer=RE_CONSUMER)
            for k in ("cte_consumer_batch_duration_seconds_sum", "cte_consumer_batch_duration_seconds_count")
        }
        write_sum = metric(after["rule-engine"], "cte_read_model_write_duration_seconds_sum") - metric(
            before["rule-engine"], "cte_read_model_write_duration_seconds_sum"
        )
        intents = metric(after["rule-engine"], "cte_share_intents_published_total") - metric(
            before["rule-engine"], "cte_share_intents_published_total"
        )

        def api_post(samples: list[tuple[str, dict[str, str], float]], name: str) -> float:
            # Every POST of the phase is an indicator batch (the route label does not always name the route).
            return sum(v for k, lab, v in samples if k == name and lab.get("method") == "POST")

        api_seconds = api_post(after["ingest-api"], "cte_http_request_duration_seconds_sum") - api_post(
            before["ingest-api"], "cte_http_request_duration_seconds_sum"
        )
        push = {
            k: metric(after["netskope-sink"], k) - metric(before["netskope-sink"], k)
            for k in ("cte_sink_push_duration_seconds_sum", "cte_sink_push_duration_seconds_count")
        }
        # A failed push is retried after a backoff, which the lists' flush waits for.
        failed_pushes = metric(after["netskope-sink"], "cte_sink_pushes_total", outcome="failed") - metric(
            before["netskope-sink"], "cte_sink_pushes_total", outcome="failed"
        )
        lists = await self.list_state()
        deployed = await self.deployed_counts() if "flushed" in marks else {}
        rm_at, flushed_at = marks.get("read_model"), marks.get("flushed")
        elapsed_rm = rm_at - first_applied if rm_at is not None else 0.0

        def r2(x: float | None) -> float | None:
            return round(x, 2) if x is not None else None

        return {
            **({"error": error} if error else {}),
            "indicators": n,
            "data": expected,
            "concurrency": self.args.concurrency,
            "statuses": {str(k): v for k, v in statuses.items()},
            "http_seconds": round(marks["http"], 2),
            "http_per_second": rate(n, marks["http"]),
            "post_answer": summary_ms(post_seconds),
            "read_model_seconds": r2(rm_at),
            "first_applied_seconds": first_applied,
            "merges_per_second": rate(n, elapsed_rm),
            "flushed_seconds": r2(flushed_at),
            "end_to_end_per_second": rate(n, flushed_at) if flushed_at else None,
            "rule_engine": {
                "batches": int(re_delta["cte_consumer_batch_duration_seconds_count"]),
                "batch_seconds": round(re_delta["cte_consumer_batch_duration_seconds_sum"], 2),
                "read_model_write_seconds": round(write_sum, 2),
                "busy_fraction": round(re_delta["cte_consumer_batch_duration_seconds_sum"] / elapsed_rm, 2)
                if elapsed_rm > 0
                else None,
                "records_per_busy_second": rate(n, re_delta["cte_consumer_batch_duration_seconds_sum"]),
                "share_intents": int(intents),
            },
            "api": {"post_seconds_total": round(api_seconds, 2)},  # time the API spent answering the POSTs
            "sink": {
                "pushes": int(push["cte_sink_push_duration_seconds_count"]),
                "push_seconds": round(push["cte_sink_push_duration_seconds_sum"], 2),
                "failed_pushes": int(failed_pushes),
            },
            "cpu": cpu,
            **({"statements": top_statements} if top_statements is not None else {}),
            "lists": lists,
            "tenant_holds": deployed,
            "timeline": [list(x) for x in timeline[:: max(1, len(timeline) // 200)]],
        }

    async def one_entry_change(self, key: str, runs: int = 3) -> dict[str, Any]:
        """A one-entry change to the filled list, sent the way production sends it and pushed and recorded
        by the running sink: a member put at the top of the priority order (an append) and taken out again
        (a removal, which the URL-list API takes only as a replace), each one ShareIntent record on the
        share-intents topic keyed by its list (what the rule-engine publishes; the sink's consumer applies
        it and wakes its flusher), each timed from the send until list_state.flushed_version caught up
        with the version the intent made (read in the same snapshot that shows the change applied)."""
        assert self.pool is not None
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            entries = await conn.fetchval("SELECT entries FROM list_state WHERE list_key = $1", key)
        timings: dict[str, list[float]] = {"add": [], "remove": []}
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for n in range(runs):
                value = f"one-entry-{n}.bench.example"
                for change in ("add", "remove"):
                    intent = ShareIntent(
                        list_key=key,
                        value=value,
                        type=IndicatorType.DOMAIN,
                        add=change == "add",
                        priority=1e12,
                        cost_bytes=len(value) + 5,
                    )
                    t0 = time.perf_counter()
                    await producer.send_and_wait(
                        self.topics.share_intents, intent.model_dump_json().encode(), key=key.encode()
                    )

                    async def done(value: str = value, add: bool = change == "add") -> bool:
                        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
                            row = await conn.fetchrow(
                                "SELECT s.version, s.flushed_version, EXISTS (SELECT 1 FROM list_members m "
                                "WHERE m.list_key = s.list_key AND m.value = $2) AS member "
                                "FROM list_state s WHERE s.list_key = $1",
                                key,
                                value,
                            )
                        return bool(row["member"] == add and row["flushed_version"] >= row["version"])

                    await wait_until(
                        done,
                        within=120,
                        what=f"the sink to push a one-entry change ({change}) to {key}",
                        interval=0.01,
                        alive=self.services.check_alive,
                        detail=self.list_detail,
                    )
                    timings[change].append(round(time.perf_counter() - t0, 3))
        finally:
            await producer.stop()
        return {
            "list": key,
            "entries": entries,
            "add_seconds": timings["add"],
            "remove_seconds": timings["remove"],
            "sent_as": "one ShareIntent record on the share-intents topic",
        }

    async def push_steps(self, before: list[tuple[str, dict[str, str], float]]) -> dict[str, dict[str, float]]:
        """Where the sink's pushes since ``before`` spent their time, by step (cte_sink_push_step_seconds):
        how many times each step ran and its mean in milliseconds."""
        after = await scrape(self.watch, self.metrics_url("netskope-sink"))
        steps = {lab["step"] for n, lab, _ in after if n == "cte_sink_push_step_seconds_count"}
        out = {}
        for step in sorted(steps):
            count = metric(after, "cte_sink_push_step_seconds_count", step=step) - metric(
                before, "cte_sink_push_step_seconds_count", step=step
            )
            total = metric(after, "cte_sink_push_step_seconds_sum", step=step) - metric(
                before, "cte_sink_push_step_seconds_sum", step=step
            )
            if count:
                out[step] = {"count": int(count), "mean_ms": round(total * 1000 / count, 1)}
        return out

    async def push_stats(self, before: list[tuple[str, dict[str, str], float]], list_key: str) -> dict[str, Any]:
        """The sink's pushes of one list since ``before``: how many, and their mean duration."""
        after = await scrape(self.watch, self.metrics_url("netskope-sink"))
        count = metric(after, "cte_sink_push_duration_seconds_count", list=list_key) - metric(
            before, "cte_sink_push_duration_seconds_count", list=list_key
        )
        total = metric(after, "cte_sink_push_duration_seconds_sum", list=list_key) - metric(
            before, "cte_sink_push_duration_seconds_sum", list=list_key
        )
        return {
            "pushes": int(count),
            "mean_seconds": round(total / count, 3) if count else None,
            "flush_interval_seconds": SinkSettings.model_fields["flush_interval_seconds"].default,
        }

    async def list_state(self) -> dict[str, Any]:
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            rows = await conn.fetch(
                "SELECT s.list_key, s.entries, s.bytes, s.left_out, s.rejected, s.version, s.flushed_version, "
                "(SELECT count(*) FROM list_members m WHERE m.list_key = s.list_key) AS members "
                "FROM list_state s WHERE s.list_key = ANY($1::text[])",
                [self.list_keys["urls"], self.list_keys["hashes"]],
            )
        return {r["list_key"]: {k: r[k] for k in ("members", "entries", "bytes", "left_out", "rejected")} for r in rows}

    async def list_detail(self) -> str:
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            rows = await conn.fetch(
                "SELECT list_key, version, flushed_version, failures, last_error FROM list_state "
                "WHERE version > flushed_version"
            )
        return (
            "; ".join(
                f"{r['list_key']} at version {r['flushed_version']} of {r['version']}, {r['failures']} failures "
                f"({(r['last_error'] or '')[:200]})"
                for r in rows
            )
            or "sink still applying intents"
        )

    async def deployed_counts(self) -> dict[str, int]:
        assert self.tenant is not None
        state = (await self.tenant.get("/_sim/state")).json()
        urls = state["urllists"].get("bench-urls", {})
        return {
            "url_list_deployed": len(urls.get("deployed") or []),
            "url_list_pending_equals_deployed": urls.get("pending") == urls.get("deployed"),
            "file_hash_list": len(state["filehashlists"].get("bench-hashes", [])),
        }

    async def storage(self) -> dict[str, Any]:
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            size = await conn.fetchval(
                "SELECT pg_total_relation_size('indicators') + pg_total_relation_size('indicator_sources')"
            )
            count = await conn.fetchval("SELECT count(*) FROM indicators")
            entries = await conn.fetchval("SELECT count(*) FROM indicator_sources")
        return {
            "indicators": count,
            "source_entries": entries,
            "bytes": size,
            "bytes_per_indicator": round(size / count) if count else None,
        }

    # --- latency ----------------------------------------------------------------------------------------

    async def latency(self, source: str, list_key: str, tag: str, per_second: int = 5000) -> dict[str, Any]:
        """Domains POSTed at a steady ``per_second`` (a batch every 100 ms) for the configured seconds; for
        10 values of each batch, the time from the batch's scheduled send to the value's row in the sink's
        list_pushed (written once the tenant accepted the push and the deploy).

        When the API falls 2 s behind the schedule (20 batches unanswered) the rate is not sustained: the
        load stops there, rather than measuring an ever-growing queue, and the result says so."""
        assert self.api is not None
        assert self.pool is not None
        interval = 0.1
        per_batch = max(1, round(per_second * interval))
        sample_every = max(1, per_batch // 10)
        batches = int(self.args.latency_seconds / interval)
        pending: dict[str, float] = {}
        seen: list[float] = []
        # Where a sampled value's time goes before its push: the rule-engine's batch (its row in the read
        # model) and the sink's intents batch (its row in list_members).
        stage_pending: dict[str, dict[str, float]] = {"read model": {}, "list member": {}}
        stage_seen: dict[str, list[float]] = {stage: [] for stage in stage_pending}
        post_seconds: list[float] = []
        statuses: dict[int, int] = {}
        outstanding: set[asyncio.Task[None]] = set()
        sustained = True
        sent = 0

        async def post(k: int, scheduled: float) -> None:
            values = [data.live_domain(tag, k * per_batch + j) for j in range(per_batch)]
            for j in range(0, per_batch, sample_every):
                pending[values[j]] = scheduled
                for waiting in stage_pending.values():
                    waiting[values[j]] = scheduled
            body = [{"value": v, "type": "domain", "source": source, "severity": "high"} for v in values]
            t = time.perf_counter()
            r = await self.api.post(INGEST_PATH, json=body)  # type: ignore[union-attr]
            post_seconds.append(time.perf_counter() - t)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code != 201:
                for j in range(0, per_batch, sample_every):
                    pending.pop(values[j], None)
                    for waiting in stage_pending.values():
                        waiting.pop(values[j], None)

        def arrived(waiting: dict[str, float], rows: list[asyncpg.Record], times: list[float]) -> None:
            t = time.perf_counter()
            for r in rows:
                sent_at = waiting.pop(r["value"], None)
                if sent_at is not None:
                    times.append(t - sent_at)

        async def poll() -> None:
            while True:
                if not pending and not any(stage_pending.values()):
                    await asyncio.sleep(0.05)
                    continue
                async with self.pool.acquire() as conn:  # type: ignore[union-attr]
                    if stage_pending["read model"]:
                        rows = await conn.fetch(
                            "SELECT value FROM indicators WHERE value = ANY($1::text[])",
                            list(stage_pending["read model"]),
                        )
                        arrived(stage_pending["read model"], rows, stage_seen["read model"])
                    if stage_pending["list member"]:
                        rows = await conn.fetch(
                            "SELECT value FROM list_members WHERE list_key = $1 AND value = ANY($2::text[])",
                            list_key,
                            list(stage_pending["list member"]),
                        )
                        arrived(stage_pending["list member"], rows, stage_seen["list member"])
                    if pending:
                        rows = await conn.fetch(
                            "SELECT value FROM list_pushed WHERE list_key = $1 AND value = ANY($2::text[])",
                            list_key,
                            list(pending),
                        )
                        arrived(pending, rows, seen)
                await asyncio.sleep(0.05)

        statements = await self.statements_reset()
        push0 = await scrape(self.watch, self.metrics_url("netskope-sink"))
        polling = asyncio.create_task(poll())
        try:
            start = time.perf_counter() + 0.1
            for k in range(batches):
                if len(outstanding) >= 20:
                    sustained = False
                    break
                scheduled = start + k * interval
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(post(k, scheduled))
                outstanding.add(task)
                task.add_done_callback(outstanding.discard)
                sent += 1
            if outstanding:
                await asyncio.gather(*outstanding)
            sent_seconds = time.perf_counter() - start
            with contextlib.suppress(BenchError):
                await wait_until(
                    lambda: asyncio.sleep(0, result=not pending),
                    within=self.args.latency_timeout,
                    what="sampled values to be deployed",
                    alive=self.services.check_alive,
                )
        finally:
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polling
        posted = statuses.get(201, 0) * per_batch
        return {
            "list": list_key,
            "rate_per_second": per_batch * round(1 / interval),
            "seconds": self.args.latency_seconds,
            "sustained": sustained,
            "offered_seconds": round(sent * interval, 1),
            "posted": posted,
            "achieved_per_second": rate(posted, sent_seconds),
            "statuses": {str(k): v for k, v in statuses.items()},
            "post_answer": summary_ms(post_seconds),
            "deployed": summary_ms(seen),
            # The same sampled values' time from the scheduled send until the earlier stages held them.
            "stages": {stage: summary_ms(times) for stage, times in stage_seen.items()},
            "missing": len(pending),
            "missing_after_seconds": self.args.latency_timeout if pending else None,
            "sink_pushes": await self.push_stats(push0, list_key),
            "sink_push_steps": await self.push_steps(push0),
            # Every process's statements during it, per indicator posted (CTE_PG_STAT_STATEMENTS=1).
            **({"statements": await self.statements(max(1, posted), top=15)} if statements else {}),
        }

    # --- expiry -----------------------------------------------------------------------------------------

    async def expiry(self, count: int = 300, ttl: float = 5.0) -> dict[str, Any]:
        """``count`` domains POSTed with expiresAt = now + ttl to a source shared to a list: the time from
        expiresAt until each is gone from the sink's list_pushed (the tenant's list, deployed)."""
        assert self.api is not None
        assert self.pool is not None
        list_key = self.list_keys["expiry"]
        values = [data.live_domain("exp", k) for k in range(count)]
        expires_wall = datetime.now(UTC) + timedelta(seconds=ttl)
        expires_at = time.perf_counter() + (expires_wall - datetime.now(UTC)).total_seconds()
        body = [
            {
                "value": v,
                "type": "domain",
                "source": SOURCES["expiry"],
                "severity": "high",
                "expiresAt": expires_wall.isoformat(),
            }
            for v in values
        ]
        push0 = await scrape(self.watch, self.metrics_url("netskope-sink"))
        posted_at = time.perf_counter()
        await self.call("POST", INGEST_PATH, body)

        async def in_list() -> int:
            async with self.pool.acquire() as conn:  # type: ignore[union-attr]
                n: int = await conn.fetchval(
                    "SELECT count(*) FROM list_pushed WHERE list_key = $1 AND value = ANY($2::text[])", list_key, values
                )
            return n

        await wait_until(
            lambda: _ge(in_list(), count), within=60, what="the expiring values to be deployed", interval=0.05
        )
        deployed_after = time.perf_counter() - posted_at
        deployed_before_expiry = time.perf_counter() < expires_at
        present = set(values)
        gone: list[float] = []
        deadline = time.perf_counter() + ttl + self.args.latency_timeout
        while present and time.perf_counter() < deadline:
            async with self.pool.acquire() as conn:  # type: ignore[union-attr]
                rows = await conn.fetch(
                    "SELECT value FROM list_pushed WHERE list_key = $1 AND value = ANY($2::text[])",
                    list_key,
                    list(present),
                )
            t = time.perf_counter()
            still = {r["value"] for r in rows}
            gone += [t - expires_at] * len(present - still)
            present = still
            self.services.check_alive()
            await asyncio.sleep(0.05)
        return {
            "sink_pushes": await self.push_stats(push0, list_key),
            "ager_sweep_interval_seconds": AgerSettings.model_fields["sweep_interval_seconds"].default,
            "indicators": count,
            "ttl_seconds": ttl,
            "deployed_after_seconds": round(deployed_after, 2),
            "deployed_before_expiry": deployed_before_expiry,
            "removal": summary_ms(gone),
            "missing": len(present),
        }

    # --- a list at its cap -----------------------------------------------------------------------------

    async def cap(self, size: int) -> dict[str, Any]:
        """``size`` candidates COPYed straight into list_members for a fresh list of a sharing created for
        it, the list made due in list_state (the sink's own state: acceptable for a benchmark), and the
        time until the running sink has selected the top within the cap, pushed, deployed and recorded it
        (list_state.flushed_version caught up)."""
        assert self.pool is not None
        assert self.tenant is not None
        key = self.list_keys[f"cap-{size}"]
        tag = f"cap{size}"
        rows = [
            (key, v, "url", float(1_700_000_000 + (k * 7919) % size), len(json.dumps(v)) + 3)
            for k in range(size)
            for v in [data.cap_candidate(tag, k)]
        ]
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            t0 = time.perf_counter()
            await conn.copy_records_to_table(
                "list_members", records=rows, columns=["list_key", "value", "type", "priority", "cost_bytes"]
            )
            copy_seconds = time.perf_counter() - t0
        del rows
        seq = (await self.tenant.get("/_sim/requests", params={"since": 10**12})).json()["total"]
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            started_wall = time.time()
            t0 = time.perf_counter()
            version = await conn.fetchval(
                "INSERT INTO list_state (list_key, version) VALUES ($1, 1) "
                "ON CONFLICT (list_key) DO UPDATE SET version = list_state.version + 1 RETURNING version",
                key,
            )

        async def done() -> bool:
            async with self.pool.acquire() as conn:  # type: ignore[union-attr]
                flushed = await conn.fetchval("SELECT flushed_version FROM list_state WHERE list_key = $1", key)
            return bool(flushed is not None and flushed >= version)

        await wait_until(
            done,
            within=120 + size / 2000,
            what=f"the sink to push the list of {size:,} candidates",
            interval=0.05,
            alive=self.services.check_alive,
            detail=self.list_detail,
        )
        seconds = time.perf_counter() - t0
        finished_wall = started_wall + seconds
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            state = await conn.fetchrow(
                "SELECT entries, bytes, cap_bytes, left_out FROM list_state WHERE list_key = $1", key
            )
        log = (await self.tenant.get("/_sim/requests", params={"since": seq})).json()["requests"]
        name = f"bench-cap-{size}"
        tenant_calls = [r for r in log if r["path"].startswith("/api/v2/policy/urllist")]
        first_call = min((r["time"] for r in tenant_calls), default=None)
        deploy = [r for r in tenant_calls if r["path"].endswith("/deploy")]
        deployed_at = max((r["time"] + r["duration_ms"] / 1000 for r in deploy), default=None)
        return {
            "candidates": size,
            "list": name,
            "copy_seconds": round(copy_seconds, 2),
            "seconds": round(seconds, 2),
            "entries": state["entries"],
            "bytes": state["bytes"],
            "cap_bytes": state["cap_bytes"],
            "left_out": state["left_out"],
            "entries_per_second": rate(state["entries"], seconds),
            "breakdown": {
                "until_first_tenant_call": round(first_call - started_wall, 2) if first_call else None,
                "tenant_calls_until_deployed": round(deployed_at - first_call, 2)
                if first_call and deployed_at
                else None,
                "recording_after_deploy": round(finished_wall - deployed_at, 2) if deployed_at else None,
                "tenant_requests": len(tenant_calls),
            },
        }


async def _ge(value: Any, bound: int) -> bool:
    return bool(await value >= bound)


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    b, p = result["baselines"], result.get("pipeline", {})

    def ratio(x: float | None, y: float | None) -> float | None:
        return round(x / y, 3) if x and y else None

    out = {
        "http_ingest_vs_raw_produce": ratio(p.get("http_per_second"), b["kafka"]["produce"]["per_second"]),
        "http_ingest_alone_vs_raw_produce": ratio(
            result.get("ingest_alone", {}).get("http_per_second"), b["kafka"]["produce"]["per_second"]
        ),
        "merges_vs_raw_upsert": ratio(p.get("merges_per_second"), b["postgres"]["upsert"]["per_second"]),
        "merges_alone_vs_raw_upsert": ratio(
            result.get("merges_alone", {}).get("merges_per_second"), b["postgres"]["upsert"]["per_second"]
        ),
        "merges_vs_raw_upsert_with_sources": ratio(
            p.get("merges_per_second"), b["postgres"]["upsert_with_sources"]["per_second"]
        ),
        "end_to_end_vs_raw_consume": ratio(p.get("end_to_end_per_second"), b["kafka"]["consume"]["per_second"]),
    }
    for size, cap in result.get("cap", {}).items():
        if "entries_per_second" in cap:
            out[f"list_push_{size}_vs_raw_append"] = ratio(cap["entries_per_second"], b["tenant"]["append_per_second"])
    return out


async def measure(bench: Bench) -> dict[str, Any]:
    args, n = bench.args, bench.n
    result = bench.result
    data.check_canonical(n)

    if not args.pipeline_only:
        print("baselines: rule evaluation in-process ...", flush=True)
        result["rule_evaluation"] = await asyncio.to_thread(evaluation.measure, n)
        print("baselines: Kafka produce and consume ...", flush=True)
        result["baselines"] = {
            "kafka": await baselines.kafka(bench.bootstrap, f"{bench.prefix}.raw.v1", n, args.concurrency)
        }
        print("baselines: PostgreSQL COPY and upserts ...", flush=True)
        result["baselines"]["postgres"] = await baselines.postgres(bench.database_url, n)

    print("services: starting ...", flush=True)
    await asyncio.to_thread(bench.start_services)
    await bench.connect()
    if not args.pipeline_only:
        print("baselines: the fake tenant's URL-list append and deploy ...", flush=True)
        result["baselines"]["tenant"] = await baselines.tenant(bench.tenant_url, V2_TOKEN, n)
    await bench.configure()

    print(f"pipeline: serializing {n:,} indicators ...", flush=True)
    bodies = list(data.bodies(n))
    if not args.pipeline_only:
        print("HTTP ingest alone ...", flush=True)
        result["ingest_alone"] = await bench.ingest_alone(bodies)
        print("read-model merges alone ...", flush=True)
        result["merges_alone"] = await bench.merges_alone()
    result["pipeline"] = await bench.pipeline(bodies)
    if args.pipeline_only:
        result["rss_mb"] = {"after_pipeline": await bench.rss()}
        return result
    result["storage"] = await bench.storage()
    result["one_entry"] = await bench.one_entry_change(bench.list_keys["urls"])
    result["rss_mb"] = {"after_pipeline": await bench.rss()}

    async def phase(name: str, coro: Any) -> Any:
        """A measurement after the pipeline: a failure is recorded and the run goes on."""
        print(f"{name} ...", flush=True)
        try:
            return await coro
        except BenchError as exc:
            print(f"{name}: FAILED: {exc}", flush=True)
            return {"error": str(exc)}

    result["latency"] = {
        "loaded_list": await phase(
            "latency at 5,000/s into the pipeline's list", bench.latency(data.SOURCE_A, bench.list_keys["urls"], "lat2")
        )
    }
    if not result["latency"]["loaded_list"].get("sustained", True):
        # 5,000/s is more than this machine carries: time the same at half the end-to-end rate it sustained.
        e2e = result["pipeline"]["end_to_end_per_second"] or 200
        slower = max(100, int(e2e / 2 / 100) * 100)
        result["latency"]["sustainable"] = await phase(
            f"latency at {slower:,}/s into the pipeline's list",
            bench.latency(data.SOURCE_A, bench.list_keys["urls"], "lat3", slower),
        )
    if args.latency_fresh:
        result["latency"]["fresh_list"] = await phase(
            "latency into a fresh list", bench.latency(SOURCES["live"], bench.list_keys["live"], "lat1")
        )
    result["expiry"] = await phase("expiry to removal", bench.expiry())
    result["cap"] = {
        str(size): await phase(f"list at its cap from {size:,} candidates", bench.cap(size)) for size in args.cap_sizes
    }
    result["rss_mb"]["end"] = await bench.rss()
    result["ratios"] = ratios(result)
    return result


async def server_settings() -> dict[str, str]:
    admin = await asyncpg.connect(admin_database_url())
    try:
        return {"version": await admin.fetchval("SHOW server_version"), **await durability(admin)}
    finally:
        await admin.close()


async def prepare(bench: Bench) -> None:
    admin = await asyncpg.connect(admin_database_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{bench.db_name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{bench.db_name}"')
    finally:
        await admin.close()
    await asyncio.to_thread(upgrade, bench.database_url)
    await create_topics(bench.bootstrap, bench.prefix)
    if not bench.args.pipeline_only:
        await create_topics(bench.bootstrap, bench.alone_prefix)
        await create_topics(bench.bootstrap, bench.merge_prefix)


async def cleanup(bench: Bench) -> None:
    with contextlib.suppress(Exception):
        await bench.close()
    try:
        admin = await asyncpg.connect(admin_database_url())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{bench.db_name}" WITH (FORCE)')
        finally:
            await admin.close()
    except Exception as exc:
        print(f"cleanup: could not drop database {bench.db_name}: {exc}", file=sys.stderr)
    try:
        client = AIOKafkaAdminClient(bootstrap_servers=bench.bootstrap)
        await client.start()
        try:
            mine = [t for t in await client.list_topics() if t.startswith(bench.prefix + ".")]
            if mine:
                await client.delete_topics(mine)
        finally:
            await client.close()
    except Exception as exc:
        print(f"cleanup: could not delete topics {bench.prefix}.*: {exc}", file=sys.stderr)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="indicators in the pipeline run")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent POSTs of the load generator")
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=60.0,
        help="how long the steady 5,000 /s into the list at its cap lasts (the target is stated for 60 s)",
    )
    parser.add_argument("--latency-timeout", type=float, default=60.0, help="how long a sampled value may take")
    parser.add_argument(
        "--latency-fresh", action="store_true", help="also time POST to deployed into a fresh list of its own"
    )
    parser.add_argument(
        "--cap-sizes",
        type=lambda text: [int(x) for x in text.split(",")],
        default=None,
        help="candidates of the lists at their cap, comma-separated (default: 100000,1000000 for a run of a "
        "million indicators, 100000 otherwise)",
    )
    parser.add_argument(
        "--pipeline-timeout",
        type=float,
        default=None,
        help="seconds the pipeline may take until every list is flushed (default: 180 + size / 400)",
    )
    parser.add_argument("--skip-read-path", action="store_true", help="leave out the read-path benchmark")
    parser.add_argument(
        "--pipeline-only",
        action="store_true",
        help="only the pipeline (no baselines, latency, expiry or cap runs, no read path): to compare a change's CPU",
    )
    # Two members by default: a member waits on PostgreSQL and Kafka for about a third of its batch, and a
    # second one works meanwhile (bench/notes.md, "Issue 14: the rule-engine, more members and less CPU").
    parser.add_argument(
        "--rule-engines", type=int, default=2, help="rule-engine processes (members of one consumer group)"
    )
    parser.add_argument("--no-stack", action="store_true", help="use the running Kafka and PostgreSQL as they are")
    parser.add_argument(
        "--allow-non-durable",
        action="store_true",
        help="measure even if PostgreSQL runs with fsync or synchronous_commit off (the results say so)",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    if args.size < 5000:
        parser.error("--size must be at least 5000")
    if args.cap_sizes is None:
        args.cap_sizes = list(CAP_SIZES) if args.size >= 1_000_000 else [CAP_SIZES[0]]
    if any(size not in CAP_SIZES for size in args.cap_sizes):
        parser.error(f"--cap-sizes: each one of {', '.join(map(str, CAP_SIZES))}")

    # SIGTERM (a CI timeout, kill) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    bench = Bench(args, secrets.token_hex(4))
    bench.result.update(
        {
            "benchmark": "pipeline",
            "size": args.size,
            "rule_engines": args.rule_engines,
            "date": now_iso(),
            **git_commit(),
            "machine": machine(),
            "load_average_before": load_average(),
            "reproduce": f"uv run --frozen python bench/run.py --size {args.size} --rule-engines {args.rule_engines}",
        }
    )
    started = time.perf_counter()
    try:
        if not args.no_stack:
            stack("up", "kafka", "postgres", "--owner", OWNER)
        settings = asyncio.run(server_settings())
        bench.result["postgresql"] = settings
        durable = settings.get("fsync") == "on" and settings.get("synchronous_commit") != "off"
        bench.result["durable"] = durable
        if not durable and not args.allow_non_durable:
            shown = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "version")
            raise BenchError(
                f"PostgreSQL runs with {shown}: not durable (probably started by `make test` with CTE_PG_FAST=1). "
                "Stop it (deploy/stack.sh down --owner test, once the tests are done) so this run starts it with "
                "durable settings, or pass --allow-non-durable to measure anyway."
            )
        try:
            asyncio.run(prepare(bench))
            asyncio.run(measure(bench))
        finally:
            print("stopping the services ...", flush=True)
            bench.services.stop_all()
            asyncio.run(cleanup(bench))
        if not args.skip_read_path and not args.pipeline_only:
            print(f"read path over {args.size:,} indicators ...", flush=True)
            try:
                read = asyncio.run(read_path.measure(admin_database_url(), args.size, runs=7, kafka=kafka_bootstrap()))
                args.out_dir.mkdir(parents=True, exist_ok=True)
                (args.out_dir / f"read_path-{args.size}.json").write_text(json.dumps(read, indent=2) + "\n")
            except BenchError as exc:
                print(f"read path: FAILED: {exc}", flush=True)
                bench.result["read_path_error"] = str(exc)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; the processes it started are stopped", file=sys.stderr)
        return 130
    finally:
        bench.services.stop_all()
        if not args.no_stack:
            try:
                stack("down", "--owner", OWNER)
            except BenchError as exc:
                print(f"bench: {exc}", file=sys.stderr)
    bench.result["load_average_after"] = load_average()
    bench.result["total_seconds"] = round(time.perf_counter() - started, 1)
    bench.result["assessment"] = render.assess(bench.result)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"pipeline-{args.size}.json"
    out.write_text(json.dumps(bench.result, indent=2, default=str) + "\n")
    print(f"results: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if args.out_dir == RESULTS_DIR:
        render.write()
        print("docs/BENCHMARKS.md regenerated")
    print(render.table(bench.result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
