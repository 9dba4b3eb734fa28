"""Every operator on every kind of field, in SQL and in Python side by side.

Package-internal: the SQL compiler and the Python evaluator read these tables; none of it is part
of ``cte_common.query``'s public surface."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cte_common.indicator_schema import FieldKind, FilterField
from cte_common.query.ast import Compare, Op, QueryError
from cte_common.query.fields import _KIND_OPS, _SOURCE_FIELDS

__all__: list[str] = []


# Each _Impl is one operator on one kind of field, written twice: `sql(column, placeholder, nullable)`
# and `py(actual, prepared_operand)`. `actual` has been normalised by the kind's normaliser (None for a
# missing or wrongly-typed value, which is what a NULL column is); `prep` turns the AST operand into what
# `py` wants, once per compiled predicate. `total` says the SQL is never NULL, even on a NULL column.


@dataclass(frozen=True, slots=True)
class _Impl:
    sql: Callable[[str, str, bool], str]
    py: Callable[[Any, Any], bool]
    total: bool = False
    prep: Callable[[Any], Any] = lambda operand: operand


def _sql_not(expr: str, nullable: bool) -> str:
    """NOT that maps NULL to true, so SQL's unknown behaves like Python's False under negation."""
    return f"{expr} IS NOT TRUE" if nullable else f"NOT {expr}"


def _lower(column: str) -> str:
    """lower() under the database's own collation: key columns compare in code point order (COLLATE
    "C", migration 0026), whose lower() maps ASCII letters only; the expression indexes on value and
    source are built on this same expression."""
    return f'lower(({column}) COLLATE "default")'


def _lower_in(column: str, placeholder: str) -> str:
    return f"({_lower(column)} = ANY (SELECT lower(u.x) FROM unnest({placeholder}) AS u(x)))"


def _lowered(operand: str) -> str:
    return operand.lower()


def _lowered_set(operand: tuple[str, ...]) -> frozenset[str]:
    return frozenset(item.lower() for item in operand)


# Text: case-insensitive. PostgreSQL lower() and str.lower() agree on ASCII and on simple
# case mappings; special cases (e.g. U+0130) depend on the database's ctype.
_TEXT_OPS: Final[Mapping[Op, _Impl]] = {
    "eq": _Impl(
        sql=lambda c, p, n: f"{_lower(c)} = lower({p})",
        py=lambda a, v: a is not None and a.lower() == v,
        prep=_lowered,
    ),
    "ne": _Impl(
        sql=lambda c, p, n: f"{_lower(c)} IS DISTINCT FROM lower({p})",
        py=lambda a, v: a is None or a.lower() != v,
        prep=_lowered,
        total=True,
    ),
    "like": _Impl(
        sql=lambda c, p, n: f"strpos({_lower(c)}, lower({p})) > 0",
        py=lambda a, v: a is not None and v in a.lower(),
        prep=_lowered,
    ),
    "in": _Impl(
        sql=lambda c, p, n: _lower_in(c, p),
        py=lambda a, v: a is not None and a.lower() in v,
        prep=_lowered_set,
    ),
    "nin": _Impl(
        sql=lambda c, p, n: _sql_not(_lower_in(c, p), n),
        py=lambda a, v: a is None or a.lower() not in v,
        prep=_lowered_set,
        total=True,
    ),
}

# Severity and type: closed vocabularies, validated and lower-cased at parse time and stored lower-case,
# so they compare exactly, which lets PostgreSQL use plain indexes on them.
_EXACT_OPS: Final[Mapping[Op, _Impl]] = {
    "eq": _Impl(sql=lambda c, p, n: f"{c} = {p}", py=lambda a, v: a is not None and a == v),
    "ne": _Impl(sql=lambda c, p, n: f"{c} IS DISTINCT FROM {p}", py=lambda a, v: a is None or a != v, total=True),
    "in": _Impl(sql=lambda c, p, n: f"{c} = ANY ({p})", py=lambda a, v: a is not None and a in v, prep=frozenset),
    "nin": _Impl(
        sql=lambda c, p, n: _sql_not(f"({c} = ANY ({p}))", n),
        py=lambda a, v: a is None or a not in v,
        prep=frozenset,
        total=True,
    ),
}

# Numbers, dates and booleans (booleans only use eq/ne).
_ORDERED_OPS: Final[Mapping[Op, _Impl]] = {
    "eq": _Impl(sql=lambda c, p, n: f"{c} = {p}", py=lambda a, v: a is not None and a == v),
    "ne": _Impl(sql=lambda c, p, n: f"{c} IS DISTINCT FROM {p}", py=lambda a, v: a is None or a != v, total=True),
    "lt": _Impl(sql=lambda c, p, n: f"{c} < {p}", py=lambda a, v: a is not None and a < v),
    "lte": _Impl(sql=lambda c, p, n: f"{c} <= {p}", py=lambda a, v: a is not None and a <= v),
    "gt": _Impl(sql=lambda c, p, n: f"{c} > {p}", py=lambda a, v: a is not None and a > v),
    "gte": _Impl(sql=lambda c, p, n: f"{c} >= {p}", py=lambda a, v: a is not None and a >= v),
}

# tags, sharedWith: overlap, case-sensitive (the GIN index on indicator_sources.tags serves `&&`).
_ARRAY_OPS: Final[Mapping[Op, _Impl]] = {
    "in": _Impl(
        sql=lambda c, p, n: f"{c} && {p}",
        py=lambda a, v: a is not None and not a.isdisjoint(v),
        prep=frozenset,
    ),
    "nin": _Impl(
        sql=lambda c, p, n: _sql_not(f"({c} && {p})", n),
        py=lambda a, v: a is None or a.isdisjoint(v),
        prep=frozenset,
        total=True,
    ),
}

# Comparisons with null (no placeholder).
_NULL_OPS: Final[Mapping[Op, _Impl]] = {
    "eq": _Impl(sql=lambda c, p, n: f"{c} IS NULL", py=lambda a, v: a is None, total=True),
    "ne": _Impl(sql=lambda c, p, n: f"{c} IS NOT NULL", py=lambda a, v: a is not None, total=True),
}

_KIND_IMPLS: Final[Mapping[FieldKind, Mapping[Op, _Impl]]] = {
    FieldKind.TEXT: _TEXT_OPS,
    FieldKind.SEVERITY: _EXACT_OPS,
    FieldKind.TYPE: _EXACT_OPS,
    FieldKind.NUMBER: _ORDERED_OPS,
    FieldKind.DATE: _ORDERED_OPS,
    FieldKind.BOOL: _ORDERED_OPS,
    FieldKind.ARRAY: _ARRAY_OPS,
}
_SCALAR_CASTS: Final[Mapping[FieldKind, str]] = {
    FieldKind.TEXT: "text",
    FieldKind.SEVERITY: "text",
    FieldKind.TYPE: "text",
    FieldKind.NUMBER: "bigint",
    FieldKind.BOOL: "boolean",
    FieldKind.DATE: "timestamptz",
    FieldKind.ARRAY: "text[]",
}


def _normal_text(raw: object) -> str | None:
    return raw if isinstance(raw, str) else None


def _normal_number(raw: object) -> int | float | None:
    return raw if isinstance(raw, int | float) and not isinstance(raw, bool) else None


def _normal_bool(raw: object) -> bool | None:
    return raw if isinstance(raw, bool) else None


def _normal_date(raw: object) -> datetime | None:
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw)
        except ValueError:
            return None
    if not isinstance(raw, datetime):
        return None
    return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw


def _normal_array(raw: object) -> frozenset[str] | None:
    if not isinstance(raw, list | tuple | set | frozenset):
        return None
    return frozenset(item for item in raw if isinstance(item, str))


_NORMALISERS: Final[Mapping[FieldKind, Callable[[object], Any]]] = {
    FieldKind.TEXT: _normal_text,
    FieldKind.SEVERITY: _normal_text,
    FieldKind.TYPE: _normal_text,
    FieldKind.NUMBER: _normal_number,
    FieldKind.BOOL: _normal_bool,
    FieldKind.DATE: _normal_date,
    FieldKind.ARRAY: _normal_array,
}


def _resolve(node: Compare, fields: Mapping[str, FilterField]) -> tuple[FilterField, _Impl]:
    """Whitelist check for ASTs built by hand: only known fields and their kind's operators."""
    field = fields.get(node.field)
    where = "a source entry" if fields is _SOURCE_FIELDS else "an indicator"
    if field is None:
        raise QueryError(f"unknown field {node.field!r} on {where}")
    if node.op not in _KIND_OPS[field.kind]:
        raise QueryError(f"operator {node.op!r} cannot be used on {field.name} ({field.kind.value})")
    if node.value is None:
        if not field.nullable:
            raise QueryError(f"{field.name} is never null")
        return field, _NULL_OPS[node.op]
    return field, _KIND_IMPLS[field.kind][node.op]
