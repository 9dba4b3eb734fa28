"""The SQL compiler: a filter as a parameterised SQL boolean over ``indicators i``.

With ``list_status``, ``sharedWith`` and the tags the list state gives (``LIST_STATUS_TAGS``) are read
from the netskope-sink's list state (the view ``list_value_status``), as the API answers them; without
it, only what the read model stores, as the rule-engine sees an indicator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cte_common.indicator_schema import LIST_STATUS_TAGS, FilterField
from cte_common.query.ast import And, Compare, ElemMatch, Node, Nor, Not, Or, QueryError
from cte_common.query.fields import _SOURCE_FIELDS, _TOP_FIELDS
from cte_common.query.operators import _SCALAR_CASTS, _resolve, _sql_not

__all__ = [
    "INDICATOR_ALIAS",
    "SqlParams",
    "to_sql",
]


INDICATOR_ALIAS: Final = "i"


class SqlParams:
    """Hands out ``$n`` placeholders (from `start`, so callers can put their own parameters first) and
    the aliases of source subqueries. One instance per statement; `values` are the bind arguments."""

    def __init__(self, start: int = 1) -> None:
        if start < 1:
            raise ValueError("placeholders start at $1")
        self.start = start
        self.values: list[object] = []
        self._aliases = 0

    def add(self, value: object) -> str:
        self.values.append(value)
        return f"${self.start + len(self.values) - 1}"

    def alias(self) -> str:
        self._aliases += 1
        return f"s{self._aliases}"


def to_sql(node: Node, params: SqlParams, *, list_status: bool = False) -> str:
    """A SQL boolean over ``indicators i``; every value goes into `params`, none into the text.
    ``list_status``: sharedWith and the list-status tags as the API derives them."""
    return _sql(node, params, INDICATOR_ALIAS, _TOP_FIELDS, list_status)[0]


# The values a list holds for one of the destinations, and those with one of the statuses.
_SHARED_WITH = (
    "{table}.value IN (SELECT v.value FROM list_value_status v WHERE v.status = 'shared' AND v.destination = ANY ({p}))"
)
_WITH_STATUS = "{table}.value IN (SELECT v.value FROM list_value_status v WHERE v.status = ANY ({p}::text[]))"


def _derived(node: Compare, field: FilterField, params: SqlParams, table: str) -> str | None:
    """The SQL of a comparison read from the list state, or None when it reads only stored columns."""
    if node.op not in ("in", "nin") or not isinstance(node.value, tuple):
        return None
    if field.name == "sharedWith" and not field.per_source:
        sql = _SHARED_WITH.format(table=table, p=f"{params.add(list(node.value))}::text[]")
    elif field.name == "tags" and field.per_source and (tags := [t for t in node.value if t in LIST_STATUS_TAGS]):
        statuses = sorted({s for t in tags for s in LIST_STATUS_TAGS[t]})
        stored = f"{table}.{field.column} && {params.add(list(node.value))}::text[]"
        sql = f"({stored} OR {_WITH_STATUS.format(table=table, p=params.add(statuses))})"
    else:
        return None
    return sql if node.op == "in" else f"NOT ({sql})"


def _sql(
    node: Node, params: SqlParams, table: str, fields: Mapping[str, FilterField], derive: bool
) -> tuple[str, bool]:
    """(SQL, may it be NULL). Compounds come back parenthesised."""
    match node:
        case Compare(_, op, value):
            field, impl = _resolve(node, fields)
            if derive and (derived := _derived(node, field, params, table)) is not None:
                return derived, False
            column = f"{table}.{field.column}"
            placeholder = ""
            if value is not None:
                cast = "text[]" if op in ("in", "nin") else _SCALAR_CASTS[field.kind]
                placeholder = f"{params.add(list(value) if isinstance(value, tuple) else value)}::{cast}"
            return impl.sql(column, placeholder, field.nullable), field.nullable and not impl.total
        case And(nodes) | Or(nodes) if not nodes:
            return ("TRUE" if isinstance(node, And) else "FALSE"), False
        case And(nodes) | Or(nodes):
            parts = [_sql(child, params, table, fields, derive) for child in nodes]
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(_wrap(sql) for sql, _ in parts) + ")", any(n for _, n in parts)
        case Nor(nodes):
            inner, nullable = _sql(Or(nodes), params, table, fields, derive)
            return _sql_not(_wrap(inner), nullable), False
        case Not(child):
            inner, nullable = _sql(child, params, table, fields, derive)
            return _sql_not(_wrap(inner), nullable), False
        case ElemMatch(child):
            if fields is not _TOP_FIELDS:
                raise QueryError("sources conditions cannot be nested")
            latest = _latest_alone(child, params, table)
            if latest is not None:
                return latest, False
            alias = params.alias()
            bound = _latest_bound(child, params, table)
            body, _ = _sql(child, params, alias, _SOURCE_FIELDS, derive)
            # WHERE treats a NULL body as false, which is the Python any() over entries.
            exists = (
                f"EXISTS (SELECT 1 FROM indicator_sources {alias} "
                f"WHERE {alias}.value = {table}.value AND {_wrap(body)})"
            )
            return (f"({bound} AND {exists})" if bound else exists), False


# Per-source dates the indicator keeps the latest of: its lastSeen is the latest of its current sources'
# (the rule-engine's merge takes the maximum of both, and recomputes it when a source is dropped; an
# indicator always has a source). A source seen since t therefore is the indicator seen since t: a lone
# lower bound is the indicator's own column, which its (last_seen, value) index serves (the console's
# default filter, the last 7 days, and its count read the week's index entries, not every source row),
# and beside other conditions the bound is stated next to the EXISTS, which keeps the meaning (also
# under NOT: both NOT NULL).
_LATEST_OF_SOURCES: Final = {"lastSeen": "last_seen"}


def _latest_alone(child: Node, params: SqlParams, table: str) -> str | None:
    """``i.last_seen > t`` for ``sources.$elemMatch {lastSeen > t}`` alone (or >=): the same selection."""
    if (
        isinstance(child, Compare)
        and child.field in _LATEST_OF_SOURCES
        and child.op in ("gt", "gte")
        and child.value is not None
    ):
        op = ">=" if child.op == "gte" else ">"
        return f"{table}.{_LATEST_OF_SOURCES[child.field]} {op} {params.add(child.value)}::timestamptz"
    return None


def _latest_bound(child: Node, params: SqlParams, table: str) -> str | None:
    """``i.last_seen >= t`` for each lower bound on the sources' lastSeen that every match must meet."""
    conditions = child.nodes if isinstance(child, And) else (child,)
    bounds = [
        f"{table}.{_LATEST_OF_SOURCES[c.field]} >= {params.add(c.value)}::timestamptz"
        for c in conditions
        if isinstance(c, Compare)
        and c.field in _LATEST_OF_SOURCES
        and c.op in ("eq", "gt", "gte")
        and c.value is not None
    ]
    return " AND ".join(bounds) or None


def _wrap(sql: str) -> str:
    return sql if _is_parenthesised(sql) else f"({sql})"


def _is_parenthesised(sql: str) -> bool:
    if not (sql.startswith("(") and sql.endswith(")")):
        return False
    depth = 0
    for index, char in enumerate(sql):
        depth += char == "("
        depth -= char == ")"
        if depth == 0 and index < len(sql) - 1:
            return False  # "(a) AND (b)": the first group closes early
    return True
