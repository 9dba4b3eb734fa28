"""Helpers every benchmark shares: the machine, the stack, databases, service processes, /proc and
Prometheus readings, percentiles, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from alembic import command

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cte_common.migrate import alembic_config
from tests.support.processes import Service, free_port

RESULTS_DIR = ROOT / "bench" / "results"
LOG_DIR = ROOT / ".stack" / "logs" / "bench"
STACK = ROOT / "deploy" / "stack.sh"
CLK_TCK = os.sysconf("SC_CLK_TCK")

__all__ = ["ROOT", "Service", "free_port"]


class BenchError(RuntimeError):
    """A benchmark step failed or a bounded wait ran out; the message says which and why."""


# --- where things run ----------------------------------------------------------------------------------


def kafka_bootstrap() -> str:
    return os.environ.get("CTE_BENCH_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('CTE_KAFKA_PORT', '9092')}")


def admin_database_url() -> str:
    return os.environ.get(
        "CTE_BENCH_ADMIN_URL", f"postgresql://postgres@127.0.0.1:{os.environ.get('CTE_PG_PORT', '5433')}/postgres"
    )


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{name}"


def copy_database(source_url: str, target_url: str) -> None:
    """Schema and rows of one database into another, empty one (pg_dump into pg_restore, the server's
    own binaries): a copy of a database others are connected to, which CREATE DATABASE … TEMPLATE
    refuses."""
    bindir = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    dump = subprocess.run(
        [str(bindir / "pg_dump"), "--format=custom", "--no-owner", f"--dbname={source_url}"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [str(bindir / "pg_restore"), "--no-owner", f"--dbname={target_url}"],
        input=dump.stdout,
        check=True,
        capture_output=True,
    )


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    """Cores, memory and CPU model (from /proc), and the software the figures depend on."""
    cpuinfo = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    mem = re.search(r"MemTotal:\s+(\d+) kB", _read("/proc/meminfo"))
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "arch": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def load_average() -> list[float]:
    return [float(x) for x in _read("/proc/loadavg").split()[:3]] or [0.0, 0.0, 0.0]


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "libs", "services", "tools")),
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- the stack --------------------------------------------------------------------------------------------


def stack(*args: str) -> None:
    """deploy/stack.sh with the given arguments; fails loudly."""
    r = subprocess.run([str(STACK), *args], cwd=ROOT, check=False)
    if r.returncode != 0:
        raise BenchError(f"deploy/stack.sh {' '.join(args)} failed with exit code {r.returncode}")


async def durability(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')"
    )
    return {r["name"]: r["setting"] for r in rows}


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str, name: str):  # type: ignore[no-untyped-def]
    """A database created for the run and dropped after it, whatever happens."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(admin_url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def migrated_connections(revisions: Mapping[str, str], prefix: str):  # type: ignore[no-untyped-def]
    """One scratch database per label, migrated to its revision (``head``: the newest), each with a
    connection and that connection's backend pid: ``(connections, pids)`` by label."""
    admin = admin_database_url()
    async with contextlib.AsyncExitStack() as stack:
        conns: dict[str, asyncpg.Connection] = {}
        for k, (label, revision) in enumerate(revisions.items()):
            url = await stack.enter_async_context(scratch_database(admin, f"{prefix}_{k}"))
            await asyncio.to_thread(command.upgrade, alembic_config(url), revision)
            conns[label] = await asyncpg.connect(url)
            stack.push_async_callback(conns[label].close)  # closed before its database is dropped
        pids = {label: await c.fetchval("SELECT pg_backend_pid()") for label, c in conns.items()}
        yield conns, pids


# --- service processes ------------------------------------------------------------------------------------


class Services:
    """The processes a benchmark started; ``stop_all`` stops every one of them (and only them)."""

    def __init__(self, log_dir: Path = LOG_DIR) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.running: dict[str, Service] = {}

    def start(
        self, name: str, env: dict[str, str], ready_url: str, timeout: float = 300.0, command: str = ""
    ) -> Service:
        """Start ``cte-<name>`` (or ``command``, for a second replica under a name of its own)."""
        command = command or f"cte-{name}"
        log_name = command if name == command.removeprefix("cte-") else f"{command}-{name}"
        with contextlib.suppress(FileNotFoundError):
            (self.log_dir / f"{log_name}.log").unlink()
        service = Service(command, env, ready_url, self.log_dir, name=log_name)
        self.running[name] = service
        try:
            service.start(timeout=timeout)
        except RuntimeError as exc:
            raise BenchError(f"{name} did not start: {exc}") from None
        return service

    def pid(self, name: str) -> int:
        proc = self.running[name].proc
        assert proc is not None
        return proc.pid

    def stop(self, name: str) -> None:
        self.running.pop(name).stop()

    def check_alive(self) -> None:
        for name, service in self.running.items():
            if service.proc is not None and service.proc.poll() is not None:
                raise BenchError(
                    f"{name} exited with code {service.proc.returncode} during the run; its log "
                    f"({service.log_path}) ends with:\n{service.log_tail()}"
                )

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            with contextlib.suppress(Exception):
                self.running[name].stop()
        self.running.clear()


# --- /proc ----------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, in seconds (0 when it is gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def on_cpu_seconds(pid: int) -> float:
    """Time the process's main thread ran on a CPU (schedstat), in seconds, to the nanosecond: fine enough
    for a single statement, where the stat counters tick every 10 ms."""
    fields = _read(f"/proc/{pid}/schedstat").split()
    return int(fields[0]) / 1e9 if fields else 0.0


def report_backend_cpu(benchmark: str, measure: Coroutine[Any, Any, dict[str, Any]], out: Path | None) -> None:
    """Run one of the interleaved backend-CPU comparisons (bench/key_collation.py,
    bench/apply_intents_pair.py): print its µs per value for each side and write the result to ``out``."""
    result: dict[str, Any] = {
        "benchmark": benchmark,
        "date": now_iso(),
        "commit": git_commit(),
        "machine": machine(),
        "load_average_before": load_average(),
    }
    result |= asyncio.run(measure)
    result["load_average_after"] = load_average()
    for label, steps in result["us_per_value"].items():
        print(f"{label}: " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()) + " µs of backend CPU per value")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")


def run_queue_seconds(pid: int) -> float:
    """Time the process's threads spent runnable but waiting for a CPU (schedstat run_delay), in seconds."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        fields = _read(f"/proc/{pid}/task/{tid}/schedstat").split()
        if len(fields) >= 2:
            total += int(fields[1])
    return total / 1e9


def status_kb(pid: int, field: str) -> int | None:
    m = re.search(rf"^{field}:\s+(\d+) kB", _read(f"/proc/{pid}/status"), re.MULTILINE)
    return int(m.group(1)) if m else None


def peak_rss_mb(pid: int) -> float | None:
    """The peak RSS of the process, or of the largest of its processes (the ingest-api's workers): the
    limit is per process."""
    peaks = [kb for kb in (status_kb(p, "VmHWM") for p in process_tree(pid)) if kb is not None]
    return round(max(peaks) / 1024, 1) if peaks else None


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (a service that runs several processes, like the ingest-api's
    uvicorn workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read(f"/proc/{entry}/stat")
            if stat:
                # The command (field 2) may hold spaces; the parent pid is the second field after it.
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def stack_pid(component: str) -> int | None:
    """The pid of a stack component (kafka, postgres), from deploy/stack.sh's run files (under
    CTE_STACK_DIR when set, as deploy/stack.sh reads it)."""
    stack = Path(os.environ.get("CTE_STACK_DIR") or ROOT / ".stack")
    if component == "postgres":
        text = _read(str(stack / "pg" / "data" / "postmaster.pid"))
    else:
        text = _read(str(stack / "run" / f"{component}.pid"))
    first = text.split("\n", 1)[0].strip()
    return int(first) if first.isdigit() else None


class CpuMeter:
    """CPU seconds, and seconds spent waiting for a CPU, of named processes between ``start`` and ``stop``
    (pids resolved by callables, so processes that appear meanwhile, like new PostgreSQL backends, count)."""

    def __init__(self, groups: Mapping[str, Callable[[], Iterable[int]]]) -> None:
        self.groups = {**groups, "load generator (this process)": lambda: [os.getpid()]}
        self.before: dict[str, dict[int, tuple[float, float]]] = {}
        self.after: dict[str, dict[int, tuple[float, float]]] = {}
        self.started = 0.0

    def _read_all(self) -> dict[str, dict[int, tuple[float, float]]]:
        return {
            name: {pid: (cpu_seconds(pid), run_queue_seconds(pid)) for pid in pids()}
            for name, pids in self.groups.items()
        }

    def start(self) -> None:
        self.before = self._read_all()
        self.started = time.perf_counter()

    def by_label(self, group: str, labels: Mapping[int, str], default: str) -> dict[str, float]:
        """CPU seconds of ``group`` between start and stop, summed per label of each pid."""
        out: dict[str, float] = {}
        old = self.before.get(group, {})
        for pid, (c, _) in self.after.get(group, {}).items():
            label = labels.get(pid, default)
            out[label] = out.get(label, 0.0) + max(c - old.get(pid, (0.0, 0.0))[0], 0.0)
        return {k: round(v, 2) for k, v in sorted(out.items())}

    def stop(self) -> dict[str, Any]:
        after = self.after = self._read_all()
        elapsed = time.perf_counter() - self.started
        cpu: dict[str, float] = {}
        waited: dict[str, float] = {}
        for name, pids in after.items():
            old = self.before.get(name, {})
            cpu[name] = round(max(sum(c - old.get(pid, (0.0, 0.0))[0] for pid, (c, _) in pids.items()), 0.0), 2)
            waited[name] = round(max(sum(w - old.get(pid, (0.0, 0.0))[1] for pid, (_, w) in pids.items()), 0.0), 2)
        return {"elapsed_seconds": round(elapsed, 2), "cpu_seconds": cpu, "run_queue_seconds": waited}


# --- Prometheus text ----------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            with contextlib.suppress(ValueError):
                out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def metric(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of every series of ``name`` whose labels include ``labels``."""
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


async def scrape(
    client: httpx.AsyncClient, url: str, names: tuple[str, ...] = ()
) -> list[tuple[str, dict[str, str], float]]:
    """A service's metrics; with ``names``, only those samples (prometheus_client's ``name[]``), which
    is what a sampler polling inside a measured window should ask for: rendering every histogram of a
    service twice a second took about 3% of the rule-engine's CPU, a cost Prometheus (every 15 s or
    more) never puts on it."""
    r = await client.get(url, params=[("name[]", n) for n in names], timeout=10)
    r.raise_for_status()
    return parse_metrics(r.text)


# --- statistics and waiting ------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    values = sorted(seconds)
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1) if values else None,
        "p90_ms": round(percentile(values, 90) * 1000, 1) if values else None,
        "p99_ms": round(percentile(values, 99) * 1000, 1) if values else None,
        "max_ms": round(values[-1] * 1000, 1) if values else None,
    }


async def wait_until(
    check: Callable[[], Awaitable[Any]],
    *,
    within: float,
    what: str,
    interval: float = 0.25,
    alive: Callable[[], None] | None = None,
    detail: Callable[[], Awaitable[str]] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy; BenchError after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            extra = f" ({await detail()})" if detail is not None else ""
            raise BenchError(f"timed out after {within:.0f} s waiting for {what}{extra}")
        await asyncio.sleep(interval)


def rate(count: float, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None
