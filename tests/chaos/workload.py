"""The chaos workload and its independent expectation.

Indicators are generated from a seed; what the read model and each list should hold is computed here
from what the API acknowledged and from the rules as the test set them, with none of the project's
merge or decision code, so a service that loses, duplicates or misplaces something cannot hide it.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SRC_A, SRC_B, SRC_SHORT = "chaos-a", "chaos-b", "chaos-short"
SEVERITIES = ("low", "medium", "high", "critical")
SHORT_AGING = timedelta(minutes=1)  # chaos-short ages by lastSeen: its indicators expire during the run
# Tags the sink adds to the read model itself (what a cap leaves out, what the tenant refuses).
SYSTEM_TAGS = frozenset({"Unshared", "Invalid host"})
ALLOWED_GROUP = "g7.chaos.example"  # the allow-list entry added during the run


@dataclass
class Sighting:
    value: str
    type: str
    source: str
    severity: str
    reputation: int
    tags: list[str]
    comments: str
    first_seen: datetime | None = None  # chaos-short sightings get their times when first posted
    last_seen: datetime | None = None
    acked: bool = False
    attempts: int = 0  # POSTs that carried it; a POST without an answer may have been applied

    def body(self) -> dict[str, Any]:
        assert self.first_seen is not None
        assert self.last_seen is not None
        return {
            "value": self.value,
            "type": self.type,
            "source": self.source,
            "severity": self.severity,
            "reputation": self.reputation,
            "tags": self.tags,
            "comments": self.comments,
            "firstSeen": self.first_seen.isoformat(),
            "lastSeen": self.last_seen.isoformat(),
        }

    def expires_at(self) -> datetime | None:
        assert self.last_seen is not None
        return self.last_seen + SHORT_AGING if self.source == SRC_SHORT else None


@dataclass
class Indicator:
    """One value: its first sighting, and maybe a second one posted once the first was acknowledged."""

    first: Sighting
    second: Sighting | None = None

    @property
    def sightings(self) -> list[Sighting]:
        return [self.first] if self.second is None else [self.first, self.second]


def generate(n: int, seed: int, now: datetime) -> list[Indicator]:
    """70% chaos-a only, 15% chaos-a then chaos-b, 10% chaos-short only (they expire), 5% chaos-short then
    chaos-a (kept by the re-sighting); a fifth of the values are SHA-256 hashes, the rest domains."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        profile = rng.random()
        if rng.random() < 0.2:
            kind, value = "sha256", hashlib.sha256(f"chaos-{seed}-{i}".encode()).hexdigest()
        else:
            kind, value = "domain", f"h{i}.g{i % 50}.chaos.example"
        sources = (
            [SRC_SHORT]
            if profile < 0.10
            else [SRC_SHORT, SRC_A]
            if profile < 0.15
            else [SRC_A, SRC_B]
            if profile < 0.30
            else [SRC_A]
        )
        sightings = []
        for src in sources:
            s = Sighting(
                value,
                kind,
                src,
                rng.choice(SEVERITIES),
                rng.randint(1, 10),
                [f"t{rng.randrange(5)}", src],
                f"{src} {i}",
            )
            if src != SRC_SHORT:
                # Whole seconds, in the past: times compare exactly with what PostgreSQL returns.
                last = now.replace(microsecond=0) - timedelta(seconds=rng.randrange(3600, 5 * 86400))
                s.first_seen, s.last_seen = last - timedelta(seconds=rng.randrange(0, 86400)), last
            sightings.append(s)
        out.append(Indicator(*sightings))
    return out


def stamp_short(s: Sighting, now: datetime, i: int) -> None:
    """A chaos-short sighting seen 0 to 40 s ago: it expires 20 to 60 s after it is posted."""
    if s.source == SRC_SHORT and s.last_seen is None:
        s.last_seen = now.replace(microsecond=0) - timedelta(seconds=i % 41)
        s.first_seen = s.last_seen - timedelta(minutes=5)


# --- the read model ---------------------------------------------------------------------------------


def read_model_problems(
    indicators: list[Indicator], rows: dict[str, dict[str, Any]], entries: dict[tuple[str, str], dict[str, Any]]
) -> dict[str, Any]:
    """Compare the read model (rows of ``indicators`` and ``indicator_sources``) with what was acknowledged,
    and find source rows without their indicator.

    A POST that got no answer may have been applied before it was retried, but every retry carries the
    request's Idempotency-Key, so all of them together are applied once: each sighting is one hit,
    exactly, however many POSTs carried it; and every other field must be exact.
    """
    missing, wrong, extra_hits = [], [], 0
    expected_values = set()
    sources_of: dict[str, set[str]] = {}
    for value, source in entries:
        sources_of.setdefault(value, set()).add(source)
    now = datetime.now(UTC)
    for ind in indicators:
        sightings = [s for s in ind.sightings if s.acked]
        assert len(sightings) == len(ind.sightings), "every sighting is retried until acknowledged"
        first = sightings[0]
        expected_values.add(first.value)
        row = rows.get(first.value)
        if row is None:
            missing.append(first.value)
            continue
        expiries = [s.expires_at() for s in sightings]
        expires = None if None in expiries else max(e for e in expiries if e is not None)
        want = {
            "type": first.type,
            "source": first.source,
            "severity": first.severity,
            "reputation": first.reputation,
            "comments": first.comments,
            "first_seen": min(s.first_seen for s in sightings if s.first_seen),
            "last_seen": max(s.last_seen for s in sightings if s.last_seen),
            "expires_at": expires,
            "active": expires is None or expires > now,
            "test": False,
        }
        got = {k: row[k] for k in want}
        if got != want:
            wrong.append({"value": first.value, "want": _jsonable(want), "got": _jsonable(got)})
        hits_total = 0
        for s in sightings:
            entry = entries.get((s.value, s.source))
            if entry is None:
                missing.append(f"{s.value} from {s.source}")
                continue
            hits_total += entry["external_hits"]
            extra_hits += entry["external_hits"] - 1
            problems = []
            for key, expected in (
                ("severity", s.severity),
                ("reputation", s.reputation),
                ("comments", s.comments),
                ("first_seen", s.first_seen),
                ("last_seen", s.last_seen),
                ("retracted", False),
            ):
                if entry[key] != expected:
                    problems.append(f"{key}: want {expected}, got {entry[key]}")
            tags = set(entry["tags"])
            if len(entry["tags"]) != len(tags) or not set(s.tags) <= tags or not tags - set(s.tags) <= SYSTEM_TAGS:
                problems.append(f"tags: want {s.tags} (plus system tags), got {entry['tags']}")
            if entry["external_hits"] != 1:
                problems.append(f"hits {entry['external_hits']} != 1 ({s.attempts} POSTs carried it, with one key)")
            if problems:
                wrong.append({"value": s.value, "source": s.source, "problems": problems})
        if row["external_hits"] != hits_total or row["internal_hits"] != 0:
            wrong.append({"value": first.value, "problems": [f"hits {row['external_hits']} != {hits_total}"]})
        stray = sources_of.get(first.value, set()) - {s.source for s in sightings}
        if stray:
            wrong.append({"value": first.value, "problems": [f"sources nobody reported: {sorted(stray)}"]})
    unexpected = sorted(set(rows) - expected_values)
    # Source rows whose indicator is gone (the rule-engine deletes both: no foreign key does it for it).
    orphaned = sorted(set(sources_of) - set(rows))
    return {
        "missing": missing,
        "wrong": wrong,
        "unexpected": unexpected,
        "orphaned": orphaned,
        "extra_hits": extra_hits,
    }


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in d.items()}


# --- the lists --------------------------------------------------------------------------------------


def cost(value: str) -> int:
    """Bytes a URL-list entry costs, as the reference plugin counts them."""
    return len(json.dumps(value)) + 3


@dataclass
class SharingSpec:
    source: str
    kind: str  # "domain" for a URL list, "sha256" for a file hash list
    cap_bytes: int | None = None


@dataclass
class Rules:
    """The rule, the allow-list and the sharings as the test left them."""

    severities: set[str]
    allowed_suffixes: list[str] = field(default_factory=list)
    sharings: dict[str, SharingSpec] = field(default_factory=dict)


def expected_list(indicators: list[Indicator], rules: Rules, spec: SharingSpec, capped: bool = True) -> list[str]:
    now = datetime.now(UTC)
    chosen = []
    for ind in indicators:
        sightings = [s for s in ind.sightings if s.acked]
        if not sightings:
            continue
        first = sightings[0]
        entry = next((s for s in sightings if s.source == spec.source), None)
        if entry is None or first.type != spec.kind or entry.last_seen is None:
            continue
        expiries = [s.expires_at() for s in sightings]
        if None not in expiries and max(e for e in expiries if e is not None) <= now:
            continue  # expired
        if not any(s.severity in rules.severities for s in sightings):
            continue
        if any(first.value == a or first.value.endswith("." + a) for a in rules.allowed_suffixes):
            continue
        chosen.append((-entry.last_seen.timestamp(), first.value))
    chosen.sort()
    out, used = [], 1
    for _, value in chosen:
        if capped and spec.cap_bytes is not None and used + cost(value) > spec.cap_bytes:
            break
        used += cost(value)
        out.append(value)
    return out
