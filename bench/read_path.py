"""Read-path benchmark: GET /api/cte/indicators/ with filters and sorts over N stored indicators.

    uv run python bench/read_path.py --count 1000000

It loads N indicators (and one source entry each, a fifth of them a second, one in 500 a third) straight into a fresh
database with binary COPY (this measures reads, not ingest), runs ANALYZE, starts the real ingest-api
against it, and times each query through HTTP. Results: bench/results/read_path-<N>.json. bench/run.py
runs it too, at the pipeline's size, after the pipeline's services are stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (
    LOG_DIR,
    RESULTS_DIR,
    BenchError,
    Services,
    admin_database_url,
    durability,
    free_port,
    git_commit,
    kafka_bootstrap,
    load_average,
    machine,
    now_iso,
    scratch_database,
)

from cte_common.migrate import upgrade

TYPES = ("url", "domain", "hostname", "ipv4", "md5", "sha256")
SEVERITIES = ("unknown", "low", "medium", "high", "critical")
# The Threat IoCs page: the last 7 days (lastSeen of some source), newest first, 10 a page, its count,
# and the same narrowed by value, type, source or tag.
_WEEK = {"lastSeen": {"$gte": (datetime.now(UTC) - timedelta(days=7)).isoformat()}}
PAGE_QUERIES: dict[str, dict[str, str]] = {
    "page: last 7 days, newest first": {"sources": {"$elemMatch": _WEEK}},
    "page: last 7 days, a value": {"value": "verify-1.example.com", "sources": {"$elemMatch": _WEEK}},
    "page: last 7 days, a type": {"type": "ipv4", "sources": {"$elemMatch": _WEEK}},
    "page: last 7 days, a source": {"sources": {"$elemMatch": {**_WEEK, "source": "feed-b"}}},
    "page: last 7 days, a tag": {"sources": {"$elemMatch": {**_WEEK, "tags": {"$in": ["phishing"]}}}},
    "page: last 7 days, a rare source": {"sources": {"$elemMatch": {**_WEEK, "source": "feed-c"}}},
    "page: last 7 days, a rare tag": {"sources": {"$elemMatch": {**_WEEK, "tags": {"$in": ["ransomware"]}}}},
}
QUERIES: dict[str, dict[str, str]] = {
    **{
        name: {"filters": json.dumps(f), "sort": "sources.lastSeen", "ascending": "false", "limit": "10"}
        for name, f in PAGE_QUERIES.items()
    },
    "page: Unshared (left out by a list), newest first": {
        "filters": json.dumps({"sources": {"$elemMatch": {"tags": {"$in": ["Unshared"]}}}}),
        "sort": "sources.lastSeen",
        "ascending": "false",
        "limit": "10",
    },
    "count shared with a destination": {
        "filters": json.dumps({"sharedWith": {"$in": ["bench-dest"]}}),
        "aggregate": "true",
    },
    "page: count of the last 7 days": {
        "filters": json.dumps(PAGE_QUERIES["page: last 7 days, newest first"]),
        "aggregate": "true",
    },
    "type filter, newest first": {
        "filters": json.dumps({"type": "url"}),
        "sort": "sources.lastSeen",
        "ascending": "false",
    },
    "per-source severity, newest first": {
        "filters": json.dumps({"sources": {"$elemMatch": {"severity": {"$in": ["high", "critical"]}}}}),
        "sort": "sources.lastSeen",
        "ascending": "false",
    },
    "exact value": {"filters": json.dumps({"value": "verify-1.example.com"})},
    "value substring": {"filters": json.dumps({"value": {"$regex": "verify-99"}})},
    "expiring soon, by expiry": {
        "filters": json.dumps({"expiresAt": {"$lt": (datetime.now(UTC) + timedelta(days=2)).isoformat()}}),
        "sort": "expiresAt",
    },
    "count of a type": {"filters": json.dumps({"type": "sha256"}), "aggregate": "true"},
    "source and tag": {
        "filters": json.dumps({"sources": {"$elemMatch": {"source": "feed-b", "tags": {"$in": ["phishing"]}}}}),
    },
}

# The Threat IoCs page as the console opens it (console/src/pages/iocs.tsx): its default filter as the
# filter builder writes it (lastSeen >= 7 days ago, to the second, JSON.stringify's compact form) and its
# two requests, the page and the count, sent at once with the console's own parameters.
_CONSOLE_SINCE = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
CONSOLE_FILTERS = json.dumps({"sources": {"$elemMatch": {"lastSeen": {"$gte": _CONSOLE_SINCE}}}}, separators=(",", ":"))
CONSOLE_REQUESTS: dict[str, dict[str, str]] = {
    "page": {"filters": CONSOLE_FILTERS, "sort": "sources.lastSeen", "ascending": "false", "skip": "0", "limit": "10"},
    "count": {"filters": CONSOLE_FILTERS, "aggregate": "true"},
}


def rows(count: int, seed: int, start: int = 0) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Indicator and source rows number `start` to `start + count` (the same row for the same number)."""
    now = datetime.now(UTC)
    indicators, sources = [], []
    words = ("login", "verify", "secure", "mail", "cdn", "pay")
    for n in range(start, start + count):
        rng = random.Random(seed * 1_000_003 + n)
        kind = TYPES[n % len(TYPES)]
        value = f"{words[n % len(words)]}-{n}.example.com"
        if kind == "url":
            value = f"https://{value}/p/{n}"
        elif kind == "ipv4":
            value = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
        elif kind in ("md5", "sha256"):
            value = f"{n:0{32 if kind == 'md5' else 64}x}"
        seen = now - timedelta(seconds=rng.randint(0, 90 * 86400))
        expires = seen + timedelta(days=rng.randint(1, 90))
        severity = SEVERITIES[rng.randrange(5)]
        indicators.append(
            (value, kind, False, False, True, expires, "feed-a", seen, seen, 5, severity, "", "", 0, 1, [])
        )
        tags = (["phishing"] if n % 7 == 0 else []) + (["ransomware"] if n % 1000 == 0 else [])
        sources.append((value, "feed-a", 0, 1, seen, seen, 5, severity, "", "", tags, False))
        if n % 5 == 0:
            sources.append((value, "feed-b", 0, 1, seen, seen, 7, SEVERITIES[rng.randrange(5)], "", "", tags, False))
        if n % 500 == 3:  # a small configuration
            sources.append((value, "feed-c", 0, 1, seen, seen, 9, severity, "", "", [], False))
    return indicators, sources


async def load(url: str, count: int) -> dict[str, float]:
    indicators, sources = rows(count, seed=11)
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "indicators",
            records=indicators,
            columns=[
                "value",
                "type",
                "test",
                "safe",
                "active",
                "expires_at",
                "source",
                "first_seen",
                "last_seen",
                "reputation",
                "severity",
                "comments",
                "extended_information",
                "internal_hits",
                "external_hits",
                "shared_with",
            ],
        )
        await conn.copy_records_to_table(
            "indicator_sources",
            records=sources,
            columns=[
                "value",
                "source",
                "internal_hits",
                "external_hits",
                "first_seen",
                "last_seen",
                "reputation",
                "severity",
                "comments",
                "extended_information",
                "tags",
                "retracted",
            ],
        )
        loaded = time.perf_counter() - started
        await lists(conn)
        await conn.execute("ANALYZE")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    return {"load_seconds": round(loaded, 2), "database_bytes": float(size)}


# The netskope-sink's state for one URL list shared from feed-a to "bench-dest": every URL, domain,
# hostname and IPv4 of feed-a a member (priority: its lastSeen), the cut at a third of them (the
# newest), one member in 1,000 changed since the push, one in 5,000 refused. The answers derive their
# tags, sharedWith and destinations from it (list_value_status), and two queries filter on them.
LIST_KEY = "bench-tenant/url/bench-urls"


async def lists(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO configurations (name, plugin) VALUES ('feed-a', 'api_source'), ('bench-dest', 'netskope')"
    )
    await conn.execute(
        "INSERT INTO sharings (source, rule, destination, action, parameters, list_key) "
        "VALUES ('feed-a', 'All', 'bench-dest', 'url', '{}', $1)",
        LIST_KEY,
    )
    await conn.execute(
        """
        INSERT INTO list_members (list_key, value, type, priority, cost_bytes)
        SELECT $1, value, type, extract(epoch FROM last_seen), length(value) + 5 FROM indicators
        WHERE type IN ('url', 'domain', 'hostname', 'ipv4')
        """,
        LIST_KEY,
    )
    await conn.execute(
        """
        WITH ranked AS (
            SELECT priority, value, cost_bytes, row_number() OVER w AS n, count(*) OVER () AS total,
                   sum(cost_bytes) OVER w AS used
            FROM list_members WHERE list_key = $1
            WINDOW w AS (ORDER BY -priority, value COLLATE "C")
        )
        INSERT INTO list_state (list_key, version, flushed_version, cut_priority, cut_value, cut_bytes, cut_count,
                                cut_trusted, entries)
        SELECT $1, 1, 1, priority, value, 1 + used, n, true, n FROM ranked WHERE n = total / 3
        """,
        LIST_KEY,
    )
    await conn.execute(
        "INSERT INTO list_changes (list_key, value, old_priority, old_cost, old_type) "
        "SELECT list_key, value, priority, cost_bytes, type FROM list_members WHERE list_key = $1 "
        "AND hashtext(value) % 1000 = 0",
        LIST_KEY,
    )
    await conn.execute(
        "INSERT INTO list_outcomes (list_key, value, outcome, reason) SELECT list_key, value, 'rejected', 'x' "
        "FROM list_members WHERE list_key = $1 AND hashtext(value) % 5000 = 1",
        LIST_KEY,
    )


def time_queries(api_url: str, token: str, runs: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for name, params in QUERIES.items():
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                r = client.get("/api/cte/indicators/", params={"limit": "100", **params})  # pages set their own
                timings.append(time.perf_counter() - started)
                r.raise_for_status()
            timings.sort()
            out[name] = {
                "p50_ms": round(statistics.median(timings) * 1000, 1),
                "max_ms": round(timings[-1] * 1000, 1),
                "rows": len(r.json()) if isinstance(r.json(), list) else r.json()["count"],
            }
    return out


async def time_console(api_url: str, token: str, runs: int) -> dict[str, Any]:
    """The console's Threat IoCs page opened ``runs`` times: each request's time and the page's wall time
    (both sent at once, so the slower of the two), with the load average before and after."""
    timings: dict[str, list[float]] = {"page": [], "count": [], "wall": []}
    answers: dict[str, Any] = {}
    load_before = load_average()
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:

        async def one(name: str) -> float:
            started = time.perf_counter()
            r = await client.get("/api/cte/indicators/", params=CONSOLE_REQUESTS[name])
            elapsed = time.perf_counter() - started
            r.raise_for_status()
            answers[name] = r.json()
            return elapsed

        for _ in range(runs):
            started = time.perf_counter()
            page, count = await asyncio.gather(one("page"), one("count"))
            timings["wall"].append(time.perf_counter() - started)
            timings["page"].append(page)
            timings["count"].append(count)
    out: dict[str, Any] = {
        name: {"p50_ms": round(statistics.median(t) * 1000, 1), "max_ms": round(max(t) * 1000, 1)}
        for name, t in timings.items()
    }
    out["page"]["rows"] = len(answers["page"])
    out["count"]["rows"] = answers["count"]["count"]
    return {
        "filters": CONSOLE_FILTERS,
        "runs": runs,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        **out,
    }


async def measure(
    admin_url: str, count: int, runs: int = 7, kafka: str | None = None, console_runs: int = 21
) -> dict[str, Any]:
    """Load ``count`` indicators into a database of its own, time every query, drop the database."""
    async with scratch_database(admin_url, "cte_bench_read") as url:
        admin = await asyncpg.connect(admin_url)
        try:
            settings = {"version": await admin.fetchval("SHOW server_version"), **await durability(admin)}
        finally:
            await admin.close()
        await asyncio.to_thread(upgrade, url)
        print(f"read path: loading {count:,} indicators ...", flush=True)
        loaded = await load(url, count)
        port = free_port()
        env = {
            "CTE_DATABASE_URL": url,
            "CTE_KAFKA_BOOTSTRAP": kafka or kafka_bootstrap(),
            "CTE_API_PORT": str(port),
            "CTE_TOPIC_PREFIX": "bench-read",
            "CTE_BOOTSTRAP_CLIENT_ID": "bench",
            "CTE_BOOTSTRAP_CLIENT_SECRET": "bench-secret",
            "CTE_JWT_SECRET": "bench-signing-key-" + "x" * 32,
            "CTE_LOG_LEVEL": "WARNING",
        }
        services = Services(LOG_DIR / "read-path")
        try:
            services.start("ingest-api", env, f"http://127.0.0.1:{port}/healthz")
            auth = httpx.post(
                f"http://127.0.0.1:{port}/api/auth",
                data={"grant_type": "client_credentials", "client_id": "bench", "client_secret": "bench-secret"},
            ).json()
            api = f"http://127.0.0.1:{port}"
            queries = await asyncio.to_thread(time_queries, api, auth["access_token"], runs)
            console = await time_console(api, auth["access_token"], console_runs)
        finally:
            services.stop_all()
    return {
        "benchmark": "read_path",
        "date": now_iso(),
        **git_commit(),
        "machine": machine(),
        "postgresql": settings,
        "durable": settings.get("fsync") == "on" and settings.get("synchronous_commit") != "off",
        "indicators": count,
        **loaded,
        "queries": queries,
        "console_iocs_page": console,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--console-runs", type=int, default=21, help="times the console's Threat IoCs page is opened")
    parser.add_argument("--admin-url", default=admin_database_url())
    parser.add_argument("--out", default=None, help="default: bench/results/read_path-<count>.json")
    args = parser.parse_args()
    try:
        result = asyncio.run(measure(args.admin_url, args.count, args.runs, console_runs=args.console_runs))
    except BenchError as exc:
        print(f"read path: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else RESULTS_DIR / f"read_path-{args.count}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
