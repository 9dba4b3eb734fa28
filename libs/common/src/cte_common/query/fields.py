"""The fields a filter may name, their kinds' operators, and operand checking (shared by both parsers).

The fields themselves, with their kinds and columns, are the indicator schema's catalog
(``cte_common.indicator_schema.FILTER_FIELDS``).

Package-internal: the parsers, the operator table and the evaluators import these names; none is
part of ``cte_common.query``'s public surface."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from cte_common.indicator_schema import FILTER_FIELDS, FieldKind, FilterField
from cte_common.indicators import IndicatorType, Severity
from cte_common.query.ast import Op, Value

__all__: list[str] = []


# The field lists of each scope, from the indicator's one schema (in its order: messages list them so).
_TOP_FIELDS: Final[Mapping[str, FilterField]] = {f.name: f for f in FILTER_FIELDS if not f.per_source}
_SOURCE_FIELDS: Final[Mapping[str, FilterField]] = {f.name: f for f in FILTER_FIELDS if f.per_source}

_KIND_OPS: Final[Mapping[FieldKind, tuple[Op, ...]]] = {
    FieldKind.TEXT: ("eq", "ne", "like", "in", "nin"),
    FieldKind.NUMBER: ("eq", "ne", "lt", "lte", "gt", "gte"),
    FieldKind.BOOL: ("eq", "ne"),
    FieldKind.DATE: ("eq", "ne", "lt", "lte", "gt", "gte"),
    FieldKind.ARRAY: ("in", "nin"),
    FieldKind.SEVERITY: ("eq", "ne", "in", "nin"),
    FieldKind.TYPE: ("eq", "ne", "in", "nin"),
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


def _scalar(field: FilterField, raw: object) -> str | int | bool | datetime:
    match field.kind:
        case FieldKind.TEXT | FieldKind.ARRAY:
            return _string(raw)
        case FieldKind.SEVERITY:
            severity = _string(raw).lower()
            if severity not in _SEVERITIES:
                raise _Invalid(f"{raw!r} is not a severity (one of {', '.join(_SEVERITIES)})")
            return severity
        case FieldKind.TYPE:
            kind = _string(raw).lower()
            if kind not in _TYPES:
                raise _Invalid(f"{raw!r} is not an indicator type (one of {', '.join(_TYPES)})")
            return kind
        case FieldKind.NUMBER:
            return _integer(raw)
        case FieldKind.BOOL:
            if not isinstance(raw, bool):
                raise _Invalid(f"expected true or false, got {_describe(raw)}")
            return raw
        case FieldKind.DATE:
            return _datetime(raw)


def _operand(field: FilterField, op: Op, raw: object) -> Value:
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


def _check_op(field: FilterField, op: Op, spelled: str) -> None:
    if op not in _KIND_OPS[field.kind]:
        raise _Invalid(f"operator {spelled} cannot be used on {field.name} ({field.kind.value})")
