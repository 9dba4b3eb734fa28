"""Rule evaluation in-process: the project's Evaluator deciding a sharing (the "Every Severity" rule and
a small allow-list) for N indicators, shaped as the rule-engine shapes them (rule_engine.domain)."""

from __future__ import annotations

import time
from typing import Any

from bench import data

from cte_common.indicators import IndicatorType, Severity
from cte_common.sharing import AllowEntry, AllowList, Evaluator, RuleDef, SharingDef, parse_filter
from rule_engine.domain import IndicatorState, SourceEntry, indicator_view

EVERY_SEVERITY = 'sources.severity IN ("unknown","low","medium","high","critical")'
ALLOW = (
    AllowEntry(1, "suffix", "example.org"),
    AllowEntry(2, "suffix", "google.com"),
    AllowEntry(3, "suffix", "microsoft.com"),
    AllowEntry(4, "suffix", "corp.internal"),
    AllowEntry(5, "exact", "login-verify-1.com"),
    AllowEntry(6, "cidr", "10.0.0.0/8"),
    AllowEntry(7, "cidr", "192.168.0.0/16"),
    AllowEntry(8, "regex", r"^https://intranet\."),
)
CHUNK = 20_000


def _entry(i: data.Item) -> SourceEntry:
    return SourceEntry(
        source=i.source,
        first_seen=i.first_seen,
        last_seen=i.last_seen,
        reputation=i.reputation,
        severity=Severity(i.severity),
        tags=list(i.tags),
        external_hits=1,
    )


def states(start: int, stop: int, n: int) -> list[IndicatorState]:
    """The read model's state of the first-source values at positions [start, stop), with the second
    source's entry where it repeats them (within the first n items)."""
    out = []
    for i in data.items(start, stop):
        if i.source != data.SOURCE_A:
            continue
        sources = {i.source: _entry(i)}
        repeat = i.position + data.REPEAT_BACK  # the second-source position that repeats this one
        if repeat < n and data.repeat_target(repeat) == i.position:
            b = data.item(repeat)
            sources[b.source] = _entry(b)
        out.append(
            IndicatorState(
                value=i.value,
                type=IndicatorType(i.type),
                source=i.source,
                first_seen=i.first_seen,
                last_seen=i.last_seen,
                reputation=i.reputation,
                severity=Severity(i.severity),
                comments="",
                extended_information="",
                expires_at=None,
                external_hits=len(sources),
                sources=sources,
            )
        )
    return out


def measure(n: int) -> dict[str, Any]:
    sharing = SharingDef(
        id=1,
        source=data.SOURCE_A,
        rule=RuleDef("Every Severity", parse_filter(query=EVERY_SEVERITY)),
        action="url",
        list_key="bench/url/evaluation",
        cap_bytes=7 * 1024 * 1024,
    )
    evaluator = Evaluator(AllowList(ALLOW))
    decide_seconds = view_seconds = 0.0
    decided = 0
    outcomes: dict[str, int] = {}
    for start in range(0, n, CHUNK):
        batch = states(start, min(n, start + CHUNK), n)
        t0 = time.perf_counter()
        views = [indicator_view(s) for s in batch]
        t1 = time.perf_counter()
        decisions = [evaluator.decide(sharing, v) for v in views]
        t2 = time.perf_counter()
        view_seconds += t1 - t0
        decide_seconds += t2 - t1
        decided += len(decisions)
        for d in decisions:
            outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
    return {
        "indicators": decided,
        "decide_seconds": round(decide_seconds, 2),
        "per_second": round(decided / decide_seconds, 1) if decide_seconds else None,
        "view_seconds": round(view_seconds, 2),
        "with_views_per_second": round(decided / (decide_seconds + view_seconds), 1) if decided else None,
        "outcomes": outcomes,
        "rule": EVERY_SEVERITY,
        "allow_list_entries": len(ALLOW),
    }
