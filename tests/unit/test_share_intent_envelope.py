"""Share intents in envelopes: the rule-engine's intents packed one list to a record, and the sink's decoding
of either form (single intents, as older rule-engines wrote them and the dead-letter topic replays them, and
envelopes): msgspec where it can, the model for the rest, and a bad envelope rejected whole with the reason
(without Kafka; tests/component/test_sharing.py and test_dead_letters.py run them through Kafka)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from cte_common.consumer import Record
from cte_common.envelope import SHARE_INTENT_RECORDS, decode_records, envelope_values
from cte_common.events import ShareIntent, ShareIntentRecord, encode, encode_share_intent
from cte_common.indicators import IndicatorType
from tests.support.variants import assert_decoded_alike, varied

AT = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
LIST = "t/url/list1"

VALID: dict[str, Any] = {
    "event_id": "6f1c1c8e-7d1a-4a53-9b7e-0d4c0f1f2a3b",
    "occurred_at": "2026-06-01T12:00:00.123456Z",
    "kind": "share",
    "list_key": LIST,
    "value": "example.com/x",
    "type": "url",
    "add": True,
    "priority": 7.25,
    "cost_bytes": 14,
}
# Per field, values of every sort: valid, coercible by the model only, and invalid for both.
VARIANTS: dict[str, list[Any]] = {
    "event_id": ["6f1c1c8e7d1a4a539b7e0d4c0f1f2a3b", "not-a-uuid", 5],
    "occurred_at": ["2026-06-01T12:00:00", "2026-06-01", 1780000000, "yesterday"],
    "kind": ["sighting", None, "Share"],
    "list_key": [5, "", None],
    "value": [5, "", None],
    "type": ["URL", "sha256", "nope", None],
    "add": [False, "true", "maybe", 1, None],
    "priority": [0, -1.5, "2.5", "high", None, True],
    "cost_bytes": [0, -1, 3.0, 3.5, "7", None],
    "extra": [1],
}


def intent(value: str, *, add: bool = True, list_key: str = LIST) -> ShareIntentRecord:
    return ShareIntentRecord(
        occurred_at=AT, list_key=list_key, value=value, type=IndicatorType.DOMAIN, add=add, priority=2.5, cost_bytes=9
    )


def record(offset: int, value: bytes | None) -> Record:
    return Record("t", 0, offset, LIST.encode(), value, 0)


def envelope(*events: dict[str, Any]) -> bytes:
    return json.dumps({"envelope": 2, "events": list(events)}).encode()


def as_model(i: ShareIntentRecord) -> ShareIntent:
    return ShareIntent(**msgspec.structs.asdict(i))


def test_intents_in_envelopes_decode_to_what_was_encoded_by_msgspec_and_by_the_model() -> None:
    intents = [intent(f"v{i}.example", add=i % 3 != 0) for i in range(40)]
    packed = envelope_values([encode_share_intent(i) for i in intents], max_bytes=2000)
    assert len(packed) > 1
    records = [record(n, value) for n, (_, value) in enumerate(packed)]
    decoded, rejected = decode_records(records, SHARE_INTENT_RECORDS)
    assert rejected == []
    assert all(isinstance(d.event, ShareIntentRecord) for d in decoded)
    assert [d.event for d in decoded] == intents
    by_model, rejected = decode_records(records, SHARE_INTENT_RECORDS, fast=False)
    assert rejected == []
    assert [d.event for d in by_model] == [as_model(i) for i in intents]
    # Each intent comes out with the record it came in, so positions stay per record.
    firsts = [first for first, _ in packed]
    assert [d.record.offset for d in decoded] == [sum(1 for f in firsts if f <= n) - 1 for n in range(len(intents))]


def test_a_mixed_batch_of_single_intents_and_envelopes_decodes_in_order_and_a_bad_envelope_is_rejected_whole() -> None:
    old = intent("old.example")
    [(_, good)] = envelope_values([encode_share_intent(intent("a.example")), encode_share_intent(intent("b.example"))])
    [(_, bad)] = envelope_values([encode_share_intent(intent("c.example")), b'{"list_key": "k", "value": "v"}'])
    model_written = ShareIntent(list_key=LIST, value="model.example", type=IndicatorType.MD5, add=False)
    coerced = json.dumps({**VALID, "value": "coerced.example", "cost_bytes": "7"}).encode()
    records = [
        record(1, encode_share_intent(old)),  # an older rule-engine's single intent
        record(2, good),
        record(3, bad),
        record(4, encode(model_written)),  # a single intent as the model writes it (a replayed letter)
        record(5, b"{not json"),
        record(6, b'{"envelope": 3, "events": []}'),
        record(7, None),
        record(8, coerced),  # only the model takes it
        record(9, b'{"list_key": "k", "value": "v", "type": "md5", "add": "maybe"}'),
    ]
    decoded, rejected = decode_records(records, SHARE_INTENT_RECORDS)
    assert [(d.record.offset, d.event.value) for d in decoded] == [
        (1, "old.example"),
        (2, "a.example"),
        (2, "b.example"),
        (4, "model.example"),
        (8, "coerced.example"),
    ]
    assert decoded[0].event == old
    assert isinstance(decoded[3].event, ShareIntentRecord)
    assert (decoded[3].event.event_id, decoded[3].event.add) == (model_written.event_id, False)
    assert isinstance(decoded[4].event, ShareIntent), "what msgspec refuses, the model decides"
    assert decoded[4].event.cost_bytes == 7
    reasons = {r.record.offset: r.reason for r in rejected}
    assert sorted(reasons) == [3, 5, 6, 7, 9]
    assert reasons[3].startswith("events.1"), "the reason names the intent that spoils the envelope"
    assert "type" in reasons[3]
    assert "envelope" in reasons[6]
    assert "add" in reasons[9]
    assert next(r for r in rejected if r.record.offset == 3).record.value == bad, "parked whole, as it was"


def model_decode(event: dict[str, Any], *, in_envelope: bool) -> ShareIntent | str:
    """What the model makes of one intent, single or in an envelope: the intent, or the reason it refuses it."""
    value = envelope(event, VALID) if in_envelope else json.dumps(event).encode()
    decoded, rejected = decode_records([record(0, value)], SHARE_INTENT_RECORDS, fast=False)
    if rejected:
        return rejected[0].reason
    assert isinstance(decoded[0].event, ShareIntent)
    return decoded[0].event


def test_the_share_intent_record_decodes_to_the_models_values() -> None:
    for in_envelope in (False, True):
        value = envelope(VALID) if in_envelope else json.dumps(VALID).encode()
        [fast], rejected = decode_records([record(0, value)], SHARE_INTENT_RECORDS)
        assert rejected == []
        assert isinstance(fast.event, ShareIntentRecord)
        model = model_decode(VALID, in_envelope=in_envelope)
        assert isinstance(model, ShareIntent)
        assert msgspec.structs.asdict(fast.event) == model.model_dump()
        assert fast.event.type is IndicatorType.URL


@settings(max_examples=400, deadline=None)
@given(st.booleans(), st.data())
def test_what_msgspec_accepts_the_model_accepts_alike_and_the_rest_the_model_decides(
    in_envelope: bool, data: st.DataObject
) -> None:
    event = varied(VALID, VARIANTS, data)
    model = model_decode(event, in_envelope=in_envelope)
    value = envelope(event, VALID) if in_envelope else json.dumps(event).encode()
    decoded, rejected = decode_records([record(0, value)], SHARE_INTENT_RECORDS)
    assert_decoded_alike(event, model, decoded, rejected)


def test_a_single_intent_is_told_from_an_envelope_by_its_first_field() -> None:
    """A single intent's JSON starts with its first field (``event_id``), an envelope's with ``envelope``."""
    single = encode_share_intent(ShareIntentRecord(list_key=LIST, value="v", type=IndicatorType.MD5, add=True))
    assert single.startswith(b'{"event_id"')
    assert envelope_values([single])[0][1].startswith(b'{"envelope":2')
