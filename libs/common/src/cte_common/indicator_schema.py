"""The indicator's API shape, written once.

- ``IndicatorOut`` and ``SourceOut``: the reference's IndicatorOutWithSources and its source entries, as
  the API answers them (camelCase, fields in the order the API has always written them).
- ``IndicatorView`` and ``SourceView``: the fields a filter reads, as a plain dict. The rule-engine builds
  one per indicator of every batch, so it stays a dict (no model per indicator).
- ``UNSHARED_TAG``, ``INVALID_HOST_TAG``, ``LIST_STATUS_TAGS``: the tags an indicator carries while a
  list leaves it out or its tenant refused it. They are not stored: the API derives them, with
  ``sharedWith`` and each source's ``destinations``, from the netskope-sink's list state (the view
  ``list_value_status``) when it reads indicators.
- ``FILTER_FIELDS``: the fields a filter may name, each with its kind, its column and whether it is
  nullable or per source. The filter language builds its field lists from it; ``FILTER_FIELD_PATHS``
  finds a field by its path from the indicator (``sources.lastSeen``). Each entry's name is checked
  against the models when the module loads, and its nullability is read from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final, Literal, TypedDict, get_args

from pydantic import BaseModel

from cte_common.indicators import IndicatorType, Severity

__all__ = [
    "FILTER_FIELDS",
    "FILTER_FIELD_PATHS",
    "INVALID_HOST_TAG",
    "LIST_STATUS_TAGS",
    "UNSHARED_TAG",
    "DestinationOut",
    "FieldKind",
    "FilterField",
    "IndicatorOut",
    "IndicatorView",
    "RetractionDestinationOut",
    "SourceOut",
    "SourceView",
]

# The reference plugin's tags for a value a list left out (the cap) and for one its list cannot hold
# (the tenant refused it, or the pre-check did); each with the list statuses (list_value_status) giving it.
UNSHARED_TAG: Final = "Unshared"
INVALID_HOST_TAG: Final = "Invalid host"
LIST_STATUS_TAGS: Final[Mapping[str, tuple[str, ...]]] = {
    UNSHARED_TAG: ("left_out",),
    # Refused by the tenant, or by the sink's pre-check of the list's grammar before any push ('unfit').
    INVALID_HOST_TAG: ("rejected", "unfit"),
}


# --- the answer -------------------------------------------------------------------------------------


class DestinationOut(BaseModel):
    """A destination's sharing state on a source entry, in the reference's shape, derived from the
    netskope-sink's list state: pending (changed since the list's last push), shared (in the list),
    failed (left out by the cap, a type the list cannot hold, or refused by the tenant)."""

    name: str
    status: Literal["pending", "inprogress", "shared", "failed"]


class RetractionDestinationOut(BaseModel):
    """A destination's retraction state on a source entry, in the reference's shape (always empty here)."""

    name: str
    status: Literal["pending", "inprogress", "retracted", "failed", "N/A"]


class SourceOut(BaseModel):
    """One source's entry of an indicator: what that configuration reported."""

    source: str
    internalHits: int
    externalHits: int
    firstSeen: datetime
    lastSeen: datetime
    reputation: int | None
    severity: Severity
    comments: str
    extendedInformation: str
    tags: list[str]
    destinations: list[DestinationOut]
    retracted: bool
    retractionDestinations: list[RetractionDestinationOut]


class IndicatorOut(BaseModel):
    """An indicator as the API answers it. ``source``, the seen-times, ``reputation``, ``severity`` and
    ``comments`` are the first sighting's; ``tags`` are every source's, in order of appearance."""

    value: str
    type: IndicatorType
    test: bool
    safe: bool
    active: bool
    internalHits: int
    externalHits: int
    expiresAt: datetime | None
    source: str
    sharedWith: list[str]
    tags: list[str]
    firstSeen: datetime
    lastSeen: datetime
    reputation: int | None
    severity: Severity
    comments: str
    extendedInformation: str
    sources: list[SourceOut]


# --- what a filter reads ----------------------------------------------------------------------------


class SourceView(TypedDict):
    """A source entry's filterable fields (``type`` and ``severity`` as their plain text)."""

    source: str
    reputation: int | None
    internalHits: int
    externalHits: int
    firstSeen: datetime
    lastSeen: datetime
    severity: str
    comments: str
    extendedInformation: str
    tags: list[str]
    retracted: bool


class IndicatorView(TypedDict):
    """An indicator's filterable fields and its source entries, as the filter evaluator reads them."""

    value: str
    type: str
    test: bool
    safe: bool
    active: bool
    expiresAt: datetime | None
    internalHits: int
    externalHits: int
    sharedWith: list[str]
    sources: list[SourceView]


class FieldKind(Enum):
    """What a filter can do with a field (its operators and operands); the value names it in messages."""

    TEXT = "a text field"
    NUMBER = "a number field"
    BOOL = "a true/false field"
    DATE = "a date field"
    ARRAY = "a list field"
    SEVERITY = "a severity field"
    TYPE = "an indicator type field"


@dataclass(frozen=True, slots=True)
class FilterField:
    """A field a filter may name: its API name, kind, column (in ``indicators``, or in
    ``indicator_sources`` when per source), and whether it can be null."""

    name: str
    kind: FieldKind
    column: str  # the only place a SQL identifier comes from
    nullable: bool
    per_source: bool

    @property
    def path(self) -> str:
        """The name from the indicator's level: ``sources.<name>`` for a per-source field."""
        return f"sources.{self.name}" if self.per_source else self.name


def _field(model: type[BaseModel], name: str, kind: FieldKind, column: str) -> FilterField:
    annotation = model.model_fields[name].annotation  # a KeyError here: the catalog names a field the answer lacks
    nullable = type(None) in get_args(annotation)
    return FilterField(name, kind, column, nullable, per_source=model is SourceOut)


# In the order the filter language lists them in its messages.
FILTER_FIELDS: Final[tuple[FilterField, ...]] = (
    _field(IndicatorOut, "value", FieldKind.TEXT, "value"),
    _field(IndicatorOut, "type", FieldKind.TYPE, "type"),
    _field(IndicatorOut, "test", FieldKind.BOOL, "test"),
    _field(IndicatorOut, "safe", FieldKind.BOOL, "safe"),
    _field(IndicatorOut, "active", FieldKind.BOOL, "active"),
    _field(IndicatorOut, "expiresAt", FieldKind.DATE, "expires_at"),
    _field(IndicatorOut, "internalHits", FieldKind.NUMBER, "internal_hits"),
    _field(IndicatorOut, "externalHits", FieldKind.NUMBER, "external_hits"),
    _field(IndicatorOut, "sharedWith", FieldKind.ARRAY, "shared_with"),
    _field(SourceOut, "source", FieldKind.TEXT, "source"),
    _field(SourceOut, "reputation", FieldKind.NUMBER, "reputation"),
    _field(SourceOut, "internalHits", FieldKind.NUMBER, "internal_hits"),
    _field(SourceOut, "externalHits", FieldKind.NUMBER, "external_hits"),
    _field(SourceOut, "firstSeen", FieldKind.DATE, "first_seen"),
    _field(SourceOut, "lastSeen", FieldKind.DATE, "last_seen"),
    _field(SourceOut, "severity", FieldKind.SEVERITY, "severity"),
    _field(SourceOut, "comments", FieldKind.TEXT, "comments"),
    _field(SourceOut, "extendedInformation", FieldKind.TEXT, "extended_information"),
    _field(SourceOut, "tags", FieldKind.ARRAY, "tags"),
    _field(SourceOut, "retracted", FieldKind.BOOL, "retracted"),
)

# Every filter field by its path from the indicator's level (``expiresAt``, ``sources.reputation``).
FILTER_FIELD_PATHS: Final[Mapping[str, FilterField]] = {f.path: f for f in FILTER_FIELDS}
