"""Which statements PostgreSQL's backends spend their CPU on while a benchmark runs: every few
milliseconds, each backend of the named applications has the CPU it used since the last sample
(/proc/<pid>/schedstat) put on the statement pg_stat_activity shows it running. A sampling profile by
statement, in CPU seconds, not wall time: pg_stat_statements' times include the waits for a core and
for locks, which on two busy cores are most of them (bench/notes.md, "Issue 14: a whole push's entries
hashed, a push's work tables in memory").

    uv run --frozen python bench/statement_cpu.py --seconds 120 --out FILE &
    uv run --frozen python bench/run.py --size 1000000 --pipeline-only

Start it with the benchmark's stack (it waits for the database to answer); it stops after
``--seconds`` or when the benchmark stops the database, and writes what it sampled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import admin_database_url, on_cpu_seconds

_BACKENDS = """
SELECT pid, application_name, query FROM pg_stat_activity
WHERE backend_type = 'client backend' AND application_name = ANY ($1::text[]) AND pid <> pg_backend_pid()
"""


async def sample(dsn: str, apps: list[str], seconds: float, interval: float) -> dict[tuple[str, str], float]:
    deadline = time.monotonic() + seconds
    while True:
        try:
            conn = await asyncpg.connect(dsn)
            break
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                return {}
            await asyncio.sleep(0.5)
    spent: dict[tuple[str, str], float] = defaultdict(float)
    last: dict[int, float] = {}
    try:
        while time.monotonic() < deadline:
            try:
                rows = await conn.fetch(_BACKENDS, apps)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                break  # the benchmark stopped the database
            for r in rows:
                now = on_cpu_seconds(r["pid"])
                before = last.get(r["pid"])
                last[r["pid"]] = now
                if before is not None and now > before:
                    statement = " ".join((r["query"] or "").split())[:160]
                    spent[r["application_name"], statement] += now - before
            await asyncio.sleep(interval)
    finally:
        if not conn.is_closed():
            await conn.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=admin_database_url())
    parser.add_argument("--apps", default="netskope-sink,rule-engine", help="application names, comma-separated")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    spent = asyncio.run(sample(args.dsn, args.apps.split(","), args.seconds, args.interval))
    by_app: dict[str, float] = defaultdict(float)
    for (app, _), cpu in spent.items():
        by_app[app] += cpu
    ranked = sorted(spent.items(), key=lambda kv: -kv[1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "cpu_seconds_by_application": {k: round(v, 3) for k, v in by_app.items()},
                "statements": [{"application": a, "statement": s, "cpu_seconds": round(c, 3)} for (a, s), c in ranked],
            },
            indent=1,
        )
        + "\n"
    )
    for (app, statement), cpu in ranked[:25]:
        print(f"{cpu:8.2f} s  {app:14} {statement[:100]}")


if __name__ == "__main__":
    main()
