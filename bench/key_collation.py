"""What comparing the pipeline's text keys as bytes saves (migration 0026, COLLATE "C"): the writes and
reads of new indicators run against two scratch databases, one at revision 0025 (the database's default
collation) and one at the newest, batch by batch in turn, so the machine's drift falls on both alike.
Reports the PostgreSQL backend's CPU per value for each kind of statement, read from /proc/<pid>/schedstat:

- load: the rule-engine's reads of a batch (indicators and share_decisions by value);
- indicators, sources, decisions: its binary COPYs of new rows (a quarter of the values with a second source);
- intents: the sink's application of the batch's share intents to one URL list;
- push: the sink's preparation of one push of the whole list at its cap (selection, diff), once at the end.

    uv run --frozen python bench/key_collation.py [--values 400000] [--out FILE]

Needs a running PostgreSQL (``deploy/stack.sh up postgres``); the scratch databases are dropped afterwards.
"""

from __future__ import annotations

import argparse
import random
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

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
LIST = "bench-keys/url/keys"
SEEN = datetime(2026, 1, 1, tzinfo=UTC)
REVISIONS = {"0025 (default collation)": "0025", 'head (keys COLLATE "C")': "head"}
STEPS = ("load", "indicators", "sources", "decisions", "intents", "push")


def _values(n: int) -> list[str]:
    rnd = random.Random(1)
    return [
        f"https://host-{rnd.randrange(10**7)}.ex-{rnd.randrange(999)}.com/p/{rnd.getrandbits(48):012x}"
        for _ in range(n)
    ]


async def _batch(conn: asyncpg.Connection, pid: int, values: list[str], spent: dict[str, float]) -> None:
    """One batch as the rule-engine and the sink write it, each statement's backend CPU added to ``spent``."""

    async def timed(step: str, call: Any) -> None:
        before = on_cpu_seconds(pid)
        await call
        spent[step] += on_cpu_seconds(pid) - before

    async with conn.transaction():
        await timed("load", conn.fetch("SELECT value FROM indicators WHERE value = ANY($1::text[])", values))
        await timed("load", conn.fetch("SELECT value FROM share_decisions WHERE value = ANY($1::text[])", values))
        indicators = [(v, "url", "feed", SEEN, SEEN, "low") for v in values]
        await timed(
            "indicators",
            conn.copy_records_to_table(
                "indicators",
                records=indicators,
                columns=["value", "type", "source", "first_seen", "last_seen", "severity"],
            ),
        )
        sources = [
            (v, s, SEEN, SEEN, "low") for i, v in enumerate(values) for s in ("feed", "other")[: 1 + (i % 4 == 0)]
        ]
        await timed(
            "sources",
            conn.copy_records_to_table(
                "indicator_sources", records=sources, columns=["value", "source", "first_seen", "last_seen", "severity"]
            ),
        )
        decisions = [(1, v, LIST, float(len(v)), len(v) + 1) for v in values]
        await timed(
            "decisions",
            conn.copy_records_to_table(
                "share_decisions",
                records=decisions,
                columns=["sharing_id", "value", "list_key", "priority", "cost_bytes"],
            ),
        )
    intents = [
        ShareIntent(
            list_key=LIST,
            value=v,
            type=IndicatorType.URL,
            add=True,
            priority=float(zlib.crc32(v.encode())),
            cost_bytes=len(v) + 1,
        )
        for v in values
    ]
    async with conn.transaction():
        await timed("intents", repository.apply_intents(conn, intents))


async def run(n: int) -> dict[str, Any]:
    values = _values(n)
    spent = {label: dict.fromkeys(STEPS, 0.0) for label in REVISIONS}
    async with migrated_connections(REVISIONS, "bench_keys") as (conns, pids):
        for b, start in enumerate(range(0, n, BATCH)):
            # Each database goes first every other batch.
            for label in list(REVISIONS)[:: 1 if b % 2 == 0 else -1]:
                await _batch(conns[label], pids[label], values[start : start + BATCH], spent[label])
        for label in reversed(REVISIONS):
            before = on_cpu_seconds(pids[label])
            await repository.prepare_push(
                conns[label], LIST, cap_bytes=7 * 1024 * 1024, max_entries=300_000, url_list=True, uncertain=False
            )
            spent[label]["push"] += on_cpu_seconds(pids[label]) - before
    per_value = {
        label: {step: round(s / n * 1e6, 2) for step, s in steps.items()}
        | {"total": round(sum(steps.values()) / n * 1e6, 2)}
        for label, steps in spent.items()
    }
    return {"values": n, "batch": BATCH, "us_per_value": per_value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=int, default=400_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report_backend_cpu("key_collation", run(args.values), args.out)


if __name__ == "__main__":
    main()
