"""Event models carried on the topics. Every event is JSON, versioned by its topic name; on the
indicator and share-intent topics a record holds one event or an envelope of many
(:mod:`cte_common.envelope`).

Indicator events are keyed by the indicator's canonical value, so one indicator's history is
applied in order by exactly one consumer. Share intents are keyed by destination list.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, SafeUUID, uuid4

import msgspec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from cte_common.indicators import IndicatorType, Severity

__all__ = [
    "CATALOG_RESOURCES",
    "CONFIG_CHANGE_ADAPTER",
    "INDICATOR_EVENT_ADAPTER",
    "SHARE_INTENT_ADAPTER",
    "AnyIndicatorEvent",
    "AnyIndicatorRecord",
    "AnyShareIntent",
    "ConfigChange",
    "Criterion",
    "Event",
    "IndicatorDelete",
    "IndicatorEvent",
    "IndicatorExpire",
    "IndicatorRetraction",
    "IndicatorSighting",
    "IndicatorTagEdit",
    "IndicatorTagEditMany",
    "ShareIntent",
    "ShareIntentRecord",
    "SightingEvent",
    "SightingRecord",
    "TagsStrategy",
    "encode",
    "encode_share_intent",
    "encode_sighting",
    "event_id_stream",
    "random_event_ids",
]

Criterion = Literal["lastSeen", "firstSeen", "highestSeverity"]
TagsStrategy = Literal["append", "overwrite"]


def utcnow() -> datetime:
    return datetime.now(UTC)


# uuid4's version (4) and variant (RFC 4122) bits, set on 128 random bits.
_V4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_V4_SET = (0x8000 << 48) | (4 << 76)
_new_uuid = object.__new__
# UUID's own slots, set as UUID.__init__ sets them (the type refuses attribute assignment).
_set_int = UUID.__dict__["int"].__set__
_set_is_safe = UUID.__dict__["is_safe"].__set__
_UNKNOWN = SafeUUID.unknown
_halves = struct.Struct(">QQ").iter_unpack


def random_event_ids(n: int) -> list[UUID]:
    """``n`` random event ids, each what ``uuid4()`` returns (version 4, 122 bits from ``os.urandom``),
    made for a batch: one read of the system's random source for all of them, and each UUID built
    without ``UUID.__init__``'s argument checks (a valid version-4 value by construction): about five
    times cheaper per id than ``uuid4()``."""
    out: list[UUID] = []
    append = out.append
    for high, low in _halves(os.urandom(16 * n)):
        uuid = _new_uuid(UUID)
        _set_int(uuid, (((high << 64) | low) & _V4_CLEAR) | _V4_SET)
        _set_is_safe(uuid, _UNKNOWN)
        append(uuid)
    return out


def event_id_stream(chunk: int = 256) -> Iterator[UUID]:
    """Random event ids for a batch whose size is not known up front: random_event_ids, ``chunk`` at a
    time (a chunk drawn and not used costs one read of the random source, nothing else)."""
    while True:
        yield from random_event_ids(chunk)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)


class IndicatorSighting(Event):
    """A source reported an indicator (a POST, a poll). Merged into the read model by the rule-engine.

    Everything that depends on configuration (reputation override, aging, the merge criterion, the
    tags strategy) is resolved at ingest and carried here, so replaying the topic rebuilds the same
    read model whatever the configuration says today.
    """

    kind: Literal["sighting"] = "sighting"
    value: str
    type: IndicatorType
    source: str
    reputation: int | None = Field(default=None, ge=1, le=10)
    severity: Severity = Severity.UNKNOWN
    tags: list[str] = Field(default_factory=list)
    comments: str = ""
    extended_information: str = ""
    first_seen: datetime
    last_seen: datetime
    # None means the indicator never expires.
    expires_at: datetime | None = None
    internal: bool = False
    test: bool = False
    criterion: Criterion = "lastSeen"
    tags_strategy: TagsStrategy = "append"
    # Sightings posted through the API are explicit edits: their comments and tags always apply.
    from_api: bool = False
    # The reference's input fields: a source may report an indicator as safe (not malicious), or as
    # inactive. Merged as the reference merges ``active``: true if the stored or the new one is.
    safe: bool = False
    active: bool = True


class SightingRecord(msgspec.Struct, kw_only=True):
    """An :class:`IndicatorSighting` as plain data, for the ingest-api's hot path: built without
    validation (its producer has validated every field) and encoded to the same JSON, which consumers
    decode as an ``IndicatorSighting``. Its fields are the model's, in the same order (a unit test
    compares them)."""

    event_id: UUID
    occurred_at: datetime
    kind: str = "sighting"
    value: str
    type: IndicatorType
    source: str
    reputation: int | None
    severity: Severity
    tags: list[str]
    comments: str
    extended_information: str
    first_seen: datetime
    last_seen: datetime
    expires_at: datetime | None
    internal: bool
    test: bool
    criterion: str
    tags_strategy: str
    from_api: bool
    safe: bool = False
    active: bool = True


_RECORD_ENCODER = msgspec.json.Encoder()


class SightingEvent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An :class:`IndicatorSighting` as the rule-engine decodes it from an envelope: the model's fields,
    defaults and constraints, checked by msgspec (several times faster than the model's validation, once
    per event). Stricter than the model, never laxer: ``kind`` must be given (as the model's discriminated
    union requires), and what the model would coerce (a number for a string, a timestamp as a number) is
    refused here, so a consumer falls back to the model for such input (``cte_common.envelope``)."""

    event_id: UUID = msgspec.field(default_factory=uuid4)
    occurred_at: datetime = msgspec.field(default_factory=utcnow)
    kind: Literal["sighting"]
    value: str
    type: IndicatorType
    source: str
    reputation: Annotated[int, msgspec.Meta(ge=1, le=10)] | None = None
    severity: Severity = Severity.UNKNOWN
    tags: list[str] = msgspec.field(default_factory=list)
    comments: str = ""
    extended_information: str = ""
    first_seen: datetime
    last_seen: datetime
    expires_at: datetime | None = None
    internal: bool = False
    test: bool = False
    criterion: Criterion = "lastSeen"
    tags_strategy: TagsStrategy = "append"
    from_api: bool = False
    safe: bool = False
    active: bool = True


def encode_sighting(record: SightingRecord) -> bytes:
    return _RECORD_ENCODER.encode(record)


class IndicatorExpire(Event):
    """The ager found the indicator due. Applied only if it is still due: a re-sighting may have moved it."""

    kind: Literal["expire"] = "expire"
    value: str
    due_at: datetime


class IndicatorRetraction(Event):
    """A source withdrew (or re-asserted) its report of the indicator."""

    kind: Literal["retraction"] = "retraction"
    value: str
    source: str
    retracted: bool


class IndicatorTagEdit(Event):
    """Tags added to and removed from the indicator: on one source's entry, or on all when source is None."""

    kind: Literal["tags"] = "tags"
    value: str
    source: str | None = None
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)


class IndicatorDelete(Event):
    """Delete the indicator, or only one source's entry (the indicator goes when no source is left)."""

    kind: Literal["delete"] = "delete"
    value: str
    source: str | None = None


class IndicatorTagEditMany(Event):
    """One tag edit on every source entry of many indicators. The netskope-sink published it for its
    Unshared and Invalid host tags; it publishes none now (they are derived when indicators are read),
    but records of it may still sit in the indicator topic, so the rule-engine still applies them.

    A list at its cap can leave hundreds of thousands of values out; one event per value made the push
    wait on as many sends. Every value of ``values`` hashes to the partition of the record's key (the
    first value), so each indicator's events stay in order on one partition. The rule-engine applies
    it as an ``IndicatorTagEdit`` (source None) of each value, in order.
    """

    kind: Literal["tags-many"] = "tags-many"
    values: list[str] = Field(min_length=1)
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)

    def each(self, start: int = 0, stop: int | None = None) -> list[IndicatorTagEdit]:
        """The edit of each value (of values[start:stop]), as the rule-engine applies it."""
        return [
            IndicatorTagEdit.model_construct(
                event_id=self.event_id,
                occurred_at=self.occurred_at,
                value=v,
                source=None,
                add=self.add,
                remove=self.remove,
            )
            for v in self.values[start:stop]
        ]


# The events about one indicator: everything that is applied carries a ``value``.
AnyIndicatorEvent = IndicatorSighting | IndicatorExpire | IndicatorRetraction | IndicatorTagEdit | IndicatorDelete
# What a record of the indicator topic holds: one of those, or a tag edit of many indicators.
AnyIndicatorRecord = AnyIndicatorEvent | IndicatorTagEditMany
IndicatorEvent = Annotated[AnyIndicatorRecord, Field(discriminator="kind")]
INDICATOR_EVENT_ADAPTER: TypeAdapter[AnyIndicatorRecord] = TypeAdapter(IndicatorEvent)


class ShareIntent(Event):
    """The rule-engine's decision that ``value`` belongs (add) or no longer belongs (remove) in a list."""

    kind: Literal["share"] = "share"
    list_key: str
    value: str
    type: IndicatorType
    add: bool
    # Orders candidates when the list is full: larger keeps its place first.
    priority: float = 0.0
    cost_bytes: int = Field(default=0, ge=0)


SHARE_INTENT_ADAPTER: TypeAdapter[ShareIntent] = TypeAdapter(ShareIntent)


class ShareIntentRecord(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A :class:`ShareIntent` as plain data, both ways. The rule-engine builds it without validation (its
    fields come from a decision; msgspec checks nothing on construction) and encodes it to the JSON the
    sink decodes as a ``ShareIntent``; the sink decodes it with msgspec (``cte_common.envelope``), which
    checks the model's constraints here, stricter than the model, never laxer: what the model would
    coerce (a string for a number or a boolean, a timestamp as a number) is refused, and the model
    decides. Its fields are the model's, in the same order (a unit test compares them)."""

    event_id: UUID = msgspec.field(default_factory=uuid4)
    occurred_at: datetime = msgspec.field(default_factory=utcnow)
    kind: Literal["share"] = "share"
    list_key: str
    value: str
    type: IndicatorType
    add: bool
    priority: float = 0.0
    cost_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0


# A share intent as the sink reads it: decoded by msgspec, or by the model (cte_common.envelope).
AnyShareIntent = ShareIntent | ShareIntentRecord


def encode_share_intent(intent: ShareIntentRecord) -> bytes:
    return _RECORD_ENCODER.encode(intent)


class ConfigChange(Event):
    """A configuration resource changed. ``body`` None is a deletion (a tombstone on the compacted topic)."""

    kind: Literal["config"] = "config"
    resource: str
    key: str
    body: dict[str, Any] | None


CONFIG_CHANGE_ADAPTER: TypeAdapter[ConfigChange] = TypeAdapter(ConfigChange)

# Configuration resources whose change can change what a sharing selects: the rule-engine re-evaluates
# every indicator after one, and the API changes them under the catalog lock
# (cte_common.catalog_lock_repository).
CATALOG_RESOURCES = frozenset({"business_rule", "business_rules", "rule", "sharing", "allow_list", "configuration"})


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()
