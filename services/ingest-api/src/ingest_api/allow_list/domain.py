"""Allow-list entries without I/O: the pattern to store and the output shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cte_common.canonical import InvalidIndicator, canonicalize
from cte_common.indicators import IndicatorType
from cte_common.sharing import AllowKind, check_allow_pattern
from ingest_api.allow_list.schemas import AllowEntry, AllowEntryOut

# Types tried, in order, to find the canonical spelling of an exact allow-list value.
_EXACT_TYPES = (
    IndicatorType.MD5,
    IndicatorType.SHA256,
    IndicatorType.IPV4,
    IndicatorType.IPV6,
    IndicatorType.DOMAIN,
    IndicatorType.URL,
)


def allow_pattern(kind: AllowKind, pattern: str) -> str:
    """The pattern to store, validated and normalised; ValueError names the problem.

    An exact value is stored in its canonical spelling when it is a valid indicator of some type (the
    identity indicators are stored under); a suffix must be a DNS name, stored in its A-label form.
    """
    try:
        normal = check_allow_pattern(kind, pattern)
    except ValueError as exc:
        what = "regular expression" if kind == "regex" else f"{kind} pattern"
        raise ValueError(f"pattern: not a valid {what} ({exc})") from None
    if kind == "exact":
        for indicator_type in _EXACT_TYPES:
            try:
                return canonicalize(indicator_type, normal)
            except InvalidIndicator:
                continue
    if kind == "suffix":
        try:
            normal = canonicalize(IndicatorType.DOMAIN, normal)
        except InvalidIndicator as exc:
            raise ValueError(f"pattern: not a domain suffix ({exc.reason})") from None
        if normal.startswith("*."):
            raise ValueError("pattern: not a domain suffix (a wildcard inside the name)")
    if not normal:
        raise ValueError("pattern: empty")
    return normal


def allow_entry(row: Mapping[str, Any]) -> AllowEntry:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "pattern": row["pattern"],
        "comment": row["comment"],
        "createdAt": row["created_at"],
    }


def allow_entry_out(row: Mapping[str, Any]) -> AllowEntryOut:
    """With its hits; a row without them is a new entry, which has none."""
    return {**allow_entry(row), "hits": row.get("hits", 0), "lastHitAt": row.get("last_hit_at")}
