"""Indicators without I/O: batch validation, the sighting event, the answer (:class:`IndicatorOut`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from cte_common.canonical import InvalidIndicator, canonicalize
from cte_common.events import Criterion, IndicatorSighting
from cte_common.indicator_schema import LIST_STATUS_TAGS, IndicatorOut
from cte_common.indicators import IndicatorType
from cte_common.sightings import make_sighting
from ingest_api.configurations.schemas import ConfigurationRow
from ingest_api.indicators.schemas import IndicatorIn

_INDICATOR_ADAPTER: TypeAdapter[IndicatorIn] = TypeAdapter(IndicatorIn)


def item_error(index: int, field: str | None, reason: str) -> dict[str, Any]:
    """One entry of a 422 body: FastAPI's loc/msg/type, plus the item index and field by name."""
    loc: list[Any] = ["body", index, *(field.split(".") if field else [])]
    return {"loc": loc, "msg": reason, "type": "value_error", "index": index, "field": field}


def validate_batch(raw: list[Any], known_sources: set[str]) -> tuple[list[IndicatorIn], list[dict[str, Any]]]:
    """Validate every item (nothing is written unless all are valid) and report every problem found."""
    items: list[IndicatorIn] = []
    errors: list[dict[str, Any]] = []
    for index, entry in enumerate(raw):
        try:
            item = _INDICATOR_ADAPTER.validate_python(entry)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or None
                errors.append(item_error(index, field, str(err["msg"]).removeprefix("Value error, ")))
            source = entry.get("source") if isinstance(entry, dict) else None
            if isinstance(source, str) and source.strip() and source.strip() not in known_sources:
                errors.append(item_error(index, "source", f"Configuration with name='{source}' does not exist."))
            continue
        if item.source not in known_sources:
            errors.append(item_error(index, "source", f"Configuration with name='{item.source}' does not exist."))
        items.append(item)
    return items, errors


def claimed_sources(raw: list[Any]) -> list[str]:
    """The source names a raw batch mentions, to look them up in one query before validating."""
    return sorted({e["source"].strip() for e in raw if isinstance(e, dict) and isinstance(e.get("source"), str)})


def build_sighting(
    item: IndicatorIn, config: ConfigurationRow, criterion: Criterion, now: datetime
) -> IndicatorSighting:
    """Resolve the configuration's effects (Override Reputation, Aging Criteria) into the event."""
    first_seen = item.firstSeen or item.lastSeen or now
    return make_sighting(
        value=item.value,
        kind=item.type,
        config=config,
        criterion=criterion,
        now=now,
        first_seen=first_seen,
        last_seen=item.lastSeen or max(first_seen, now),
        expires_at=item.expiresAt,
        reputation=item.reputation,
        severity=item.severity,
        tags=item.tags,
        comments=item.comments,
        extended_information=item.extendedInformation,
        test=item.test,
        from_api=True,
    )


def sighting_out(ev: IndicatorSighting) -> IndicatorOut:
    """The accepted indicator as the sighting describes it (the answer of a write without ``wait``)."""
    hits = {"internalHits": int(ev.internal), "externalHits": int(not ev.internal)}
    # What the source reported, at both levels (the model, not these dicts, orders the answer's keys).
    reported = {
        "firstSeen": ev.first_seen,
        "lastSeen": ev.last_seen,
        "reputation": ev.reputation,
        "severity": ev.severity,
        "comments": ev.comments,
        "extendedInformation": ev.extended_information,
        "tags": ev.tags,
    }
    source = {
        "source": ev.source,
        **hits,
        **reported,
        "destinations": [],
        "retracted": False,
        "retractionDestinations": [],
    }
    # Validated from a plain dict rather than built from keywords: a little faster, and a POST answers with
    # thousands of these.
    return IndicatorOut.model_validate(
        {
            "value": ev.value,
            "type": ev.type,
            "test": ev.test,
            "safe": False,
            "active": ev.expires_at is None or ev.expires_at > ev.occurred_at,
            "expiresAt": ev.expires_at,
            "source": ev.source,
            "sharedWith": [],
            **hits,
            **reported,
            "sources": [source],
        }
    )


# A list's status of a value (list_value_status) as a destination's status on a source entry.
_DESTINATION_STATUS = {"pending": "pending", "shared": "shared", "left_out": "failed", "unfit": "failed"}
_DESTINATION_RANK = {"shared": 0, "pending": 1, "failed": 2}


def list_status_fields(
    lists: Sequence[Mapping[str, Any]],
) -> tuple[list[str], list[str], dict[str, list[dict[str, str]]]]:
    """From where a value stands in the lists (rows of list_value_status: source, destination, status):
    the tags the lists give it, ``sharedWith`` (the destinations whose lists hold it) and, per source,
    its ``destinations`` (one per destination configuration, the best status when it has several lists)."""
    statuses = {r["status"] for r in lists}
    tags = [tag for tag, given_by in LIST_STATUS_TAGS.items() if statuses.intersection(given_by)]
    shared_with = sorted({r["destination"] for r in lists if r["status"] == "shared"})
    best: dict[str, dict[str, str]] = {}
    for r in lists:
        status = _DESTINATION_STATUS.get(r["status"], "failed")
        current = best.setdefault(r["source"], {}).get(r["destination"])
        if current is None or _DESTINATION_RANK[status] < _DESTINATION_RANK[current]:
            best[r["source"]][r["destination"]] = status
    destinations = {
        source: [{"name": name, "status": status} for name, status in sorted(by_name.items())]
        for source, by_name in best.items()
    }
    return tags, shared_with, destinations


def indicator_out(
    row: dict[str, Any], sources: list[dict[str, Any]], lists: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """A read-model row and its source rows in the shape of :class:`IndicatorOut`, as a plain dict: what
    the filter evaluator reads (rule tests, dry runs); an answer validates it as the model. ``lists``:
    where the value stands in the lists (answers only; the rule-engine sees only what is stored)."""
    list_tags, shared_with, destinations = list_status_fields(lists)
    source_out = [
        {
            "source": s["source"],
            "internalHits": s["internal_hits"],
            "externalHits": s["external_hits"],
            "firstSeen": s["first_seen"],
            "lastSeen": s["last_seen"],
            "reputation": s["reputation"],
            "severity": s["severity"],
            "comments": s["comments"],
            "extendedInformation": s["extended_information"],
            "tags": list(dict.fromkeys([*s["tags"], *list_tags])),
            "destinations": destinations.get(s["source"], []),
            "retracted": s["retracted"],
            "retractionDestinations": [],
        }
        for s in sources
    ]
    return {
        "value": row["value"],
        "type": row["type"],
        "test": row["test"],
        "safe": row["safe"],
        "active": row["active"],
        "internalHits": row["internal_hits"],
        "externalHits": row["external_hits"],
        "expiresAt": row["expires_at"],
        "source": row["source"],
        "sharedWith": list(dict.fromkeys([*row["shared_with"], *shared_with])),
        "tags": list(dict.fromkeys(t for s in source_out for t in s["tags"])),
        "firstSeen": row["first_seen"],
        "lastSeen": row["last_seen"],
        "reputation": row["reputation"],
        "severity": row["severity"],
        "comments": row["comments"],
        "extendedInformation": row["extended_information"],
        "sources": source_out,
    }


def value_candidates(value: str) -> list[str]:
    """Spellings under which ``value`` may be stored: as given, and its canonical form for each type.

    Lets a client address an indicator the way it posted it (``WWW.Example.com``) although the
    canonical form is what is stored.
    """
    found = [value.strip()]
    for kind in IndicatorType:
        try:
            found.append(canonicalize(kind, value))
        except InvalidIndicator:
            continue
    return list(dict.fromkeys(found))
