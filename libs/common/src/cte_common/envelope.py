"""Compact records: many events in one record, in a versioned envelope, on the indicator topic and on
the share-intent topic.

A record of either topic holds one event (the JSON of one event of the topic's model: what every
producer wrote before envelopes, and what the ager and the netskope-sink still write on the indicator
topic) or an envelope::

    {"envelope": 2, "events": [<event>, <event>, ...]}

The version is in the value, not in a header: the dead-letter topic keeps a parked record's key and
value only, and ``cte-dlq replay`` publishes exactly those back, so a record parked by a consumer that
did not know envelopes is read whole once it is replayed to one that does.

Guarantees, for the producer (:func:`publish_in_envelopes`):
- every event of an envelope hashes, by its own key, to the partition the envelope is sent to (the
  producer's murmur2 partitioner), and envelopes keep the events' order, so one key's events stay in
  order on one partition, as when each was a record of its own; the record's key is its first event's,
  so a replay (keyed, no partition given) lands on the same partition. On the indicator topic an
  envelope holds the events of any values of one partition; on the share-intent topic, those of one
  list only (``one_key_per_record``), so its key names everything in it;
- the caller gets one acknowledgement per record, all of them or an exception (idempotent, acks=all).

For the consumers (:func:`decode_records`, with the topic's :class:`RecordDecoder`): each event of an
envelope comes out as a ``Decoded`` of the record it came in, in order, so a consumer applies the events
of a batch exactly as it applied single-event records, and the positions it records stay per record.
msgspec decodes what it can (stricter than the models, never laxer); the models decide the rest, and
give the reason when they refuse. An envelope that does not validate is rejected whole, with the
reason, and goes to the dead-letter topic as one record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, Literal, TypeVar

import msgspec
from aiokafka.structs import RecordMetadata
from faststream.kafka import KafkaBroker
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from cte_common.consumer import Decoded, Record, Rejected, park, short_reason
from cte_common.events import (
    INDICATOR_EVENT_ADAPTER,
    SHARE_INTENT_ADAPTER,
    AnyIndicatorRecord,
    IndicatorEvent,
    ShareIntent,
    ShareIntentRecord,
    SightingEvent,
)
from cte_common.kafka import Outgoing, group_indexes_by_partition, publish_all

__all__ = [
    "ENVELOPE_MAX_BYTES",
    "ENVELOPE_VERSION",
    "INDICATOR_RECORDS",
    "SHARE_INTENT_RECORDS",
    "Envelope",
    "IndicatorEnvelope",
    "RecordDecoder",
    "ShareIntentEnvelope",
    "decode_records",
    "decode_records_or_park",
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

M = TypeVar("M")  # an event as the models decode it
F = TypeVar("F")  # an event as msgspec decodes it


class Envelope(BaseModel, Generic[M]):
    """Many events of one topic in one record (the record's value)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    envelope: Literal[2]
    events: list[M] = Field(min_length=1)


class IndicatorEnvelope(Envelope[IndicatorEvent]):
    """Many indicator events in one record of the indicator topic (the record's value)."""


class ShareIntentEnvelope(Envelope[ShareIntent]):
    """Many share intents of one list in one record of the share-intent topic (the record's value)."""


class _FastEnvelope(msgspec.Struct, Generic[F], forbid_unknown_fields=True):
    """An envelope as msgspec decodes it: its events are ``F``s (stricter than the models, never laxer)."""

    envelope: Literal[2]
    events: Annotated[list[F], msgspec.Meta(min_length=1)]


@dataclass(frozen=True)
class RecordDecoder(Generic[M, F]):
    """How the records of one topic decode: a single event or an envelope, each by msgspec where it can
    (``fast_event``, ``fast_envelope``; None: always by the models) and otherwise by the models, which
    accept it or give the reason."""

    event: TypeAdapter[M]
    envelope: TypeAdapter[Envelope[M]]
    fast_event: msgspec.json.Decoder[F] | None
    fast_envelope: msgspec.json.Decoder[_FastEnvelope[F]] | None


# The indicator topic: msgspec decodes envelopes of sightings only (the common case, ``SightingEvent``);
# single events and envelopes of other kinds go to the models.
INDICATOR_RECORDS: RecordDecoder[AnyIndicatorRecord, SightingEvent] = RecordDecoder(
    event=INDICATOR_EVENT_ADAPTER,
    envelope=TypeAdapter(IndicatorEnvelope),
    fast_event=None,
    fast_envelope=msgspec.json.Decoder(_FastEnvelope[SightingEvent]),
)
# The share-intent topic: msgspec decodes single intents and envelopes alike (``ShareIntentRecord``).
SHARE_INTENT_RECORDS: RecordDecoder[ShareIntent, ShareIntentRecord] = RecordDecoder(
    event=SHARE_INTENT_ADAPTER,
    envelope=TypeAdapter(ShareIntentEnvelope),
    fast_event=msgspec.json.Decoder(ShareIntentRecord),
    fast_envelope=msgspec.json.Decoder(_FastEnvelope[ShareIntentRecord]),
)


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
    broker: KafkaBroker,
    topic: str,
    events: Sequence[tuple[str, bytes]],
    max_bytes: int = ENVELOPE_MAX_BYTES,
    *,
    one_key_per_record: bool = False,
) -> list[RecordMetadata]:
    """Publish (key, encoded event) pairs as envelopes, one or more per partition the keys hash to (with
    ``one_key_per_record``: per key), and return once Kafka acknowledged every record (one acknowledgement
    per record)."""
    if one_key_per_record:
        groups = await _groups_by_key(broker, topic, [key for key, _ in events])
    else:
        groups = await group_indexes_by_partition(broker, topic, [key for key, _ in events])
    outgoing: list[Outgoing] = []
    for partition, indexes in groups:
        encoded = [events[i][1] for i in indexes]
        for first, value in envelope_values(encoded, max_bytes):
            outgoing.append(Outgoing(key=events[indexes[first]][0].encode(), value=value, partition=partition))
    return await publish_all(broker, topic, outgoing)


async def _groups_by_key(broker: KafkaBroker, topic: str, keys: Sequence[str]) -> list[tuple[int | None, list[int]]]:
    """The positions of ``keys`` grouped by key (in order within a group), each with its partition: a
    batch holds few distinct keys, so each one's partition is computed once."""
    by_key: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    distinct = list(by_key)
    return [
        (partition, by_key[distinct[j]])
        for partition, group in await group_indexes_by_partition(broker, topic, distinct)
        for j in group
    ]


def decode_records(
    records: Sequence[Record], decoder: RecordDecoder[M, F], *, fast: bool = True
) -> tuple[list[Decoded[M | F]], list[Rejected]]:
    """Every event of the records, each with the record it came in, in order; the records that do not
    decode (a single event or a whole envelope) with the reason. With ``fast``, msgspec decodes what the
    topic's decoder lets it; what it refuses (or any record without ``fast``) goes to the models, which
    accept it or give the reason."""
    decoded: list[Decoded[M | F]] = []
    rejected: list[Rejected] = []
    for r in records:
        if r.value is None:
            rejected.append(Rejected(r, "empty value"))
        elif r.value.startswith(_ENVELOPE_START):
            if fast and decoder.fast_envelope is not None:
                try:
                    decoded.extend(Decoded(r, event) for event in decoder.fast_envelope.decode(r.value).events)
                    continue
                except msgspec.DecodeError:
                    pass  # input only the models take or can explain: they decide
            try:
                envelope = decoder.envelope.validate_json(r.value)
            except ValidationError as exc:
                rejected.append(Rejected(r, short_reason(exc)))
                continue
            decoded.extend(Decoded(r, event) for event in envelope.events)
        else:
            if fast and decoder.fast_event is not None:
                try:
                    decoded.append(Decoded(r, decoder.fast_event.decode(r.value)))
                    continue
                except msgspec.DecodeError:
                    pass
            try:
                decoded.append(Decoded(r, decoder.event.validate_json(r.value)))
            except ValidationError as exc:
                rejected.append(Rejected(r, short_reason(exc)))
    return decoded, rejected


async def decode_records_or_park(
    broker: KafkaBroker,
    dead_letter_topic: str,
    consumer: str,
    records: Sequence[Record],
    decoder: RecordDecoder[M, F],
) -> list[Decoded[M | F]]:
    """:func:`decode_records`, the records that do not decode parked on the dead-letter topic with the
    reason (in the caller's transaction, as ``cte_common.consumer.decode_or_park``)."""
    result = decode_records(records, decoder)
    await park(broker, dead_letter_topic, consumer, result[1])
    return result[0]
