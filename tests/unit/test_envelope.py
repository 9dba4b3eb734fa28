"""Envelopes of indicator events: how events are packed, and how records of either form decode (without
Kafka; tests/component/test_envelopes.py runs them through Kafka and the rule-engine)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cte_common.consumer import Record
from cte_common.envelope import INDICATOR_RECORDS, decode_records, envelope_values
from cte_common.events import IndicatorDelete, IndicatorSighting, IndicatorTagEditMany, encode
from cte_common.indicators import IndicatorType

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def sighting(value: str) -> bytes:
    return encode(IndicatorSighting(value=value, type=IndicatorType.DOMAIN, source="S", first_seen=NOW, last_seen=NOW))


def record(offset: int, value: bytes | None) -> Record:
    return Record("t", 0, offset, b"k", value, 0)


def test_envelopes_keep_the_order_and_close_before_their_size() -> None:
    events = [sighting(f"v{i}.example") for i in range(50)]
    packed = envelope_values(events, max_bytes=2000)
    assert len(packed) > 1
    assert all(len(value) <= 2000 for _, value in packed)
    firsts = [first for first, _ in packed]
    assert firsts[0] == 0
    assert firsts == sorted(firsts)
    unpacked = [e for _, value in packed for e in json.loads(value)["events"]]
    assert unpacked == [json.loads(e) for e in events]
    assert all(json.loads(value)["envelope"] == 2 for _, value in packed)


def test_an_event_larger_than_an_envelope_goes_alone() -> None:
    big, small = sighting("a" * 60 + ".example"), sighting("b.example")
    packed = envelope_values([small, big, small], max_bytes=len(big))
    assert [first for first, _ in packed] == [0, 1, 2]


def test_records_of_either_form_decode_in_order_and_poison_is_rejected_whole() -> None:
    [(_, envelope)] = envelope_values([sighting("b.example"), encode(IndicatorDelete(value="b.example"))])
    [(_, poison)] = envelope_values([sighting("c.example"), b'{"kind": "sighting"}'])
    many = encode(IndicatorTagEditMany(values=["d.example", "e.example"], add=["Unshared"]))
    records = [
        record(1, sighting("a.example")),
        record(2, envelope),
        record(3, poison),
        record(4, b"{not json"),
        record(5, many),
        record(6, b'{"envelope": 3, "events": []}'),
        record(7, None),
    ]
    decoded, rejected = decode_records(records, INDICATOR_RECORDS)
    assert [(d.record.offset, d.event.kind) for d in decoded] == [
        (1, "sighting"),
        (2, "sighting"),
        (2, "delete"),
        (5, "tags-many"),
    ]
    assert sorted(r.record.offset for r in rejected) == [3, 4, 6, 7]
    reasons = {r.record.offset: r.reason for r in rejected}
    assert reasons[3].startswith("events.1")
    assert "envelope" in reasons[6]
