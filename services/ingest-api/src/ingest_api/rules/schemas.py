"""Request and answer models of ``/api/cte/business_rules`` and ``/api/cte/reevaluations``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator, with_config
from typing_extensions import TypedDict

from ingest_api.shared import utc

DEFAULT_RULE = "All"  # seeded by the migration (filter {}); it cannot be deleted
MAX_FILTER_CHARS = 100_000


class FiltersIn(BaseModel):
    """A filter in the reference's readable query form or its Mongo-style JSON form (a JSON string, as
    the reference stores it, or an object)."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(default=None, max_length=MAX_FILTER_CHARS)
    mongo: str | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> FiltersIn:
        if (self.query is None) == (self.mongo is None):
            raise ValueError("filters: give exactly one of query and mongo")
        return self


class ExceptionIn(BaseModel):
    """An exception of a rule: indicators it matches (by query, or by any of the tags) are not shared."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    filters: FiltersIn | None = None
    tags: list[str] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_kind(self) -> ExceptionIn:
        if (self.filters is None) == (self.tags is None):
            raise ValueError(f"exception '{self.name}': give exactly one of filters and tags")
        return self


def _unique_exception_names(exceptions: list[ExceptionIn] | None) -> None:
    names = [e.name for e in exceptions or ()]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ValueError(f"exceptions: two exceptions are named '{duplicate}'")


def _rule_name(name: str) -> str:
    if "/" in name:
        raise ValueError("must not contain '/' (the name is part of the rule's URL)")
    return name


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    filters: FiltersIn
    exceptions: list[ExceptionIn] = Field(default_factory=list, max_length=100)
    muted: bool = False
    unmuteAt: datetime | None = None

    _name = field_validator("name")(_rule_name)

    @field_validator("unmuteAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return utc(value)

    @model_validator(mode="after")
    def _check(self) -> RuleIn:
        if self.muted:
            raise ValueError("muted: a rule cannot be created muted; create it, then mute it with PATCH")
        _unique_exception_names(self.exceptions)
        return self


class RulePatch(BaseModel):
    """What PATCH /business_rules/{name} may change; a given field replaces the stored one whole."""

    model_config = ConfigDict(extra="forbid")

    filters: FiltersIn | None = None
    exceptions: list[ExceptionIn] | None = Field(default=None, max_length=100)
    muted: bool | None = None
    unmuteAt: datetime | None = None

    @field_validator("unmuteAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return utc(value)

    @model_validator(mode="after")
    def _check(self) -> RulePatch:
        _unique_exception_names(self.exceptions)
        return self


class RuleName(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)

    _name = field_validator("name")(_rule_name)


class NamedRulePatch(RulePatch):
    """The body of the reference's ``PATCH /api/cte/business_rule``: the rule's name and what changes."""

    name: str = Field(min_length=1, max_length=200)


# Answers (TypedDicts: see ingest_api.shared)


@with_config(ConfigDict(extra="forbid"))
class Filters(TypedDict):
    """A stored filter in both forms: the readable query (as written, or rendered from the JSON) and the
    canonical Mongo-style JSON, as a JSON string like the reference's."""

    query: str
    mongo: str


@with_config(ConfigDict(extra="forbid"))
class FilterException(TypedDict):
    name: str
    filters: Filters


@with_config(ConfigDict(extra="forbid"))
class TagsException(TypedDict):
    name: str
    tags: list[str]


@with_config(ConfigDict(extra="forbid"))
class Rule(TypedDict):
    """A business rule as the API shows it; ``unmuteAt`` only while it is muted."""

    name: str
    filters: Filters
    exceptions: list[FilterException | TagsException]
    muted: bool
    unmuteAt: datetime | None
    createdAt: datetime
    updatedAt: datetime


@with_config(ConfigDict(extra="forbid"))
class RuleTest(TypedDict):
    """The reference's rule test answer: indicators, and bytes against a list's cap, per target type."""

    hash_count: int
    hash_size: int
    url_count: int
    url_size: int


@with_config(ConfigDict(extra="forbid"))
class Reevaluation(TypedDict):
    """The rule-engine's progress through the stored indicators after a change."""

    id: int
    reason: str
    requestedAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None
    processed: int
    total: int | None
