"""The rule-engine's Python work for a batch, in-process: sightings merged (``apply_events``), the new rows
built for the COPY, and every sharing decided (``decide_batch``), in slices of 5,000 like the consumer, for
20,000 new indicators against the pipeline benchmark's catalog (six sharings under the "All" rule, two of
them of the indicators' source). No I/O: CPU time per indicator, the best of seven rounds, to compare two
commits on one machine minute by minute (bench/notes.md, "the rule-engine's CPU and its PostgreSQL
backends").

    uv run --frozen python bench/rule_engine_batch.py
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from cte_common.events import IndicatorSighting
from cte_common.indicators import IndicatorType, Severity
from cte_common.query import MATCH_ALL
from cte_common.sharing import Action, Evaluator, RuleDef, SharingDef, list_key
from rule_engine import repository
from rule_engine.domain import Catalog, apply_events, decide_batch

T0 = datetime(2026, 5, 1, tzinfo=UTC)
SLICE = 5000
ROUNDS = 7


def sharing(sid: int, source: str, action: Action, name: str) -> SharingDef:
    return SharingDef(
        id=sid,
        source=source,
        rule=RuleDef("All", MATCH_ALL),
        action=action,
        list_key=list_key("t", action, name),
        cap_bytes=7 * 1024 * 1024,
        priority="lastSeen",
    )


def sightings(n: int) -> list[IndicatorSighting]:
    """A URL in four of five, a SHA-256 in the fifth; a tag on every third."""
    rnd = random.Random(1)
    out = []
    for i in range(n):
        if i % 5 == 4:
            value, kind = f"{rnd.getrandbits(256):064x}", IndicatorType.SHA256
        else:
            value, kind = f"http://host{i}.example.com/path/{rnd.getrandbits(40):x}", IndicatorType.URL
        out.append(
            IndicatorSighting(
                value=value,
                type=kind,
                source="a",
                first_seen=T0,
                last_seen=T0,
                occurred_at=T0,
                severity=Severity.HIGH,
                tags=["x"] if i % 3 == 0 else [],
            )
        )
    return out


def main() -> None:
    catalog = Catalog(
        sharings=[
            sharing(1, "a", "url", "urls"),
            sharing(2, "a", "file", "hashes"),
            sharing(3, "live", "url", "live"),
            sharing(4, "expiry", "url", "expiry"),
            sharing(5, "cap", "url", "cap-1"),
            sharing(6, "cap", "url", "cap-2"),
        ]
    )
    events = sightings(20_000)
    evaluator = Evaluator()
    best = float("inf")
    intents = 0
    for _ in range(ROUNDS):
        started = time.process_time()
        intents = 0
        for start in range(0, len(events), SLICE):
            changed = apply_events({}, events[start : start + SLICE])
            rows = list(map(repository._INDICATOR_ROW, changed.values()))
            assert len(rows) == len(changed)
            intents += len(decide_batch(catalog, evaluator, changed, {}, T0).intents)
        best = min(best, time.process_time() - started)
    print(f"{best * 1e6 / len(events):.2f} µs of CPU per indicator (best of {ROUNDS}), {intents:,} intents")


if __name__ == "__main__":
    main()
