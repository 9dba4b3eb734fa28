"""Indicators without I/O: batch validation, the sighting event, the answer (:class:`IndicatorOut`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from cte_common.canonical import InvalidIndicator, canonicalize
from cte_common.events import Criterion, IndicatorSighting
from cte_common.indicator_schema import IndicatorOut
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


def indicator_out(row: dict[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    """A read-model row and its source rows in the shape of :class:`IndicatorOut`, as a plain dict: what
    the filter evaluator reads (rule tests, dry runs); an answer validates it as the model."""
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
            "tags": list(s["tags"]),
            "destinations": [],
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
        "sharedWith": list(row["shared_with"]),
        "tags": list(dict.fromkeys(t for s in sources for t in s["tags"])),
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
