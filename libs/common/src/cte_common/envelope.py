"""Compact records on the indicator topic: many events in one record, in a versioned envelope.

A record of the indicator topic holds either one event (the JSON of one ``IndicatorEvent``: what every
producer wrote before envelopes, and what the ager and the netskope-sink still write) or an envelope::

    {"envelope": 2, "events": [<event>, <event>, ...]}

The version is in the value, not in a header: the dead-letter topic keeps a parked record's key and
value only, and ``cte-dlq replay`` publishes exactly those back, so a record parked by a consumer that
did not know envelopes is read whole once it is replayed to one that does.

Guarantees, for the producer (:func:`publish_in_envelopes`):
- every event of an envelope hashes to the partition the envelope is sent to (the producer's murmur2
  partitioner on each event's value), and envelopes keep the events' order, so one indicator's events
  stay in order on one partition, as when each was a record of its own; the record's key is its first
  event's value, so a replay (keyed, no partition given) lands on the same partition;
- the caller gets one acknowledgement per record, all of them or an exception (idempotent, acks=all).

For the consumers (:func:`decode_indicator_records`): each event of an envelope comes out as a
``Decoded`` of the record it came in, in order, so a consumer applies the events of a batch exactly as it
applied single-event records, and the positions it records stay per record. An envelope that does not
validate is rejected whole, with the reason, and goes to the dead-letter topic as one record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Literal

import msgspec
from aiokafka.structs import RecordMetadata
from faststream.kafka import KafkaBroker
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from cte_common.consumer import Decoded, Record, Rejected, decode_batch, park, short_reason
from cte_common.events import INDICATOR_EVENT_ADAPTER, AnyIndicatorRecord, IndicatorEvent, SightingEvent
from cte_common.kafka import Outgoing, group_indexes_by_partition, publish_all

__all__ = [
    "ENVELOPE_MAX_BYTES",
    "ENVELOPE_VERSION",
    "IndicatorEnvelope",
    "decode_indicator_records",
    "decode_indicator_records_or_park",
    "envelope_values",
    "publish_in_envelopes",
]

log = logging.getLogger(__name__)

ENVELOPE_VERSION = 2
# An envelope closes before it passes this size (an event larger than it goes alone): well under the
# producer's batch size and the broker's message.max.bytes, so one request's events never make a record
# the broker refuses.
ENVELOPE_MAX_BYTES = 256 * 1024

_HEAD = b'{"envelope":2,"events":['
_TAIL = b"]}"
# What tells an envelope from a single event without parsing: the JSON an envelope starts with. A single
# event starts with its first field ("event_id" for every producer's events).
_ENVELOPE_START = b'{"envelope"'


class _SightingsEnvelope(msgspec.Struct, forbid_unknown_fields=True):
    """An envelope of sightings only, the common case, decoded by msgspec (see ``SightingEvent``)."""

    envelope: Literal[2]
    events: Annotated[list[SightingEvent], msgspec.Meta(min_length=1)]


_SIGHTINGS_DECODER = msgspec.json.Decoder(_SightingsEnvelope)


class IndicatorEnvelope(BaseModel):
    """Many indicator events in one record of the indicator topic (the record's value)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    envelope: Literal[2]
    events: list[IndicatorEvent] = Field(min_length=1)


_ENVELOPE_ADAPTER: TypeAdapter[IndicatorEnvelope] = TypeAdapter(IndicatorEnvelope)


def envelope_values(events: Sequence[bytes], max_bytes: int = ENVELOPE_MAX_BYTES) -> list[tuple[int, bytes]]:
    """Encoded events (each the JSON of one event) as envelopes of at most ``max_bytes`` each, in order:
    (the position of each envelope's first event, the envelope's bytes)."""
    out: list[tuple[int, bytes]] = []
    start, size = 0, len(_HEAD) + len(_TAIL)
    for i, event in enumerate(events):
        if i > start and size + len(event) + 1 > max_bytes:
            out.append((start, _HEAD + b",".join(events[start:i]) + _TAIL))
            start, size = i, len(_HEAD) + len(_TAIL)
        size += len(event) + 1
    if start < len(events):
        out.append((start, _HEAD + b",".join(events[start:]) + _TAIL))
    return out


async def publish_in_envelopes(
    broker: KafkaBroker, topic: str, events: Sequence[tuple[str, bytes]], max_bytes: int = ENVELOPE_MAX_BYTES
) -> list[RecordMetadata]:
    """Publish (value, encoded event) pairs as envelopes, one or more per partition the values hash to,
    and return once Kafka acknowledged every record (one acknowledgement per record)."""
    keys = [value for value, _ in events]
    outgoing: list[Outgoing] = []
    for partition, indexes in await group_indexes_by_partition(broker, topic, keys):
        encoded = [events[i][1] for i in indexes]
        for first, value in envelope_values(encoded, max_bytes):
            outgoing.append(Outgoing(key=keys[indexes[first]].encode(), value=value, partition=partition))
    return await publish_all(broker, topic, outgoing)


def decode_indicator_records(
    records: Sequence[Record], *, fast: bool = True
) -> tuple[list[Decoded[AnyIndicatorRecord | SightingEvent]], list[Rejected]]:
    """Every event of the records, each with the record it came in, in order; the records that do not
    decode (a single event or a whole envelope) with the reason. With ``fast``, an envelope of sightings
    only is decoded by msgspec (``SightingEvent``s); any other envelope, or one msgspec refuses, by the
    models, which accept it or give the reason."""
    decoded: list[Decoded[AnyIndicatorRecord | SightingEvent]] = []
    rejected: list[Rejected] = []
    singles: list[Record] = []
    for r in records:
        if r.value is None or not r.value.startswith(_ENVELOPE_START):
            singles.append(r)
            continue
        if singles:
            _single(singles, decoded, rejected)
            singles = []
        if fast:
            try:
                sightings = _SIGHTINGS_DECODER.decode(r.value)
            except msgspec.DecodeError:
                pass  # other kinds of events, or input only the models take or can explain: they decide
            else:
                decoded.extend(Decoded(r, event) for event in sightings.events)
                continue
        try:
            envelope = _ENVELOPE_ADAPTER.validate_json(r.value)
        except ValidationError as exc:
            rejected.append(Rejected(r, short_reason(exc)))
            continue
        decoded.extend(Decoded(r, event) for event in envelope.events)
    if singles:
        _single(singles, decoded, rejected)
    return decoded, rejected


def _single(
    records: list[Record], decoded: list[Decoded[AnyIndicatorRecord | SightingEvent]], rejected: list[Rejected]
) -> None:
    ok, bad = decode_batch(records, INDICATOR_EVENT_ADAPTER)
    decoded.extend(Decoded(d.record, d.event) for d in ok)
    rejected.extend(bad)


async def decode_indicator_records_or_park(
    broker: KafkaBroker, dead_letter_topic: str, consumer: str, records: Sequence[Record]
) -> list[Decoded[AnyIndicatorRecord | SightingEvent]]:
    """:func:`decode_indicator_records`, the records that do not decode parked on the dead-letter topic
    with the reason (in the caller's transaction, as ``cte_common.consumer.decode_or_park``)."""
    decoded, rejected = decode_indicator_records(records)
    await park(broker, dead_letter_topic, consumer, rejected)
    return decoded
