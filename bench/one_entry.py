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
        [--steady-rate 5000 --steady-seconds 30]

With ``--steady-rate``, after the one-entry changes: new values keep arriving at the top of the order
for ``--steady-seconds``, as the rule-engine sends them (a record per list every 100 ms, its intents
in one envelope), into the list at its cap, so that every push gives up entries at the bottom. Each
push's steps (cte_sink_push_step_seconds, scraped as the pushes are recorded), each intent's time from
its send until its value's row in ``list_pushed`` (p50, p99), and the CPU per intent of the sink, of
its PostgreSQL backends and of the fake tenant.

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

from aiokafka import AIOKafkaProducer
from bench.common import RESULTS_DIR, load_average, machine, metric, now_iso, scrape, summary_ms, wait_until
from bench.run import Bench, cleanup, prepare

from cte_common.envelope import envelope_values
from cte_common.events import ShareIntentRecord, encode_share_intent
from cte_common.indicators import IndicatorType

COST = 38  # bytes against the cap: 33 characters


def candidate(k: int) -> str:
    return f"{k:08d}.one-entry-list.example"[:33].ljust(33, "x")


STEADY_INTERVAL = 0.1  # the rule-engine sends a batch's intents about this often under load
# A new value outranks every candidate (their priorities are below 1.8e9) and the one before it.
STEADY_PRIORITY = 2e9


def steady_value(k: int) -> str:
    return f"{k:08d}.steady-top.example"[:33].ljust(33, "y")


async def steady(bench: Bench, key: str, rate: int, seconds: float) -> dict[str, Any]:
    """New values at the top of the order at ``rate`` per second for ``seconds``, into the list at its
    cap: one envelope per ``STEADY_INTERVAL`` on the share-intents topic, keyed by the list. Timed per
    value from its envelope's send until its row in list_pushed; per push, the sink's steps."""
    assert bench.pool is not None
    per_batch = max(1, round(rate * STEADY_INTERVAL))
    batches = max(1, round(seconds / STEADY_INTERVAL))
    sent: dict[int, tuple[float, list[str]]] = {}  # batch -> (send time, values)
    latencies: list[float] = []
    pushes: list[dict[str, Any]] = []
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    meter = bench.cpu_meter()
    meter.start()
    started = time.perf_counter()
    sending = True

    async def send() -> None:
        nonlocal sending
        try:
            for b in range(batches):
                due = started + b * STEADY_INTERVAL
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                values = [steady_value(b * per_batch + i) for i in range(per_batch)]
                events = [
                    encode_share_intent(
                        ShareIntentRecord(
                            list_key=key,
                            value=v,
                            type=IndicatorType.DOMAIN,
                            add=True,
                            priority=STEADY_PRIORITY + b * per_batch + i,
                            cost_bytes=COST,
                        )
                    )
                    for i, v in enumerate(values)
                ]
                t0 = time.perf_counter()
                for _, envelope in envelope_values(events):
                    await producer.send(bench.topics.share_intents, envelope, key=key.encode())
                sent[b] = (t0, values)
            await producer.flush()
        finally:
            sending = False

    async def watch() -> None:
        last = await scrape(bench.watch, bench.metrics_url("netskope-sink"))
        deadline: float | None = None
        polls = 0
        while sending or sent:
            await asyncio.sleep(0.05)
            polls += 1
            if polls % 20 == 0:
                # Backends the sink's pool opens during the run count too (the meter reads these pids).
                await bench.refresh_pg_pids()
            if sent:
                # A batch's values are recorded together (its envelope is applied in one transaction and a
                # push reads one snapshot): its last value stands for it, so the probe stays small.
                pending = [sent[b][1][-1] for b in sorted(sent)]
                async with bench.pool.acquire() as conn:  # type: ignore[union-attr]
                    done = {
                        r["value"]
                        for r in await conn.fetch(
                            "SELECT value FROM list_pushed WHERE list_key = $1 AND value = ANY ($2::text[])",
                            key,
                            pending,
                        )
                    }
                now = time.perf_counter()
                for b in sorted(sent):
                    t0, values = sent[b]
                    if values[-1] in done:
                        latencies.extend([now - t0] * len(values))
                        del sent[b]
            now_scrape = await scrape(bench.watch, bench.metrics_url("netskope-sink"))
            records = metric(now_scrape, "cte_sink_push_step_seconds_count", step="record") - metric(
                last, "cte_sink_push_step_seconds_count", step="record"
            )
            if records:
                steps = {
                    lab["step"]: round(
                        (v - metric(last, "cte_sink_push_step_seconds_sum", step=lab["step"])) * 1000 / records, 1
                    )
                    for n, lab, v in now_scrape
                    if n == "cte_sink_push_step_seconds_sum"
                    and v > metric(last, "cte_sink_push_step_seconds_sum", step=lab["step"])
                }
                pushes.append({"at_s": round(time.perf_counter() - started, 2), "pushes": int(records), "ms": steps})
                last = now_scrape
            if not sending and deadline is None:
                deadline = time.perf_counter() + 120
            if deadline is not None and time.perf_counter() > deadline:
                late = sum(len(v) for _, v in sent.values())
                raise RuntimeError(f"{late} values not pushed 120 s after the last send")

    try:
        await asyncio.gather(send(), watch())
    finally:
        await producer.stop()
    await bench.refresh_pg_pids()
    cpu = meter.stop()
    n = batches * per_batch
    backends = meter.by_label("postgresql", bench.pg_clients, "server")
    per_intent = {
        "netskope-sink": cpu["cpu_seconds"].get("netskope-sink", 0.0),
        "postgresql (the sink's backends)": backends.get("netskope-sink", 0.0),
        "postgresql (all)": cpu["cpu_seconds"].get("postgresql", 0.0),
        "fake-tenant": cpu["cpu_seconds"].get("fake-tenant", 0.0),
    }
    async with bench.pool.acquire() as conn:
        state = await conn.fetchrow("SELECT entries, left_out FROM list_state WHERE list_key = $1", key)
    assert state is not None
    return {
        "rate_per_second": rate,
        "seconds": seconds,
        "intents": n,
        "batch": per_batch,
        "list_entries_after": state["entries"],
        "left_out_after": state["left_out"],
        "send_to_recorded": summary_ms(latencies),
        "cpu": cpu,
        "postgresql_by_client": backends,
        "cpu_us_per_intent": {k: round(v * 1e6 / n, 1) for k, v in per_intent.items()},
        "pushes": pushes,
    }


async def measure(bench: Bench, candidates: int, runs: int, rate: int, seconds: float) -> dict[str, Any]:
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
    out: dict[str, Any] = {
        "candidates": candidates,
        "first_push_seconds": first_push,
        "one_entry": changes,
        "cpu_during_changes": cpu,
        "tenant_calls_ms": tenant_ms,
        # The sink's own account of each push, by step (its cte_sink_push_step_seconds).
        "sink_push_steps": steps,
        # PostgreSQL's statements during the changes, per change (CTE_PG_STAT_STATEMENTS=1).
        **({"statements": await bench.statements(2 * runs, top=15)} if statements and runs else {}),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    if rate:
        await bench.refresh_pg_pids()
        statements = await bench.statements_reset()
        out["steady_load_average_before"] = load_average()
        out["steady"] = await steady(bench, key, rate, seconds)
        out["steady_load_average_after"] = load_average()
        if statements:
            out["steady_statements"] = await bench.statements(out["steady"]["intents"], top=20)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=616_497)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--steady-rate", type=int, default=0, help="new values per second at the top (0: none)")
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    args = parser.parse_args()
    bench_args = argparse.Namespace(
        size=5000, concurrency=4, cap_sizes=[1_000_000], out_dir=args.out_dir, rule_engines=1
    )
    bench = Bench(bench_args, secrets.token_hex(4))
    result: dict[str, Any] = {"benchmark": "one_entry", "date": now_iso(), "machine": machine()}
    try:
        asyncio.run(prepare(bench))
        result.update(asyncio.run(measure(bench, args.candidates, args.runs, args.steady_rate, args.steady_seconds)))
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
