"""The benchmark's indicator data: deterministic, generated from each item's position, so every phase
(baselines, the pipeline, the in-process rule evaluation) sees the same data without keeping it all in
memory.

The mix: 35% URLs, 25% domains, 15% IPv4, 2% IPv6, 10% MD5, 13% SHA256; severities, reputations and
last-seen times spread over 30 days; one in five items has a tag. One item in five (every fifth
position from the second batch on) comes from the second source and repeats a value the first source
posted about a batch earlier: a merge of two sources' reports in the read model.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SOURCE_A = "bench-feed-a"
SOURCE_B = "bench-feed-b"
BATCH = 1000

WORDS = (
    "login", "verify", "secure", "account", "update", "mail", "cdn", "pay", "bank", "support",
    "cloud", "drive", "docs", "auth", "portal", "billing", "invoice", "office", "shop", "track",
)  # fmt: skip
TLDS = ("com", "net", "org", "info", "io", "xyz", "top", "ru", "cn", "co", "biz", "online")
SEVERITIES = ("unknown", "low", "medium", "high", "critical")
# Cumulative shares (per mille) of each type.
MIX = (("url", 350), ("domain", 600), ("ipv4", 750), ("ipv6", 770), ("md5", 870), ("sha256", 1000))
# The second source's item at position p repeats the first source's item at p - REPEAT_BACK (about a
# batch earlier; p - 997 is never itself a second-source position, so every repeat is of its own value).
REPEAT_BACK = 997
BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def _h(n: int, salt: int = 0) -> int:
    """A cheap, well-mixed 64-bit hash of a position."""
    x = (n * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 29)


def kind_of(p: int) -> str:
    r = _h(p, 1) % 1000
    return next(kind for kind, edge in MIX if r < edge)


def value_of(p: int, kind: str) -> str:
    """A canonical value of the type, unique per position."""
    h = _h(p, 2)
    w1, w2, tld = WORDS[h % 20], WORDS[(h >> 8) % 20], TLDS[(h >> 16) % 12]
    if kind == "url":
        query = f"?id={(h >> 24) % 100000}" if (h >> 40) % 4 == 0 else ""
        return f"https://{w1}-{p}.{w2}-site.{tld}/{WORDS[(h >> 32) % 20]}/{p:x}{query}"
    if kind == "domain":
        return f"{w1}-{w2}-{p}.{tld}"
    if kind == "ipv4":
        return f"{11 + (h % 100)}.{(p >> 16) & 255}.{(p >> 8) & 255}.{p & 255}"
    if kind == "ipv6":
        return str(ipaddress.IPv6Address((0x20010DB8 << 96) | ((h & 0xFFFF) << 32) | p))
    if kind == "md5":
        return hashlib.md5(b"bench-%d" % p).hexdigest()  # noqa: S324  (test data, not security)
    return hashlib.sha256(b"bench-%d" % p).hexdigest()


@dataclass(frozen=True, slots=True)
class Item:
    position: int
    value: str
    type: str
    source: str
    severity: str
    reputation: int
    tags: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    repeat_of: int | None  # the first source's position this item repeats

    def body(self) -> dict[str, Any]:
        """The item as the API takes it."""
        return {
            "value": self.value,
            "type": self.type,
            "source": self.source,
            "severity": self.severity,
            "reputation": self.reputation,
            "tags": list(self.tags),
            "firstSeen": self.first_seen.isoformat(),
            "lastSeen": self.last_seen.isoformat(),
        }


def repeat_target(p: int) -> int | None:
    """The first-source position that the item at p repeats, or None when p is a first-source item."""
    if p % 5 != 4:
        return None
    q = p - REPEAT_BACK  # q % 5 == 2: a first-source item; positions before the first batch repeat nothing
    return q if q >= 0 else -1


def item(p: int) -> Item:
    h = _h(p, 4)
    target = repeat_target(p)
    if target is None or target < 0:
        kind = kind_of(p)
        value = value_of(p, kind)
        source = SOURCE_A if target is None else SOURCE_B  # an early second-source item: its own value
        repeat_of = None
    else:
        kind = kind_of(target)
        value = value_of(target, kind)
        source, repeat_of = SOURCE_B, target
    last = BASE_TIME + timedelta(seconds=h % (30 * 86400))
    first = last - timedelta(seconds=(h >> 24) % (7 * 86400))
    tag = (h >> 48) % 10
    return Item(
        position=p,
        value=value,
        type=kind,
        source=source,
        severity=SEVERITIES[(h >> 8) % 5],
        reputation=1 + (h >> 16) % 10,
        tags=("phishing",) if tag == 0 else ("malware",) if tag == 1 else (),
        first_seen=first,
        last_seen=last,
        repeat_of=repeat_of,
    )


def items(start: int, stop: int) -> Iterator[Item]:
    for p in range(start, stop):
        yield item(p)


def repeated_positions(n: int) -> set[int]:
    """First-source positions whose value the second source repeats (within the first n items)."""
    return {t for p in range(4, n, 5) if (t := repeat_target(p)) is not None and t >= 0}


def bodies(n: int) -> Iterator[bytes]:
    """The POST bodies of the pipeline: JSON arrays of BATCH items."""
    for start in range(0, n, BATCH):
        yield json.dumps([i.body() for i in items(start, min(n, start + BATCH))]).encode()


def check_canonical(n: int) -> None:
    """The generator must produce canonical values, or the read model would hold other strings."""
    from cte_common.canonical import canonicalize
    from cte_common.indicators import IndicatorType

    for i in items(0, min(n, 3000)):
        canonical = canonicalize(IndicatorType(i.type), i.value)
        if canonical != i.value:
            raise AssertionError(f"generated value {i.value!r} is not canonical ({canonical!r})")


def summary(n: int) -> dict[str, Any]:
    by_type: dict[str, int] = {}
    by_source: dict[str, int] = {}
    values: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for i in items(0, n):
        by_type[i.type] = by_type.get(i.type, 0) + 1
        by_source[i.source] = by_source.get(i.source, 0) + 1
        values.add(i.value)
        pairs.add((i.value, i.source))
    return {
        "posted": n,
        "distinct_values": len(values),
        "source_entries": len(pairs),
        "by_type": by_type,
        "by_source": by_source,
    }


# --- the other phases' values ------------------------------------------------------------------------


def live_domain(run: str, n: int) -> str:
    return f"{run}-{n}.{WORDS[n % 20]}-stream.example"


def cap_candidate(list_tag: str, n: int) -> str:
    """A URL of about 90 characters: 100,000 of them already fill a list past its 7 MiB cap."""
    h = _h(n, 9)
    path = "/".join(WORDS[(h >> (4 * k)) % 20] for k in range(5 + h % 5))
    return f"https://c{n}.{list_tag}.{WORDS[h % 20]}-cap.example/{path}/{h & 0xFFFFFF:06x}"
