"""Business rules without I/O: stored forms, output shapes, muting, the rule test's tally."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cte_common.indicators import HASH_LIST_TYPES, IndicatorType
from cte_common.query import MATCH_ALL, Node, QueryError, parse_json, parse_text, referenced_tags, to_json, to_text
from cte_common.sharing import Action, Decision, RuleDef, RuleException, SharingDef
from ingest_api.rules.schemas import (
    ExceptionIn,
    FilterException,
    Filters,
    FiltersIn,
    Reevaluation,
    Rule,
    RuleTest,
    TagsException,
)


def parse_rule_filter(filters: FiltersIn, where: str) -> tuple[Node, str]:
    """The filter's AST and its readable text (as given, or rendered from the JSON form).

    Raises QueryError whose message starts with ``where`` (``filters.query: position 3: ...``).
    """
    if filters.query is not None:
        try:
            return parse_text(filters.query), filters.query
        except QueryError as exc:
            raise QueryError(f"{where}.query: {exc.message}", position=exc.position) from None
    assert filters.mongo is not None
    node = parse_json(filters.mongo, root=f"{where}.mongo")
    return node, to_text(node)


def rule_columns(filters: FiltersIn) -> dict[str, Any]:
    """The stored form of a rule's filter: canonical JSON, and the text it was written in."""
    node, text = parse_rule_filter(filters, "filters")
    return {"filter": to_json(node), "filter_text": text}


def stored_exceptions(exceptions: list[ExceptionIn]) -> list[dict[str, Any]]:
    """Exceptions as stored: ``{name, filter: canonical JSON | null, tags: [...]}``."""
    out = []
    for n, exc in enumerate(exceptions):
        node = None
        if exc.filters is not None:
            node, _ = parse_rule_filter(exc.filters, f"exceptions[{n}].filters")
            if node == MATCH_ALL:
                raise QueryError(f"exceptions[{n}].filters: an exception that matches everything would share nothing")
        tags = list(dict.fromkeys(exc.tags or ()))
        out.append({"name": exc.name, "filter": to_json(node) if node is not None else None, "tags": tags})
    return out


def exception_tags(exceptions: list[dict[str, Any]]) -> list[str]:
    return sorted({t for e in exceptions for t in e["tags"]})


def _filters_out(stored: dict[str, Any], text: str | None) -> Filters:
    node = parse_json(stored)
    return {"query": text if text is not None else to_text(node), "mongo": json.dumps(stored)}


def rule_muted(row: Mapping[str, Any], now: datetime) -> bool:
    """Muted until unmuteAt: once that time passes the rule counts as unmuted, as after the reference's
    unmute task."""
    return bool(row["muted"]) and (row["unmute_at"] is None or row["unmute_at"] > now)


def rule_out(row: Mapping[str, Any], now: datetime) -> Rule:
    exceptions: list[FilterException | TagsException] = [
        {"name": e["name"], "filters": _filters_out(e["filter"], None)}
        if e.get("filter") is not None
        else {"name": e["name"], "tags": list(e["tags"])}
        for e in row["exceptions"]
    ]
    muted = rule_muted(row, now)
    return {
        "name": row["name"],
        "filters": _filters_out(row["filter"], row["filter_text"]),
        "exceptions": exceptions,
        "muted": muted,
        "unmuteAt": row["unmute_at"] if muted else None,
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def rule_def(row: Mapping[str, Any]) -> RuleDef:
    """The stored rule as the evaluator (shared with the rule-engine) takes it."""
    return RuleDef(
        name=row["name"],
        node=parse_json(row["filter"]),
        exceptions=tuple(
            RuleException(
                name=e["name"],
                node=parse_json(e["filter"]) if e.get("filter") is not None else None,
                tags=frozenset(e.get("tags") or ()),
            )
            for e in row["exceptions"]
        ),
        muted=row["muted"],
        unmute_at=row["unmute_at"],
    )


def rule_uses_tag(row: Mapping[str, Any], tag: str) -> bool:
    """Whether the rule's filter or one of its exceptions (by tags or by filter) names ``tag``."""
    if tag in referenced_tags(parse_json(row["filter"])):
        return True
    for e in row["exceptions"]:
        if tag in (e.get("tags") or ()):
            return True
        if e.get("filter") is not None and tag in referenced_tags(parse_json(e["filter"])):
            return True
    return False


def mute_problem(muted: bool, unmute_at: datetime | None, now: datetime) -> str | None:
    """Why a rule cannot be muted like this (the reference: unmuteAt is required and in the future)."""
    if muted and (unmute_at is None or unmute_at <= now):
        return "unmuteAt: muting a rule needs an unmuteAt in the future"
    return None


# Rule test (GET /business_rules/{name}/test)


def rule_test_action(kind: str) -> Action:
    """The target a type goes to: hashes to a file hash list, everything else to a URL list."""
    return "file" if IndicatorType(kind) in HASH_LIST_TYPES else "url"


def rule_test_source(indicator: Mapping[str, Any], since: datetime) -> str | None:
    """With no source given, the source entry that would share the indicator: one seen since ``since``,
    preferably not retracted (a sharing always names one source)."""
    recent = [s for s in indicator["sources"] if s["lastSeen"] is not None and s["lastSeen"] > since]
    recent.sort(key=lambda s: bool(s["retracted"]))
    return recent[0]["source"] if recent else None


@dataclass
class RuleTestTally:
    """The reference's rule test answer: how many indicators, and how many bytes, per target type."""

    hash_count: int = 0
    hash_size: int = 0
    url_count: int = 0
    url_size: int = 0

    def add(self, action: Action, decision: Decision) -> None:
        if not decision.selected:
            return
        if action == "file":
            self.hash_count += 1
            self.hash_size += decision.cost
        else:
            self.url_count += 1
            self.url_size += decision.cost

    def out(self) -> RuleTest:
        return {
            "hash_count": self.hash_count,
            "hash_size": self.hash_size,
            "url_count": self.url_count,
            "url_size": self.url_size,
        }


def ad_hoc_sharing(rule: RuleDef, source: str, action: Action) -> SharingDef:
    """A sharing that exists only to ask the evaluator about a rule (no list, no cap)."""
    return SharingDef(id=0, source=source, rule=rule, action=action, list_key="", cap_bytes=0)


# Re-evaluations (the rule-engine's progress)


def reevaluation_out(row: Mapping[str, Any]) -> Reevaluation:
    return {
        "id": row["id"],
        "reason": row["reason"],
        "requestedAt": row["requested_at"],
        "startedAt": row["started_at"],
        "finishedAt": row["finished_at"],
        "processed": row["processed"],
        "total": row["total"],
    }
