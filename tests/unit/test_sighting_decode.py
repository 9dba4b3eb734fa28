"""The rule-engine decodes envelopes of sightings with msgspec (``SightingEvent``) and falls back to the
model for anything else: what msgspec accepts, the model accepts with the same values, and what it refuses
is decided by the model (accepted as the model takes it, or rejected with the model's reason)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from cte_common.consumer import Record
from cte_common.envelope import INDICATOR_RECORDS, decode_records
from cte_common.events import IndicatorSighting, SightingEvent
from cte_common.indicators import IndicatorType
from tests.support.variants import assert_decoded_alike, varied

NOW = datetime(2026, 6, 1, tzinfo=UTC)

VALID: dict[str, Any] = {
    "event_id": "6f1c1c8e-7d1a-4a53-9b7e-0d4c0f1f2a3b",
    "occurred_at": "2026-06-01T12:00:00.123456Z",
    "kind": "sighting",
    "value": "example.com/x",
    "type": "url",
    "source": "feed-a",
    "reputation": 5,
    "severity": "high",
    "tags": ["phishing", "x"],
    "comments": "c",
    "extended_information": "e",
    "first_seen": "2026-06-01T12:00:00Z",
    "last_seen": "2026-06-01T13:00:00+02:00",
    "expires_at": None,
    "internal": True,
    "test": False,
    "criterion": "highestSeverity",
    "tags_strategy": "overwrite",
    "from_api": True,
    "safe": False,
    "active": True,
}
# Per field, values of every sort: valid, coercible by the model only, and invalid for both.
VARIANTS: dict[str, list[Any]] = {
    "event_id": ["6f1c1c8e7d1a4a539b7e0d4c0f1f2a3b", "not-a-uuid", 5],
    "occurred_at": ["2026-06-01T12:00:00", "2026-06-01", 1780000000, "yesterday"],
    "kind": ["expire", None, "Sighting"],
    "value": [5, "", None],
    "type": ["URL", "sha256", "nope", None],
    "source": [None, 1],
    "reputation": [None, 0, 1, 10, 11, "5", 5.0, 5.5, True],
    "severity": ["unknown", "HIGH", "none", None],
    "tags": [[], ["a", "a"], "a", [1], None],
    "comments": [None, 3],
    "first_seen": [None, "2026-13-01T00:00:00Z", 1780000000.5],
    "expires_at": ["2026-07-01T00:00:00Z", "never"],
    "internal": [0, 1, "true", None],
    "criterion": ["lastSeen", "firstSeen", "newest"],
    "tags_strategy": ["append", "merge"],
    "from_api": [False, "no"],
    "safe": [True, 1],
    "active": [False, "false"],
}


def record(offset: int, value: bytes) -> Record:
    return Record("t", 0, offset, b"k", value, 0)


def envelope(*events: dict[str, Any]) -> bytes:
    return json.dumps({"envelope": 2, "events": list(events)}).encode()


def model_decode(event: dict[str, Any]) -> IndicatorSighting | str:
    """What the model makes of one event of an envelope: the sighting, or the reason it refuses it."""
    decoded, rejected = decode_records([record(0, envelope(event, VALID))], INDICATOR_RECORDS, fast=False)
    if rejected:
        return rejected[0].reason
    assert isinstance(decoded[0].event, IndicatorSighting)
    return decoded[0].event


def test_the_sighting_event_has_the_models_fields_in_order() -> None:
    assert list(SightingEvent.__struct_fields__) == list(IndicatorSighting.model_fields)


def test_an_envelope_of_sightings_decodes_to_the_models_values() -> None:
    decoded, rejected = decode_records([record(0, envelope(VALID, {**VALID, "value": "b.example"}))], INDICATOR_RECORDS)
    assert rejected == []
    fast = decoded[0].event
    assert isinstance(fast, SightingEvent)
    model = model_decode(VALID)
    assert isinstance(model, IndicatorSighting)
    assert msgspec.structs.asdict(fast) == model.model_dump()
    assert fast.type is IndicatorType.URL


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_what_msgspec_accepts_the_model_accepts_alike_and_the_rest_the_model_decides(data: st.DataObject) -> None:
    event = varied(VALID, VARIANTS, data)
    model = model_decode(event)
    decoded, rejected = decode_records([record(0, envelope(event, VALID))], INDICATOR_RECORDS)
    assert_decoded_alike(event, model, decoded, rejected)


def test_an_envelope_with_other_kinds_is_decoded_by_the_model_in_order() -> None:
    delete = {"kind": "delete", "value": "example.com/x"}
    decoded, rejected = decode_records([record(0, envelope(VALID, delete))], INDICATOR_RECORDS)
    assert rejected == []
    assert [(type(d.event).__name__, d.event.kind) for d in decoded] == [
        ("IndicatorSighting", "sighting"),
        ("IndicatorDelete", "delete"),
    ]
