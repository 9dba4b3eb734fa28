"""Request bodies and answers of ``/api/cte/indicators``, in the reference's field names (camelCase, as
attribute names). The indicator itself is :class:`cte_common.indicator_schema.IndicatorOut`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cte_common.canonical import InvalidIndicator, canonicalize
from cte_common.indicators import IndicatorType, Severity
from ingest_api.shared import utc

# The limits of an item's fields, which both paths check (see LeanIndicatorIn).
VALUE_MAX = 8192
SOURCE_MAX = 200
TAGS_MAX = 100
TAG_NAME_MAX = 500
COMMENTS_MAX = 10_000
EXTENDED_INFORMATION_MAX = 2048
REPUTATION_MIN, REPUTATION_MAX = 1, 10


class IndicatorIn(BaseModel):
    """One indicator of a POST body, in the reference's field names. Keys the reference's input model
    does not know are ignored, as the reference ignores them (an indicator read by GET can be sent back);
    the handlers count them (``cte_ingest_ignored_fields_total``)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    # type is declared before value so the value's validator can canonicalise for it.
    type: IndicatorType
    value: str = Field(min_length=1, max_length=VALUE_MAX)
    source: str = Field(min_length=1, max_length=SOURCE_MAX)
    reputation: int = Field(default=5, ge=REPUTATION_MIN, le=REPUTATION_MAX)
    severity: Severity = Severity.UNKNOWN
    tags: list[str] = Field(default_factory=list, max_length=TAGS_MAX)
    comments: str = Field(default="", max_length=COMMENTS_MAX)
    extendedInformation: str = Field(default="", max_length=EXTENDED_INFORMATION_MAX)
    firstSeen: datetime | None = None
    lastSeen: datetime | None = None
    expiresAt: datetime | None = None
    test: bool = False
    # The reference's: not malicious (a DLP plugin's hashes, say), and inactive from the start.
    safe: bool = False
    active: bool = True

    @field_validator("value")
    @classmethod
    def _canonical_value(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        if kind is None:
            return value  # the type's own error is reported; no second guess here
        try:
            return canonicalize(kind, value)
        except InvalidIndicator as exc:
            raise ValueError(exc.reason) from None

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, tags: list[str]) -> list[str]:
        names = [t.strip() for t in tags]
        for name in names:
            if not 1 <= len(name) <= TAG_NAME_MAX:
                raise ValueError(f"each tag name must be 1 to {TAG_NAME_MAX} characters")
        return list(dict.fromkeys(names))

    @field_validator("extendedInformation")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not is_http_url(value):
            raise ValueError("must be an http or https URL with a host")
        return value

    @field_validator("firstSeen", "lastSeen", "expiresAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return utc(value)

    @model_validator(mode="after")
    def _seen_order(self) -> IndicatorIn:
        if self.firstSeen and self.lastSeen and self.firstSeen > self.lastSeen:
            raise ValueError("firstSeen must not be after lastSeen")
        return self


# The lean path's structs hold no references to themselves: untracked by the garbage collector
# (``gc=False``), a batch's thousands of them trigger no collections.
class LeanIndicatorIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """An item of a POST body as the lean path reads it: :class:`IndicatorIn`'s fields and defaults with
    JSON's own types only (times as text). The checks ``IndicatorIn`` makes are made by
    ``domain.lean_item``; an item this does not read, or that those checks are not sure of, is
    validated by ``IndicatorIn`` itself, so both give the same answers."""

    type: str
    value: str
    source: str
    reputation: int = 5
    severity: str = "unknown"
    tags: list[str] = []
    comments: str = ""
    extendedInformation: str = ""
    firstSeen: str | None = None
    lastSeen: str | None = None
    expiresAt: str | None = None
    test: bool = False
    safe: bool = False
    active: bool = True


class ValidIndicator(msgspec.Struct, gc=False):
    """An item of a POST body once valid, whichever path validated it: what its sighting is made of."""

    type: IndicatorType
    value: str
    source: str
    reputation: int
    severity: Severity
    tags: list[str]
    comments: str
    extendedInformation: str
    firstSeen: datetime | None
    lastSeen: datetime | None
    expiresAt: datetime | None
    test: bool
    safe: bool = False
    active: bool = True


class AcceptedSource(msgspec.Struct, gc=False):
    """A source entry of :class:`AcceptedIndicator`: IndicatorOut's source fields, in its order."""

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
    destinations: tuple[()] = ()
    retracted: bool = False
    retractionDestinations: tuple[()] = ()


class AcceptedIndicator(msgspec.Struct, gc=False):
    """The answer of a POST without ``wait`` for one accepted item, as msgspec encodes it: the JSON of
    :class:`cte_common.indicator_schema.IndicatorOut` (its fields in its order; a unit test compares
    the bytes with the model's), built from the sighting without the model."""

    value: str
    type: IndicatorType
    test: bool
    safe: bool
    active: bool
    internalHits: int
    externalHits: int
    expiresAt: datetime | None
    source: str
    sharedWith: tuple[()]
    tags: list[str]
    firstSeen: datetime
    lastSeen: datetime
    reputation: int | None
    severity: Severity
    comments: str
    extendedInformation: str
    sources: tuple[AcceptedSource]


def is_http_url(value: str) -> bool:
    """Whether ``value`` is an http or https URL with a host (``extendedInformation``); raises ValueError
    for text ``urlsplit`` cannot read."""
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# Single-indicator updates and bulk edits


class RetractionIn(BaseModel):
    """The retraction body of PATCH /api/cte/indicators/."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    value: str = Field(min_length=1, max_length=8192)
    source: str = Field(min_length=1, max_length=200)
    retracted: bool


def _patch_kind(body: Any) -> str:
    """A PATCH body is a retraction when it says ``retracted`` and names no type; else an indicator
    (whose ignored keys may include ``retracted``, as in an indicator read by GET and sent back)."""
    if isinstance(body, dict):
        return "retraction" if "retracted" in body and "type" not in body else "indicator"
    return "retraction" if isinstance(body, RetractionIn) else "indicator"


PatchIn = Annotated[
    Annotated[IndicatorIn, Tag("indicator")] | Annotated[RetractionIn, Tag("retraction")],
    Discriminator(_patch_kind),
]


class QueryLocator(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | dict[str, Any]


class ValuesLocator(BaseModel):
    model_config = ConfigDict(extra="forbid")

    values: list[str] = Field(min_length=1, max_length=100_000)
    source: str | None = None


class TagChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: list[str] = Field(default_factory=list, max_length=100)
    remove: list[str] = Field(default_factory=list, max_length=100)


class BulkEditIn(BaseModel):
    """PATCH /api/cte/indicators/bulk: a locator and the tags to add and remove."""

    model_config = ConfigDict(extra="forbid")

    locator: QueryLocator | ValuesLocator
    tags: TagChanges = Field(default_factory=TagChanges)


class BulkDeleteIn(BaseModel):
    """DELETE /api/cte/indicators/bulk: by query or by values, as in the reference."""

    model_config = ConfigDict(extra="forbid")

    query: str | dict[str, Any] | None = None
    values: list[str] | None = Field(default=None, min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _one_locator(self) -> BulkDeleteIn:
        if (self.query is None) == (self.values is None):
            raise ValueError("give exactly one of query and values")
        return self


# Answers (besides the indicator itself)


class IndicatorCountOut(BaseModel):
    """GET /api/cte/indicators/?aggregate=true: how many indicators the filter matches."""

    count: int


class BulkEditOut(BaseModel):
    """PATCH /api/cte/indicators/bulk: how many indicators the locator found (each was sent the edit)."""

    updated: int


class BulkDeleteOut(BaseModel):
    """DELETE /api/cte/indicators/bulk: how many indicators the locator found (each was sent the delete)."""

    deleted: int
