"""The sink's application of share intents (``_APPLY_INTENTS``) as of another commit against the working
tree's, on two scratch databases at the newest revision, batch by batch in turn so the machine's drift
falls on both: first ``--values`` new URL members of one list in batches of 4,000, then a new priority for
each of them. Reports the PostgreSQL backend's CPU per value for each phase, read from
/proc/<pid>/schedstat (bench/notes.md, "new list members inserted without ON CONFLICT").

    uv run --frozen python bench/apply_intents_pair.py --before <commit> [--values 200000] [--out FILE]

Needs a running PostgreSQL (``deploy/stack.sh up postgres``); the scratch databases are dropped afterwards.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from cte_common.events import ShareIntent
from cte_common.indicators import IndicatorType
from netskope_sink.lists import repository

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    migrated_connections,
    on_cpu_seconds,
    report_backend_cpu,
)

BATCH = 4000
LIST = "bench-apply/url/apply"
REPOSITORY = "services/netskope-sink/src/netskope_sink/lists/repository.py"


def statement_at(commit: str) -> str:
    """``_APPLY_INTENTS`` as the repository module held it at ``commit``."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{REPOSITORY}"], check=True, capture_output=True, text=True
    ).stdout
    return source.split('_APPLY_INTENTS = """', 1)[1].split('"""', 1)[0]


async def run(before: str, n: int) -> dict[str, Any]:
    statements = {before: statement_at(before), "working tree": repository._APPLY_INTENTS}
    rnd = random.Random(1)
    values = [f"https://h{rnd.randrange(10**8)}.example.com/{rnd.getrandbits(40):x}" for _ in range(n)]
    spent = {label: {"insert": 0.0, "update": 0.0} for label in statements}
    async with migrated_connections(dict.fromkeys(statements, "head"), "bench_apply") as (conns, pids):
        try:
            for phase in ("insert", "update"):
                for b, start in enumerate(range(0, n, BATCH)):
                    intents = [
                        ShareIntent(
                            list_key=LIST,
                            value=v,
                            type=IndicatorType.URL,
                            add=True,
                            priority=rnd.random() * 1e9,
                            cost_bytes=len(v),
                        )
                        for v in values[start : start + BATCH]
                    ]
                    for label in list(statements)[:: 1 if b % 2 == 0 else -1]:
                        conn, pid = conns[label], pids[label]
                        # The statement under test, in the module's own apply_intents (one process, one
                        # database at a time).
                        repository._APPLY_INTENTS = statements[label]
                        cpu = on_cpu_seconds(pid)
                        async with conn.transaction():
                            await repository.apply_intents(conn, intents)
                        spent[label][phase] += on_cpu_seconds(pid) - cpu
        finally:
            repository._APPLY_INTENTS = statements["working tree"]
    return {
        "before": before,
        "values": n,
        "batch": BATCH,
        "us_per_value": {
            label: {k: round(v / n * 1e6, 2) for k, v in phases.items()} for label, phases in spent.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the commit whose statement is compared")
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report_backend_cpu("apply_intents_pair", run(args.before, args.values), args.out)


if __name__ == "__main__":
    main()
