"""The rule-engine's intent journal at two revisions of the schema: a deciding attempt's rows written
(``journal_intents``) and deleted (``forget_attempt``) as a batch does, batch by batch in turn on two
scratch databases so the machine's drift falls on both. Reports the PostgreSQL backend's CPU per
journalled value (bench/notes.md, "writes in value order, the intent journal without compression").

    uv run --frozen python bench/journal_storage.py [--before 0028] [--batches 200] [--out FILE]

Needs a running PostgreSQL (``deploy/stack.sh up postgres``); the scratch databases are dropped afterwards.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

from cte_common.events import ShareIntentRecord
from cte_common.indicators import IndicatorType
from rule_engine import repository

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import migrated_connections, on_cpu_seconds, report_backend_cpu

# A batch's intents as the pipeline benchmark makes them: 5,000 values, split between a URL list and a
# file hash list.
BATCH = 5000
LISTS = ("bench-tenant/url/bench-urls", "bench-tenant/file/bench-hashes")


async def run(before: str, batches: int) -> dict[str, Any]:
    rnd = random.Random(1)
    revisions = {before: before, "head": "head"}
    spent = dict.fromkeys(revisions, 0.0)
    async with migrated_connections(revisions, "bench_journal") as (conns, pids):
        for b in range(batches):
            intents = [
                ShareIntentRecord(
                    list_key=LISTS[0] if rnd.random() < 0.77 else LISTS[1],
                    value=f"h{rnd.randrange(10**9)}.example{rnd.randrange(1000)}.com/{rnd.getrandbits(40):x}",
                    type=IndicatorType.URL,
                    add=True,
                )
                for _ in range(BATCH)
            ]
            for label in list(revisions)[:: 1 if b % 2 == 0 else -1]:
                conn, pid = conns[label], pids[label]
                attempt = uuid4()
                cpu = on_cpu_seconds(pid)
                await repository.journal_intents(conn, attempt, intents)
                async with conn.transaction():
                    await repository.forget_attempt(conn, attempt)
                spent[label] += on_cpu_seconds(pid) - cpu
    values = batches * BATCH
    return {
        "before": before,
        "batches": batches,
        "batch": BATCH,
        "us_per_value": {label: {"journal": round(s / values * 1e6, 3)} for label, s in spent.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="0028", help="the schema revision compared with the newest")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report_backend_cpu("journal_storage", run(args.before, args.batches), args.out)


if __name__ == "__main__":
    main()
