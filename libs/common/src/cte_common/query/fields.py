"""The fields a filter may name, their kinds and operators, and operand checking (shared by both parsers).

Package-internal: the parsers, the operator table and the evaluators import these names; none is
part of ``cte_common.query``'s public surface."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Final

from cte_common.indicators import IndicatorType, Severity
from cte_common.query.ast import Op, Value

__all__: list[str] = []


class _Kind(Enum):
    TEXT = "a text field"
    NUMBER = "a number field"
    BOOL = "a true/false field"
    DATE = "a date field"
    ARRAY = "a list field"
    SEVERITY = "a severity field"
    TYPE = "an indicator type field"


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: _Kind
    column: str  # the only place a SQL identifier comes from
    nullable: bool = False


_TOP_FIELDS: Final[Mapping[str, _Field]] = {
    f.name: f
    for f in (
        _Field("value", _Kind.TEXT, "value"),
        _Field("type", _Kind.TYPE, "type"),
        _Field("test", _Kind.BOOL, "test"),
        _Field("safe", _Kind.BOOL, "safe"),
        _Field("active", _Kind.BOOL, "active"),
        _Field("expiresAt", _Kind.DATE, "expires_at", nullable=True),
        _Field("internalHits", _Kind.NUMBER, "internal_hits"),
        _Field("externalHits", _Kind.NUMBER, "external_hits"),
        _Field("sharedWith", _Kind.ARRAY, "shared_with"),
    )
}
_SOURCE_FIELDS: Final[Mapping[str, _Field]] = {
    f.name: f
    for f in (
        _Field("source", _Kind.TEXT, "source"),
        _Field("reputation", _Kind.NUMBER, "reputation", nullable=True),
        _Field("internalHits", _Kind.NUMBER, "internal_hits"),
        _Field("externalHits", _Kind.NUMBER, "external_hits"),
        _Field("firstSeen", _Kind.DATE, "first_seen"),
        _Field("lastSeen", _Kind.DATE, "last_seen"),
        _Field("severity", _Kind.SEVERITY, "severity"),
        _Field("comments", _Kind.TEXT, "comments"),
        _Field("extendedInformation", _Kind.TEXT, "extended_information"),
        _Field("tags", _Kind.ARRAY, "tags"),
        _Field("retracted", _Kind.BOOL, "retracted"),
    )
}

_KIND_OPS: Final[Mapping[_Kind, tuple[Op, ...]]] = {
    _Kind.TEXT: ("eq", "ne", "like", "in", "nin"),
    _Kind.NUMBER: ("eq", "ne", "lt", "lte", "gt", "gte"),
    _Kind.BOOL: ("eq", "ne"),
    _Kind.DATE: ("eq", "ne", "lt", "lte", "gt", "gte"),
    _Kind.ARRAY: ("in", "nin"),
    _Kind.SEVERITY: ("eq", "ne", "in", "nin"),
    _Kind.TYPE: ("eq", "ne", "in", "nin"),
}

_SEVERITIES: Final = tuple(s.value for s in Severity)
_TYPES: Final = tuple(t.value for t in IndicatorType)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class _Invalid(Exception):
    """A problem without its location; each parser adds a path or a position."""


def _string(raw: object) -> str:
    if not isinstance(raw, str):
        raise _Invalid(f"expected a string, got {_describe(raw)}")
    if "\x00" in raw:
        raise _Invalid("strings cannot contain NUL characters")  # PostgreSQL text cannot hold them
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid("string is not valid Unicode (lone surrogate)") from None
    return raw


def _datetime(raw: object) -> datetime:
    if isinstance(raw, datetime):
        parsed = raw
    elif isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise _Invalid(f"expected an ISO 8601 date, got {raw!r}") from None
    else:
        raise _Invalid(f"expected an ISO 8601 date string, got {_describe(raw)}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _Invalid(f"date {raw!s} is out of range") from None


def _integer(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _Invalid(f"expected an integer, got {_describe(raw)}")
    if isinstance(raw, float):
        if not raw.is_integer():
            raise _Invalid(f"expected an integer, got {raw!r}")
        raw = int(raw)
    if not _INT64_MIN <= raw <= _INT64_MAX:
        raise _Invalid("integer out of range (64-bit)")
    return raw


def _scalar(field: _Field, raw: object) -> str | int | bool | datetime:
    match field.kind:
        case _Kind.TEXT | _Kind.ARRAY:
            return _string(raw)
        case _Kind.SEVERITY:
            severity = _string(raw).lower()
            if severity not in _SEVERITIES:
                raise _Invalid(f"{raw!r} is not a severity (one of {', '.join(_SEVERITIES)})")
            return severity
        case _Kind.TYPE:
            kind = _string(raw).lower()
            if kind not in _TYPES:
                raise _Invalid(f"{raw!r} is not an indicator type (one of {', '.join(_TYPES)})")
            return kind
        case _Kind.NUMBER:
            return _integer(raw)
        case _Kind.BOOL:
            if not isinstance(raw, bool):
                raise _Invalid(f"expected true or false, got {_describe(raw)}")
            return raw
        case _Kind.DATE:
            return _datetime(raw)


def _operand(field: _Field, op: Op, raw: object) -> Value:
    if op in ("in", "nin"):
        if not isinstance(raw, list | tuple):
            raise _Invalid(f"expected a list, got {_describe(raw)}")
        items: list[str] = []
        for index, item in enumerate(raw):
            try:
                items.append(str(_scalar(field, item)))  # every list-capable kind is textual
            except _Invalid as err:
                raise _Invalid(f"item {index}: {err}") from None
        return tuple(items)
    if raw is None:
        if not field.nullable:
            raise _Invalid(f"{field.name} is never null")
        if op not in ("eq", "ne"):
            raise _Invalid("null can only be compared with equality")
        return None
    return _scalar(field, raw)


def _describe(raw: object) -> str:
    match raw:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list() | tuple():
            return "a list"
        case Mapping():
            return "an object"
    return type(raw).__name__


def _check_op(field: _Field, op: Op, spelled: str) -> None:
    if op not in _KIND_OPS[field.kind]:
        raise _Invalid(f"operator {spelled} cannot be used on {field.name} ({field.kind.value})")
