"""A one-entry change to a URL list of about 190,000 entries, pushed and recorded by the running sink.

The 100,000 pipeline run fills its URL list to about 60,000 entries; the 190,000-entry figure of the
issue comes from the 1,000,000 run. This script makes such a list directly, without the pipeline:
616,497 candidates of 38 bytes each COPYed into ``list_members`` of a sharing of its own (the list
made due: its first push, from every candidate, is timed too), so that 7 MiB keep about 193,000; then
the same one-entry changes as ``bench/run.py`` (a member added at the top of the order and taken out
again, each one share intent sent on the share-intents topic, as the rule-engine sends it), each timed
from the send until ``list_state.flushed_version`` caught up, with the CPU of the sink, PostgreSQL and
the fake tenant during them, the tenant's calls, the sink's push steps and PostgreSQL's statements.

    uv run --frozen python bench/one_entry.py [--candidates 616497] [--runs 5] [--out-dir DIR]

Needs Kafka and PostgreSQL as bench/run.py does (CTE_KAFKA_PORT, CTE_PG_PORT); starts the services.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, load_average, machine, now_iso, scrape, wait_until
from bench.run import Bench, cleanup, prepare

COST = 38  # bytes against the cap: 33 characters


def candidate(k: int) -> str:
    return f"{k:08d}.one-entry-list.example"[:33].ljust(33, "x")


async def measure(bench: Bench, candidates: int, runs: int) -> dict[str, Any]:
    await asyncio.to_thread(bench.start_services)
    await bench.connect()
    await bench.configure()
    assert bench.pool is not None
    key = bench.list_keys["cap-1000000"]
    rows = [
        (key, candidate(k), "domain", float(1_700_000_000 + (k * 7919) % candidates), COST) for k in range(candidates)
    ]
    async with bench.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "list_members", records=rows, columns=["list_key", "value", "type", "priority", "cost_bytes"]
        )
        await conn.execute("ANALYZE list_members")
        t0 = time.perf_counter()
        version = await conn.fetchval(
            "INSERT INTO list_state (list_key, version) VALUES ($1, 1) "
            "ON CONFLICT (list_key) DO UPDATE SET version = list_state.version + 1 RETURNING version",
            key,
        )
    del rows

    async def flushed() -> bool:
        async with bench.pool.acquire() as conn:  # type: ignore[union-attr]
            done = await conn.fetchval("SELECT flushed_version FROM list_state WHERE list_key = $1", key)
        return bool(done is not None and done >= version)

    await wait_until(flushed, within=600, what="the first push", interval=0.05, alive=bench.services.check_alive)
    first_push = round(time.perf_counter() - t0, 2)
    await bench.refresh_pg_pids()
    assert bench.tenant is not None
    seq = (await bench.tenant.get("/_sim/requests", params={"since": 10**12})).json()["total"]
    meter = bench.cpu_meter()
    load_before = load_average()
    statements = await bench.statements_reset()
    steps0 = await scrape(bench.watch, bench.metrics_url("netskope-sink"))
    meter.start()
    changes = await bench.one_entry_change(key, runs=runs)
    cpu = meter.stop()
    steps = await bench.push_steps(steps0)
    # Where a change's time goes on the tenant's side: its calls, by kind, as the fake tenant timed them.
    log = (await bench.tenant.get("/_sim/requests", params={"since": seq})).json()["requests"]
    tenant_ms: dict[str, list[float]] = {}
    for r in log:
        kind = r["path"].rsplit("/", 1)[-1] if r["path"].startswith("/api/v2/policy/urllist/") else r["path"]
        tenant_ms.setdefault(f"{r['method']} {kind}", []).append(round(r["duration_ms"], 1))
    return {
        "candidates": candidates,
        "first_push_seconds": first_push,
        "one_entry": changes,
        "cpu_during_changes": cpu,
        "tenant_calls_ms": tenant_ms,
        # The sink's own account of each push, by step (its cte_sink_push_step_seconds).
        "sink_push_steps": steps,
        # PostgreSQL's statements during the changes, per change (CTE_PG_STAT_STATEMENTS=1).
        **({"statements": await bench.statements(2 * runs, top=15)} if statements else {}),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=616_497)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    bench_args = argparse.Namespace(
        size=5000, concurrency=4, cap_sizes=[1_000_000], out_dir=args.out_dir, rule_engines=1
    )
    bench = Bench(bench_args, secrets.token_hex(4))
    result: dict[str, Any] = {"benchmark": "one_entry", "date": now_iso(), "machine": machine()}
    try:
        asyncio.run(prepare(bench))
        result.update(asyncio.run(measure(bench, args.candidates, args.runs)))
    finally:
        bench.services.stop_all()
        asyncio.run(cleanup(bench))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / "one_entry.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
