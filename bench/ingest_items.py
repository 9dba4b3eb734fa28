"""The POST handler's work per item, in-process, without HTTP or Kafka: the full path (json.loads,
IndicatorIn per item, the IndicatorSighting model, its pydantic JSON, each key's partition one by one,
the IndicatorOut answer through the model) against the lean path (the body read by msgspec,
``validate_batch_lean``, ``sighting_records`` with their ids made in a batch, msgspec's JSON in
envelopes, the partitions of a batch's keys by ``partition_groups``, ``sightings_answer`` by msgspec),
over the pipeline's own items (bench/data.py), batches of 1,000 as the load generator posts them, the
indicator topic's 12 partitions. CPU time of this process (``time.process_time``), the best of
``--runs`` runs.

    uv run --frozen python bench/ingest_items.py [--items 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson
from bench import data

from cte_common.envelope import envelope_values
from cte_common.events import encode, encode_sighting
from cte_common.kafka import partition_groups, partition_of
from ingest_api.configurations.schemas import ConfigurationRow
from ingest_api.indicators.domain import (
    build_sighting,
    read_body,
    sighting_out,
    sighting_records,
    sightings_answer,
    validate_batch,
    validate_batch_lean,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
PARTITIONS = list(range(12))
STEPS = ("parse", "validate", "event", "encode", "partition", "answer")


def _configs() -> dict[str, ConfigurationRow]:
    return {
        name: ConfigurationRow(name=name, plugin="api_source", reputation=0, age_after_days=90)
        for name in (data.SOURCE_A, data.SOURCE_B)
    }


def full_path(body: bytes, configs: dict[str, ConfigurationRow], steps: dict[str, float]) -> None:
    t0 = time.process_time()
    raw = json.loads(body)
    t1 = time.process_time()
    items, errors = validate_batch(raw, set(configs))
    assert not errors
    t2 = time.process_time()
    sightings = [build_sighting(i, configs[i.source], "lastSeen", NOW) for i in items]
    t3 = time.process_time()
    [encode(s) for s in sightings]
    t4 = time.process_time()
    [partition_of(s.value.encode(), PARTITIONS, PARTITIONS) for s in sightings]
    t5 = time.process_time()
    # FastAPI serialises the returned models through the response model.
    json.dumps([sighting_out(s).model_dump(mode="json") for s in sightings]).encode()
    t6 = time.process_time()
    for step, took in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
        steps[step] += took


def lean_path(body: bytes, configs: dict[str, ConfigurationRow], steps: dict[str, float]) -> None:
    t0 = time.process_time()
    raw = read_body(body)
    t1 = time.process_time()
    items, errors = validate_batch_lean(raw, set(configs))
    assert not errors
    t2 = time.process_time()
    records = sighting_records(items, configs, "lastSeen", NOW)
    t3 = time.process_time()
    envelope_values([encode_sighting(r) for r in records])
    t4 = time.process_time()
    partition_groups([r.value for r in records], PARTITIONS)
    t5 = time.process_time()
    sightings_answer(records)
    t6 = time.process_time()
    for step, took in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
        steps[step] += took


def measure(
    path: Callable[[bytes, dict[str, ConfigurationRow], dict[str, float]], None], bodies: list[bytes], n: int, runs: int
) -> dict[str, float]:
    configs = _configs()
    best: dict[str, float] | None = None
    for _ in range(runs):
        steps = dict.fromkeys(STEPS, 0.0)
        for body in bodies:
            path(body, configs, steps)
        per_item = {k: round(v / n * 1e6, 2) for k, v in steps.items()}
        per_item["total"] = round(sum(steps.values()) / n * 1e6, 2)
        if best is None or per_item["total"] < best["total"]:
            best = per_item
    assert best is not None
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    bodies = list(data.bodies(args.items))
    # As the API processes do after startup (ingest_api.main): what exists now is out of the collector's way.
    gc.freeze()
    result: dict[str, Any] = {
        "benchmark": "ingest_items",
        "items": args.items,
        "unit": "CPU µs per item",
        "full": measure(full_path, bodies, args.items, args.runs),
        "lean": measure(lean_path, bodies, args.items, args.runs),
    }
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
