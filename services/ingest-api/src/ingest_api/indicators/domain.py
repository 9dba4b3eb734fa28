"""Indicators without I/O: batch validation, the sighting event, the answer (:class:`IndicatorOut`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timezone
from typing import Any

import msgspec
from pydantic import TypeAdapter, ValidationError

from cte_common.canonical import InvalidIndicator, canonicalize, canonicalize_fast
from cte_common.events import Criterion, IndicatorSighting, SightingRecord, random_event_ids
from cte_common.indicator_schema import LIST_STATUS_TAGS, IndicatorOut
from cte_common.indicators import IndicatorType, Severity
from cte_common.sightings import SightingPolicy, make_sighting
from ingest_api.configurations.schemas import ConfigurationRow
from ingest_api.indicators.schemas import (
    COMMENTS_MAX,
    EXTENDED_INFORMATION_MAX,
    REPUTATION_MAX,
    REPUTATION_MIN,
    SOURCE_MAX,
    TAG_NAME_MAX,
    TAGS_MAX,
    VALUE_MAX,
    AcceptedIndicator,
    AcceptedSource,
    IndicatorIn,
    LeanIndicatorIn,
    ValidIndicator,
    is_http_url,
)

_INDICATOR_ADAPTER: TypeAdapter[IndicatorIn] = TypeAdapter(IndicatorIn)
_INPUT_FIELDS = frozenset(IndicatorIn.model_fields)
# What an ignored key is counted as: a field of the reference's answer (a GET result sent back) by its
# name, anything else as "other" (clients choose the keys: the metric's labels stay few).
_ANSWER_FIELDS = frozenset(IndicatorOut.model_fields) | {"retracted", "updated", "sharedWith", "destinations"}


def ignored_fields(entry: Any) -> list[str]:
    """The keys of an indicator (a JSON object) that IndicatorIn ignores, as the labels they are counted
    under."""
    if not isinstance(entry, dict):
        return []
    return [k if k in _ANSWER_FIELDS else "other" for k in entry if k not in _INPUT_FIELDS]


def item_error(index: int, field: str | None, reason: str) -> dict[str, Any]:
    """One entry of a 422 body: FastAPI's loc/msg/type, plus the item index and field by name."""
    loc: list[Any] = ["body", index, *(field.split(".") if field else [])]
    return {"loc": loc, "msg": reason, "type": "value_error", "index": index, "field": field}


def validate_batch(raw: list[Any], known_sources: set[str]) -> tuple[list[IndicatorIn], list[dict[str, Any]]]:
    """Validate every item with :class:`IndicatorIn` (nothing is written unless all are valid) and report
    every problem found: the reference the lean path (:func:`validate_batch_lean`) agrees with."""
    items: list[IndicatorIn] = []
    errors: list[dict[str, Any]] = []
    for index, entry in enumerate(raw):
        item = _validate_item(index, entry, known_sources, errors)
        if item is not None:
            items.append(item)
    return items, errors


def _validate_item(index: int, entry: Any, known_sources: set[str], errors: list[dict[str, Any]]) -> IndicatorIn | None:
    try:
        item = _INDICATOR_ADAPTER.validate_python(entry)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or None
            errors.append(item_error(index, field, str(err["msg"]).removeprefix("Value error, ")))
        source = entry.get("source") if isinstance(entry, dict) else None
        if isinstance(source, str) and source.strip() and source.strip() not in known_sources:
            errors.append(item_error(index, "source", f"Configuration with name='{source}' does not exist."))
        return None
    if item.source not in known_sources:
        errors.append(item_error(index, "source", f"Configuration with name='{item.source}' does not exist."))
    return item


# --- the lean path: the same answers as IndicatorIn, without a model per item ---------------------------


class _NotSure(Exception):
    """The lean checks cannot vouch for an item: IndicatorIn validates it (and words any error)."""


_TYPES = {t.value: t for t in IndicatorType}
_SEVERITIES = {s.value: s for s in Severity}
# The RFC 3339 times that datetime.fromisoformat reads exactly as pydantic does; other spellings pydantic
# accepts (a space, a date alone, a Unix time, more than 6 digits of a second) go to IndicatorIn.
_TIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_to_lean = msgspec.convert


def _plain(text: str, low: int, high: int) -> str:
    """``text`` if IndicatorIn would take it as it is: nothing to strip (pydantic strips fewer characters
    than str.strip, so text str.strip leaves alone is left alone by both), within its length."""
    if low <= len(text) <= high and text == text.strip():
        return text
    raise _NotSure


def _time(text: str) -> datetime:
    if _TIME_RE.fullmatch(text) is None:
        raise _NotSure
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _NotSure from None
    # The reference stores naive UTC; a naive time from a client is read as UTC (shared.utc).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def lean_item(entry: Any) -> ValidIndicator:
    """An item of a POST body, checked as :class:`IndicatorIn` checks it, with its value canonical; raises
    ``_NotSure`` for an item it cannot vouch for (invalid, or spelled in a way only IndicatorIn reads)."""
    if type(entry) is LeanIndicatorIn:
        item = entry
    elif type(entry) is dict:
        try:
            item = _to_lean(entry, LeanIndicatorIn, strict=True)
        except msgspec.ValidationError:
            raise _NotSure from None
    else:
        raise _NotSure
    kind = _TYPES.get(item.type)
    severity = _SEVERITIES.get(item.severity)
    if kind is None or severity is None or not REPUTATION_MIN <= item.reputation <= REPUTATION_MAX:
        raise _NotSure
    tags = item.tags
    if tags:
        if len(tags) > TAGS_MAX:
            raise _NotSure
        tags = [_plain(t, 1, TAG_NAME_MAX) for t in tags]
        if len(tags) > 1:
            tags = list(dict.fromkeys(tags))
    # Empty text is valid as it is: the checks run only on text that is there (most items have none).
    extended = item.extendedInformation
    comments = item.comments
    if comments:
        comments = _plain(comments, 0, COMMENTS_MAX)
    try:
        if extended and not is_http_url(_plain(extended, 0, EXTENDED_INFORMATION_MAX)):
            raise _NotSure
        value = canonicalize_fast(kind, _plain(item.value, 1, VALUE_MAX))
    except ValueError:  # InvalidIndicator, or a URL urlsplit cannot read
        raise _NotSure from None
    first_seen = None if item.firstSeen is None else _time(item.firstSeen)
    last_seen = None if item.lastSeen is None else _time(item.lastSeen)
    if first_seen and last_seen and first_seen > last_seen:
        raise _NotSure
    return ValidIndicator(
        kind,
        value,
        _plain(item.source, 1, SOURCE_MAX),
        item.reputation,
        severity,
        tags,
        comments,
        extended,
        first_seen,
        last_seen,
        None if item.expiresAt is None else _time(item.expiresAt),
        item.test,
        item.safe,
        item.active,
    )


def _plain_tz(value: datetime | None) -> datetime | None:
    """pydantic's time zone as the standard library's (the encoders know it), the same offset."""
    if value is None or type(value.tzinfo) is timezone:
        return value
    offset = value.utcoffset()
    return value.replace(tzinfo=UTC if not offset else timezone(offset))


def _valid(item: IndicatorIn) -> ValidIndicator:
    return ValidIndicator(
        type=item.type,
        value=item.value,
        source=item.source,
        reputation=item.reputation,
        severity=item.severity,
        tags=item.tags,
        comments=item.comments,
        extendedInformation=item.extendedInformation,
        firstSeen=_plain_tz(item.firstSeen),
        lastSeen=_plain_tz(item.lastSeen),
        expiresAt=_plain_tz(item.expiresAt),
        test=item.test,
        safe=item.safe,
        active=item.active,
    )


def parse_json(body: bytes) -> Any:
    """A body as the JSON values ``json.loads`` (FastAPI's parse) gives, by msgspec where it can: what
    msgspec reads, json.loads reads the same way (orjson does not: it reads an integer beyond 64 bits as
    a float); what it refuses (another encoding than UTF-8, NaN, a number beyond a float's range, a lone
    surrogate, malformed JSON) is left to json.loads, whose values or error stand."""
    try:
        return _JSON_VALUES.decode(body)
    except msgspec.DecodeError:
        return json.loads(body)


_JSON_VALUES = msgspec.json.Decoder()
_LEAN_BODY = msgspec.json.Decoder(list[LeanIndicatorIn])


def read_body(body: bytes) -> Any:
    """A POST body of indicators: a list of :class:`LeanIndicatorIn` where every item reads as one (one
    pass by msgspec, no dict per item), otherwise :func:`parse_json`'s values (or its error)."""
    try:
        return _LEAN_BODY.decode(body)
    except msgspec.DecodeError:  # a ValidationError too: not every item reads as LeanIndicatorIn
        return parse_json(body)


class NeedsJsonValues(Exception):
    """An item decoded straight into :class:`LeanIndicatorIn` (the whole body read by msgspec) is one the
    lean checks are not sure of: IndicatorIn must validate it as the client spelled it, so the caller
    passes the body as JSON values instead (``parse_json``)."""


def validate_batch_lean(
    raw: Sequence[Any], known_sources: set[str], ignored: Counter[str] | None = None
) -> tuple[list[ValidIndicator], list[dict[str, Any]]]:
    """:func:`validate_batch`'s items and errors, the same ones (the property tests compare them): each
    item through :func:`lean_item`, and through IndicatorIn where it is not sure. The keys IndicatorIn
    ignores are counted in ``ignored`` (:func:`ignored_fields`). Items are JSON values, or
    :class:`LeanIndicatorIn` where the body was decoded straight into them; if one of those needs
    IndicatorIn, raises :class:`NeedsJsonValues`."""
    items: list[ValidIndicator] = []
    errors: list[dict[str, Any]] = []
    for index, entry in enumerate(raw):
        try:
            item = lean_item(entry)
        except _NotSure:
            if type(entry) is LeanIndicatorIn:
                raise NeedsJsonValues from None
            if ignored is not None:
                ignored.update(ignored_fields(entry))
            slow = _validate_item(index, entry, known_sources, errors)
            if slow is not None:
                items.append(_valid(slow))
            continue
        if item.source not in known_sources:
            errors.append(item_error(index, "source", f"Configuration with name='{item.source}' does not exist."))
        items.append(item)
    return items, errors


def sighting_records(
    items: Sequence[ValidIndicator], configs: Mapping[str, ConfigurationRow], criterion: Criterion, now: datetime
) -> list[SightingRecord]:
    """The sighting of each item (what :func:`build_sighting` makes), as plain records for the encoder."""
    policies = {name: SightingPolicy(config) for name, config in configs.items()}
    out: list[SightingRecord] = []
    for i, event_id in zip(items, random_event_ids(len(items)), strict=True):
        policy = policies[i.source]
        first_seen = i.firstSeen or i.lastSeen or now
        last_seen = i.lastSeen or max(first_seen, now)
        out.append(
            SightingRecord(
                event_id=event_id,
                occurred_at=now,
                value=i.value,
                type=i.type,
                source=policy.name,
                reputation=policy.reputation(i.reputation),
                severity=i.severity,
                tags=i.tags,
                comments=i.comments,
                extended_information=i.extendedInformation,
                first_seen=first_seen,
                last_seen=last_seen,
                expires_at=i.expiresAt or policy.expires_at(i.type, now, first_seen, last_seen),
                internal=policy.internal,
                test=i.test,
                criterion=criterion,
                tags_strategy=policy.tags_strategy,
                from_api=True,
                safe=i.safe,
                active=i.active,
            )
        )
    return out


_ANSWER_ENCODER = msgspec.json.Encoder()
_EMPTY = ()


def sightings_answer(records: Sequence[SightingRecord]) -> bytes:
    """The 201 answer of a POST without ``wait``: :func:`sighting_out` of each sighting, as JSON (the
    bytes pydantic writes for IndicatorOut), encoded by msgspec from plain structs."""
    return _ANSWER_ENCODER.encode([_accepted(ev) for ev in records])


def _accepted(ev: IndicatorSighting | SightingRecord) -> AcceptedIndicator:
    """The accepted indicator as the sighting describes it: what the source reported, at both levels."""
    internal = int(ev.internal)
    external = 1 - internal
    # The fields both levels give, in the order both declare them.
    reported = (ev.first_seen, ev.last_seen, ev.reputation, ev.severity, ev.comments, ev.extended_information)
    return AcceptedIndicator(
        ev.value,
        ev.type,
        ev.test,
        ev.safe,
        ev.active and (ev.expires_at is None or ev.expires_at > ev.occurred_at),
        internal,
        external,
        ev.expires_at,
        ev.source,
        _EMPTY,
        ev.tags,
        *reported,
        (AcceptedSource(ev.source, internal, external, *reported, ev.tags),),
    )


def claimed_sources(raw: list[Any]) -> list[str]:
    """The source names a raw batch mentions (items as JSON values or :class:`LeanIndicatorIn`), to look
    them up in one query before validating."""
    names: set[str] = set()
    for e in raw:
        if type(e) is LeanIndicatorIn:
            names.add(e.source.strip())
        elif isinstance(e, dict) and isinstance(e.get("source"), str):
            names.add(e["source"].strip())
    return sorted(names)


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
        safe=item.safe,
        active=item.active,
    )


def sighting_out(ev: IndicatorSighting) -> IndicatorOut:
    """The accepted indicator as the sighting describes it (the answer of a write without ``wait``)."""
    return IndicatorOut.model_validate(msgspec.to_builtins(_accepted(ev), builtin_types=(datetime,)))


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
