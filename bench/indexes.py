"""What each index of the read model costs the merge and what it buys the queries it serves.

    uv run --frozen python bench/indexes.py --count 1000000

It loads N indicators into a database of its own (bench/read_path.py's rows, binary COPY), then:

- times every read-path query (bench/read_path.py's, compiled by the API's own filter compiler and sort
  clause) with EXPLAIN ANALYZE, with every index present and with each one dropped (in a transaction
  rolled back);
- times the rule-engine's merge (its own statements: the rows loaded FOR UPDATE, both upserts, one
  transaction per 1,000 indicators) of new and of re-sighted indicators, with the index set of the
  schema's head, with primary keys only, and with primary keys plus each index alone: backend CPU (from
  /proc of the backend process, so PostgreSQL must run on this machine), wall time and WAL bytes per
  indicator, each after a CHECKPOINT so every configuration pays the same full-page images.

Results: bench/results/indexes-<N>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import RESULTS_DIR, BenchError, admin_database_url, git_commit, machine, now_iso, scratch_database
from bench.read_path import QUERIES, load, rows

from cte_common.migrate import upgrade
from cte_common.query import SqlParams, parse_json, to_sql
from ingest_api.indicators.repository import sort_clause
from rule_engine.repository import _LOAD_INDICATORS, _LOAD_SOURCES, _UPSERT_INDICATORS, _UPSERT_SOURCES

BATCH = 1_000
TICKS = os.sysconf("SC_CLK_TCK")
TABLES = ("indicators", "indicator_sources")
# The ager's sweeps, and the values of one configuration (its deletion, rule tests and dry runs).
OTHER_QUERIES = {
    "ager: due indicators": (
        "SELECT value, expires_at FROM indicators WHERE active AND expires_at IS NOT NULL AND expires_at <= $1 "
        "ORDER BY expires_at LIMIT 1000",
        [datetime.now(UTC)],
    ),
    "ager: inactive indicators": (
        "SELECT i.value FROM indicators i WHERE NOT i.active AND i.value > $1 ORDER BY i.value LIMIT 1000",
        [""],
    ),
    "a configuration's values": ("SELECT value FROM indicator_sources WHERE source = $1", ["feed-c"]),
}


def api_query(params: dict[str, str]) -> tuple[str, list[Any]]:
    """The SQL the ingest-api runs for GET /api/cte/indicators/ with these parameters."""
    sql = SqlParams(start=1)
    where = to_sql(parse_json(params.get("filters", "{}")), sql)
    if params.get("aggregate") == "true":
        return f"SELECT count(*) FROM indicators i WHERE {where}", sql.values
    order_by = sort_clause(params.get("sort"), params.get("ascending", "true") == "true")
    n = len(sql.values)
    limit = int(params.get("limit", "100"))
    return f"SELECT i.* FROM indicators i WHERE {where} {order_by} OFFSET ${n + 1} LIMIT ${n + 2}", [
        *sql.values,
        0,
        limit,
    ]


async def indexes(conn: asyncpg.Connection) -> dict[str, str]:
    """Every index but the primary keys, by name: its CREATE statement."""
    found = await conn.fetch(
        """
        SELECT c.relname AS name, pg_get_indexdef(x.indexrelid) AS ddl
        FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname = ANY($1::text[]) AND NOT x.indisprimary ORDER BY t.relname, c.relname
        """,
        list(TABLES),
    )
    return {r["name"]: r["ddl"] for r in found}


async def explain_ms(conn: asyncpg.Connection, sql: str, args: list[Any], runs: int = 3) -> float:
    """The best of `runs` EXPLAIN ANALYZE execution times (the first warms the cache)."""
    best = float("inf")
    for _ in range(runs):
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
        best = min(best, json.loads(plan)[0]["Execution Time"])
    return round(best, 2)


async def query_benefits(conn: asyncpg.Connection, names: list[str]) -> dict[str, dict[str, float]]:
    """Each query's time with every index, then with each index dropped (rolled back)."""
    # A substring match scans the table whatever the indexes.
    queries = {name: api_query(params) for name, params in QUERIES.items() if name != "value substring"}
    queries |= OTHER_QUERIES
    out: dict[str, dict[str, float]] = {}
    for query, (sql, args) in queries.items():
        out[query] = {"all": await explain_ms(conn, sql, args)}
        for name in names:
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.execute(f'DROP INDEX "{name}"')
                out[query][f"without {name}"] = await explain_ms(conn, sql, args)
            finally:
                await tx.rollback()
        print(f"  {query}: {out[query]['all']} ms with every index", flush=True)
    return out


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _merge_args(ind: list[tuple[Any, ...]], src: list[tuple[Any, ...]]) -> tuple[list[list[Any]], list[list[Any]]]:
    """The rule-engine's upsert arguments for these rows (its column order)."""
    ind_cols = [[r[k] for r in ind] for k in (0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)]
    src_cols = [[r[k] for r in src] for k in range(12)]
    src_cols[10] = [json.dumps(tags) for tags in src_cols[10]]
    return ind_cols, src_cols


async def merge(
    conn: asyncpg.Connection, start: int, count: int, resight: bool, checkpoint: bool = True
) -> dict[str, float]:
    """The rule-engine's merge of `count` indicators numbered from `start`, 1,000 a transaction; after a
    CHECKPOINT unless told otherwise (then the server's own checkpoints fall where its settings put them)."""
    ind, src = rows(count, seed=11, start=start)
    if resight:
        later = datetime.now(UTC) + timedelta(minutes=1)
        ind = [(*r[:8], later, *r[9:13], r[13] + 1, r[14] + 1, r[15]) for r in ind]
        src = [(r[0], r[1], r[2] + 1, r[3] + 1, r[4], later, *r[6:]) for r in src]
    by_value: dict[str, list[tuple[Any, ...]]] = {}
    for r in src:
        by_value.setdefault(r[0], []).append(r)
    if checkpoint:
        await conn.execute("CHECKPOINT")
    checkpoints = "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
    checkpoints0 = await conn.fetchval(checkpoints)
    pid = conn.get_server_pid()
    cpu0, wal0, t0 = _backend_cpu(pid), await conn.fetchval("SELECT pg_current_wal_lsn()"), time.perf_counter()
    for k in range(0, count, BATCH):
        batch = ind[k : k + BATCH]
        values = [r[0] for r in batch]
        ind_cols, src_cols = _merge_args(batch, [s for v in values for s in by_value.get(v, [])])
        async with conn.transaction():
            await conn.fetch(_LOAD_INDICATORS, values)
            await conn.fetch(_LOAD_SOURCES, values)
            await conn.execute(_UPSERT_INDICATORS, *ind_cols)
            await conn.execute(_UPSERT_SOURCES, *src_cols)
    wall, cpu = time.perf_counter() - t0, _backend_cpu(pid) - cpu0
    wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", wal0)
    return {
        "cpu_us": round(cpu / count * 1e6, 1),
        "wall_us": round(wall / count * 1e6, 1),
        "wal_bytes": round(float(wal) / count),
        "checkpoints": await conn.fetchval(checkpoints) - checkpoints0,
    }


async def hot_ratio(conn: asyncpg.Connection) -> dict[str, float]:
    stats = await conn.fetch(
        "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = ANY($1::text[])",
        list(TABLES),
    )
    return {r["relname"]: round(r["n_tup_hot_upd"] / r["n_tup_upd"], 3) if r["n_tup_upd"] else 0.0 for r in stats}


async def merge_costs(
    conn: asyncpg.Connection, count: int, sample: int, ddl: dict[str, str], head_only: bool
) -> dict[str, Any]:
    """Merge costs with the head's indexes, with primary keys only, and with each index alone added."""
    next_new = count
    resight_from = 0
    out: dict[str, Any] = {}

    async def measure(label: str) -> None:
        nonlocal next_new, resight_from
        await conn.execute("SELECT pg_stat_reset()")
        new = await merge(conn, next_new, sample, resight=False)
        old = await merge(conn, resight_from, sample, resight=True)
        await asyncio.sleep(0.6)  # the statistics collector reports every 500 ms
        out[label] = {"new": new, "resighted": old, "hot": await hot_ratio(conn)}
        next_new += sample
        resight_from += sample
        print(f"  {label}: new {new}, re-sighted {old}", flush=True)

    await measure("head's indexes")
    if head_only:
        return out
    for name in ddl:
        await conn.execute(f'DROP INDEX "{name}"')
    await measure("primary keys only")
    for name, create in ddl.items():
        await conn.execute(create)
        await measure(f"+ {name}")
        await conn.execute(f'DROP INDEX "{name}"')
    return out


async def sustained(conn: asyncpg.Connection, count: int, sample: int) -> dict[str, Any]:
    """`sample` new, then `sample` re-sighted indicators merged in one go with the head's indexes, no
    forced checkpoint: what the server settings (checkpoint spacing, WAL compression, buffers) change."""
    await conn.execute("SELECT pg_stat_reset()")
    new = await merge(conn, count, sample, resight=False, checkpoint=False)
    old = await merge(conn, 0, sample, resight=True, checkpoint=False)
    await asyncio.sleep(0.6)
    print(f"  sustained: new {new}, re-sighted {old}", flush=True)
    return {"new": new, "resighted": old, "hot": await hot_ratio(conn)}


async def run(admin_url: str, count: int, sample: int, head_only: bool, sustain: int) -> dict[str, Any]:
    async with scratch_database(admin_url, "cte_bench_indexes") as url:
        await asyncio.to_thread(upgrade, url)
        print(f"indexes: loading {count:,} indicators ...", flush=True)
        loaded = await load(url, count)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("VACUUM ANALYZE")
            settings = {
                r["name"]: r["setting"] + (r["unit"] or "")
                for r in await conn.fetch(
                    "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
                    [
                        "shared_buffers",
                        "effective_cache_size",
                        "work_mem",
                        "max_wal_size",
                        "checkpoint_timeout",
                        "wal_compression",
                        "fsync",
                        "synchronous_commit",
                    ],
                )
            }
            ddl = await indexes(conn)
            sizes = {
                r["name"]: r["bytes"]
                for r in await conn.fetch(
                    "SELECT relname AS name, pg_relation_size(oid) AS bytes FROM pg_class WHERE relname = ANY($1)",
                    list(ddl),
                )
            }
            queries = {}
            if not head_only:
                print("indexes: queries, with and without each index", flush=True)
                queries = await query_benefits(conn, list(ddl))
            print("indexes: merges", flush=True)
            if sustain:
                merges = {f"sustained, {sustain:,} each": await sustained(conn, count, sustain)}
            else:
                merges = await merge_costs(conn, count, sample, ddl, head_only)
        finally:
            await conn.close()
    return {
        "benchmark": "indexes",
        "date": now_iso(),
        **git_commit(),
        "machine": machine(),
        "load_average": os.getloadavg(),
        "postgresql": settings,
        "indicators": count,
        "merged_per_configuration": sample,
        **loaded,
        "indexes": ddl,
        "index_bytes": sizes,
        "queries_ms": queries,
        "merge": merges,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=10_000, help="indicators merged per configuration")
    parser.add_argument("--head-only", action="store_true", help="the merge with the head's indexes only")
    parser.add_argument(
        "--sustained", type=int, default=0, help="instead: merge this many new, then re-sighted, without CHECKPOINT"
    )
    parser.add_argument("--admin-url", default=admin_database_url())
    parser.add_argument("--out", default=None, help="default: bench/results/indexes-<count>.json")
    args = parser.parse_args()
    try:
        result = asyncio.run(
            run(args.admin_url, args.count, args.sample, args.head_only or bool(args.sustained), args.sustained)
        )
    except BenchError as exc:
        print(f"indexes: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else RESULTS_DIR / f"indexes-{args.count}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"indexes: written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
