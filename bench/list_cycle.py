"""A shared value's whole life in the sink's SQL, as the lists repository module held it at another commit
against the working tree's, on two scratch databases, cycle by cycle in turn so the machine's drift falls
on both. Each cycle applies four batches of 4,000 intents (nine in ten new values, one in ten a value
seen before, all on top of the order as a feed ordered by lastSeen puts them) to a URL list and a file
hash list, one transaction a batch as the consumer applies them, then pushes both lists as the flusher
does (prepare, claim, the call's entries, record; no tenant). The lists reach their cap (``--cap``
entries) after a few cycles; from then on every push also takes the oldest values out. Reports the
PostgreSQL backend's CPU per value for the intents and for the pushes, read from /proc/<pid>/schedstat
(bench/notes.md, "Issue 14: a whole push's entries hashed, a push's work tables in memory").

    uv run --frozen python bench/list_cycle.py --before <commit> [--values 400000] [--out FILE]

``--before-revision``: the migration the first database stops at (default: the newest, for a change of
SQL only); ``--before-settings``: PostgreSQL's settings on its connection (the second one's are the
sink's own, ``Settings.pool_settings``). Needs a running PostgreSQL (``deploy/stack.sh up postgres``);
the scratch databases are dropped afterwards.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from cte_common.events import ShareIntentRecord
from cte_common.indicators import IndicatorType
from netskope_sink.lists import repository
from netskope_sink.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import migrated_connections, on_cpu_seconds, report_backend_cpu

BATCH = 4000
BATCHES_PER_PUSH = 4
URLS = "bench-cycle/url/urls"
HASHES = "bench-cycle/file/hashes"
REPOSITORY = "services/netskope-sink/src/netskope_sink/lists/repository.py"


def module_at(commit: str, directory: Path) -> ModuleType:
    """The lists repository module as it was at ``commit``, imported under a name of its own from a copy
    written to ``directory``."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{REPOSITORY}"], check=True, capture_output=True, text=True
    ).stdout
    name = f"bench_lists_repository_{commit[:12]}"
    path = directory / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


async def push(repo: Any, conn: Any, key: str, *, url_list: bool, cap: int) -> None:
    version = await repo.list_version(conn, key)
    await repo.mark_uncertain(conn, key)
    prepared = await repo.prepare_push(conn, key, cap_bytes=10**9, max_entries=cap, url_list=url_list, uncertain=False)
    await repo.claim(conn, key)
    await repo.entries_text(conn, key, whole=not url_list, uncertain=False, exclude=[], json_items=url_list)
    async with conn.transaction():
        await repo.record_push(conn, key, version=version, prepared=prepared, uncertain=False, refused={}, cap=10**9)
    await repo.forget_push(conn, key)


def batches(n: int, seed: int) -> list[list[ShareIntentRecord]]:
    """``n`` intents in batches, half of the values a URL and half an MD5, the priority rising."""
    rnd = random.Random(seed)
    seen: list[tuple[str, str, IndicatorType]] = []
    out: list[list[ShareIntentRecord]] = []
    priority = 0.0
    for start in range(0, n, BATCH):
        batch: dict[tuple[str, str], ShareIntentRecord] = {}
        for i in range(start, min(n, start + BATCH)):
            priority += 1.0
            if seen and rnd.random() < 0.1:
                key, value, kind = seen[rnd.randrange(len(seen))]
            elif i % 2:
                key, value, kind = (
                    URLS,
                    f"https://h{rnd.randrange(10**9)}.example.com/{rnd.getrandbits(48):x}",
                    IndicatorType.URL,
                )
                seen.append((key, value, kind))
            else:
                key, value, kind = HASHES, f"{rnd.getrandbits(128):032x}", IndicatorType.MD5
                seen.append((key, value, kind))
            batch[key, value] = ShareIntentRecord(
                list_key=key, value=value, type=kind, add=True, priority=priority, cost_bytes=len(value) + 3
            )
        out.append(sorted(batch.values(), key=lambda r: (r.list_key, r.value)))
    return out


async def run(before: str, before_revision: str, before_settings: dict[str, str], n: int, cap: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        repos = {before: module_at(before, Path(directory)), "working tree": repository}
    work = batches(n, seed=1)
    spent = {label: {"intents": 0.0, "pushes": 0.0} for label in repos}
    revisions = {before: before_revision, "working tree": "head"}
    # Each connection as the sink's pool sets it up (the working tree's: Settings.pool_settings), before
    # anything uses a temporary table.
    settings = {before: before_settings, "working tree": Settings().pool_settings()}
    async with migrated_connections(revisions, "bench_cycle") as (conns, pids):
        for label, conn in conns.items():
            for name, value in settings[label].items():
                await conn.execute(f"SET {name} = '{value}'")
        for b, batch in enumerate(work):
            order = list(repos)[:: 1 if b % 2 == 0 else -1]
            for label in order:
                repo, conn, pid = repos[label], conns[label], pids[label]
                cpu = on_cpu_seconds(pid)
                async with conn.transaction():
                    await repo.apply_intents(conn, batch)
                spent[label]["intents"] += on_cpu_seconds(pid) - cpu
                if b % BATCHES_PER_PUSH == BATCHES_PER_PUSH - 1 or b == len(work) - 1:
                    cpu = on_cpu_seconds(pid)
                    await push(repo, conn, URLS, url_list=True, cap=cap)
                    await push(repo, conn, HASHES, url_list=False, cap=cap)
                    spent[label]["pushes"] += on_cpu_seconds(pid) - cpu
        held = {label: await conns[label].fetchval("SELECT sum(entries) FROM list_state") for label in repos}
    return {
        "before": before,
        "before_revision": before_revision,
        "settings": settings,
        "values": n,
        "cap_entries": cap,
        "batch": BATCH,
        "batches_per_push": BATCHES_PER_PUSH,
        "entries_held_at_the_end": held,
        "us_per_value": {
            label: {
                **{k: round(v / n * 1e6, 2) for k, v in phases.items()},
                "total": round(sum(phases.values()) / n * 1e6, 2),
            }
            for label, phases in spent.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the commit whose lists repository is compared")
    parser.add_argument("--before-revision", default="head", help="the migration the first database stops at")
    parser.add_argument(
        "--before-settings",
        type=json.loads,
        default={"jit": "off"},
        help="PostgreSQL's settings on the first database's connection, as JSON (default: the sink's before "
        "it set temp_buffers)",
    )
    parser.add_argument("--values", type=int, default=400_000)
    parser.add_argument("--cap", type=int, default=60_000, help="entries each list keeps")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report_backend_cpu(
        "list_cycle", run(args.before, args.before_revision, args.before_settings, args.values, args.cap), args.out
    )


if __name__ == "__main__":
    main()
