"""The JSON surface form: the reference's restricted Mongo-style filter, parsed and rendered."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, NoReturn

from cte_common.indicator_schema import FieldKind, FilterField
from cte_common.query.ast import (
    MATCH_ALL,
    MAX_DEPTH,
    And,
    Compare,
    ElemMatch,
    Node,
    Nor,
    Not,
    Op,
    Or,
    QueryError,
    Value,
    _all,
    _any,
    _limit_problem,
    negate,
)
from cte_common.query.fields import _SOURCE_FIELDS, _TOP_FIELDS, _check_op, _describe, _Invalid, _operand

__all__ = [
    "parse_json",
    "to_json",
]


_JSON_OPS: Final[Mapping[str, Op]] = {
    "$eq": "eq",
    "$ne": "ne",
    "$gt": "gt",
    "$gte": "gte",
    "$lt": "lt",
    "$lte": "lte",
    "$regex": "like",
    "$in": "in",
    "$nin": "nin",
}
_JSON_OP_NAMES: Final[Mapping[Op, str]] = {op: name for name, op in _JSON_OPS.items()}
_LOGICAL: Final = ("$and", "$or", "$nor")
# Recursion guard while walking the input; the exact limit is checked on the finished AST.
_JSON_NESTING_GUARD: Final = MAX_DEPTH + 1


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise _DuplicateKey(key)  # json.loads would silently keep the last one
        result[key] = item
    return result


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str | Mapping[str, Any], *, root: str = "filters") -> Node:
    """Parse the Mongo-style JSON filter (a JSON string or an already-decoded object).

    `root` is the name used at the start of error paths (``filters.sources.$elemMatch.colour: ...``).
    """
    if isinstance(text, str):
        try:
            document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
        except _DuplicateKey as err:
            raise QueryError(f"{root}: duplicate key {err.args[0]!r}", path=root) from None
        except (ValueError, RecursionError) as err:
            raise QueryError(f"{root}: invalid JSON ({err})", path=root) from None
    else:
        document = text
    if not isinstance(document, Mapping):
        raise QueryError(f"{root}: expected a JSON object, got {_describe(document)}", path=root)
    if not document:
        return MATCH_ALL
    node = _json_document(document, root, _TOP_FIELDS, 0)
    problem = _limit_problem(node)
    if problem:
        raise QueryError(f"{root}: {problem}", path=root)
    return node


def _json_error(path: str, problem: str) -> QueryError:
    return QueryError(f"{path}: {problem}", path=path)


def _json_document(document: object, path: str, fields: Mapping[str, FilterField], nesting: int) -> Node:
    if nesting > _JSON_NESTING_GUARD:
        raise _json_error(path, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(document, Mapping):
        raise _json_error(path, f"expected an object, got {_describe(document)}")
    if not document:
        raise _json_error(path, "empty condition")
    parts: list[Node] = []
    for key, raw in document.items():
        if not isinstance(key, str):
            raise _json_error(path, f"keys must be strings, got {key!r}")
        key_path = f"{path}.{key}"
        if key in _LOGICAL:
            if not isinstance(raw, list) or not raw:
                raise _json_error(key_path, "expected a non-empty list of conditions")
            nodes = [
                _json_document(item, f"{key_path}[{index}]", fields, nesting + 1) for index, item in enumerate(raw)
            ]
            if key == "$and":
                parts.append(_all(nodes))
            elif key == "$or":
                parts.append(_any(nodes))
            else:
                parts.append(negate(nodes[0]) if len(nodes) == 1 else Nor(tuple(nodes)))
        elif key.startswith("$"):
            raise _json_error(key_path, "unknown operator")
        elif key == "sources" and fields is _TOP_FIELDS:
            parts.append(_json_elem_match(raw, key_path, nesting))
        elif key in fields:
            parts.append(_json_field(fields[key], raw, key_path))
        else:
            raise _json_error(key_path, f"unknown field (expected one of: {_field_list(fields)})")
    return _all(parts)


def _field_list(fields: Mapping[str, FilterField]) -> str:
    names = list(fields)
    if fields is _TOP_FIELDS:
        names.append("sources")
    names.extend(_LOGICAL)
    return ", ".join(names)


def _json_elem_match(raw: object, path: str, nesting: int) -> Node:
    if not isinstance(raw, Mapping) or list(raw) != ["$elemMatch"]:
        raise _json_error(path, 'expected {"$elemMatch": {...}}')
    return ElemMatch(_json_document(raw["$elemMatch"], f"{path}.$elemMatch", _SOURCE_FIELDS, nesting + 1))


def _json_field(field: FilterField, raw: object, path: str) -> Node:
    if not isinstance(raw, Mapping):
        if field.kind is FieldKind.ARRAY:
            raise _json_error(path, "expected an operator object ($in or $nin)")
        return _json_compare(field, "eq", raw, path, "a literal")
    if not raw:
        raise _json_error(path, "empty operator object")
    parts: list[Node] = []
    for key, operand in raw.items():
        op_path = f"{path}.{key}"
        if key == "$not":
            parts.append(_json_not(field, operand, op_path))
        elif key in _JSON_OPS:
            parts.append(_json_compare(field, _JSON_OPS[key], operand, op_path, key))
        elif isinstance(key, str) and key.startswith("$"):
            raise _json_error(op_path, "unknown operator")
        else:
            raise _json_error(op_path, "expected an operator such as $eq, not a field")
    return _all(parts)


def _json_not(field: FilterField, operand: object, path: str) -> Node:
    if field.kind is not FieldKind.TEXT:
        raise _json_error(path, f"operator $not cannot be used on {field.name} ({field.kind.value})")
    if isinstance(operand, Mapping):
        if "$not" in operand:
            raise _json_error(path, "$not cannot be nested")
        return negate(_json_field(field, operand, path))
    # The reference turns {"$not": "x"} into "not the case-insensitive exact match", i.e. $ne.
    return _json_compare(field, "ne", operand, path, "$not")


def _json_compare(field: FilterField, op: Op, raw: object, path: str, spelled: str) -> Compare:
    try:
        _check_op(field, op, spelled)
        return Compare(field.name, op, _operand(field, op, raw))
    except _Invalid as err:
        raise _json_error(path, str(err)) from None


def to_json(node: Node) -> dict[str, Any]:
    """Render as the JSON form (JSON-serialisable, dates as ISO strings); `parse_json` gives `node` back."""
    return {} if node == MATCH_ALL else _json_node(node)


def _json_node(node: Node) -> dict[str, Any]:
    match node:
        case Compare(field, op, value):
            operand = _json_value(value)
            return {field: operand if op == "eq" else {_JSON_OP_NAMES[op]: operand}}
        case And(nodes):
            return {"$and": [_json_node(child) for child in nodes]}
        case Or(nodes):
            return {"$or": [_json_node(child) for child in nodes]}
        case Nor(nodes):
            return {"$nor": [_json_node(child) for child in nodes]}
        case Not(child):
            return {"$nor": [_json_node(child)]}
        case ElemMatch(child):
            return {"sources": {"$elemMatch": _json_node(child)}}


def _json_value(value: Value) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value
