"""The read model's and the sink's writes in arrival order against value order: new indicators merged
(``save_changes``), their sharings decided and recorded (``save_decisions``), and the share intents
applied by the sink (``apply_intents``), batch by batch in turn on two scratch databases at the newest
revision, so the machine's drift falls on both. Each batch holds 5,000 new indicators, four URLs in
five and a SHA-256 in the fifth, shared to a URL list and a file hash list as in the pipeline
benchmark. Reports the PostgreSQL backends' CPU per indicator for each step, measured after the first
``--warm`` batches (bench/notes.md, "writes in value order").

    uv run --frozen python bench/write_order.py [--batches 120] [--warm 20] [--out FILE]

Needs a running PostgreSQL (``deploy/stack.sh up postgres``); the scratch databases are dropped afterwards.
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cte_common.events import IndicatorSighting
from cte_common.indicators import IndicatorType, Severity
from cte_common.query import MATCH_ALL
from cte_common.sharing import Evaluator, RuleDef, SharingDef, list_key
from netskope_sink.lists import repository as sink_repository
from rule_engine import repository
from rule_engine.domain import Catalog, apply_events, decide_batch, in_order

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import migrated_connections, on_cpu_seconds, report_backend_cpu

BATCH = 5000
T0 = datetime(2026, 5, 1, tzinfo=UTC)
CATALOG = Catalog(
    sharings=[
        SharingDef(
            id=n,
            source="a",
            rule=RuleDef("All", MATCH_ALL),
            action=action,
            list_key=list_key("bench-tenant", action, name),
            cap_bytes=7 * 1024 * 1024,
            priority="lastSeen",
        )
        for n, (action, name) in enumerate((("url", "bench-urls"), ("file", "bench-hashes")), start=1)
    ]
)


def sightings(rnd: random.Random, n: int) -> list[IndicatorSighting]:
    out = []
    for i in range(n):
        if i % 5 == 4:
            value, kind = f"{rnd.getrandbits(256):064x}", IndicatorType.SHA256
        else:
            value = f"h{rnd.getrandbits(48):x}.example{rnd.randrange(1000)}.com/p/{rnd.getrandbits(40):x}"
            kind = IndicatorType.URL
        seen = T0 + timedelta(seconds=rnd.randrange(30 * 86400))
        out.append(
            IndicatorSighting(
                value=value, type=kind, source="a", first_seen=seen, last_seen=seen, occurred_at=seen,
                severity=Severity.HIGH,
            )
        )  # fmt: skip
    return out


async def run(batches: int, warm: int) -> dict[str, Any]:
    rnd = random.Random(1)
    evaluator = Evaluator()
    orders = ("arrival", "value")
    steps = ("merge", "decisions", "intents")
    spent = {order: dict.fromkeys(steps, 0.0) for order in orders}
    async with migrated_connections(dict.fromkeys(orders, "head"), "bench_order") as (conns, pids):
        for b in range(batches):
            events = sightings(rnd, BATCH)
            for order in orders[:: 1 if b % 2 == 0 else -1]:
                conn, pid = conns[order], pids[order]
                changed = apply_events({}, events)
                if order == "value":
                    changed = in_order(changed, sorted(changed))
                changes = decide_batch(CATALOG, evaluator, changed, {}, T0)
                took: dict[str, float] = {}
                async with conn.transaction():
                    cpu = on_cpu_seconds(pid)
                    await repository.save_changes(conn, changed, {})
                    took["merge"] = on_cpu_seconds(pid) - cpu
                    cpu = on_cpu_seconds(pid)
                    await repository.save_decisions(conn, changes)
                    took["decisions"] = on_cpu_seconds(pid) - cpu
                async with conn.transaction():
                    cpu = on_cpu_seconds(pid)
                    await sink_repository.apply_intents(conn, changes.intents)
                    took["intents"] = on_cpu_seconds(pid) - cpu
                if b >= warm:
                    for step in steps:
                        spent[order][step] += took[step]
    measured = (batches - warm) * BATCH
    return {
        "batches": batches,
        "warm": warm,
        "batch": BATCH,
        "us_per_value": {
            order: {step: round(s / measured * 1e6, 2) for step, s in by_step.items()}
            for order, by_step in spent.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=120)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report_backend_cpu("write_order", run(args.batches, args.warm), args.out)


if __name__ == "__main__":
    main()
