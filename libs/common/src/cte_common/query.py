"""The indicator filter language: one AST, two surface forms, two evaluators.

Surface forms (both parse to the same canonical AST, and both have a renderer that parses back to it):

- `parse_json` / `to_json`: the reference's restricted Mongo-style JSON (the `filters` parameter of
  `GET /api/cte/indicators/`, a business rule's `filters.mongo`).
- `parse_text` / `to_text`: the UI query string, e.g.
  ``sources.severity IN ("high", "critical") && active = true``.

Evaluators (written side by side per operator in `_TEXT_OPS`, `_ORDERED_OPS`, `_ARRAY_OPS`, `_NULL_OPS`):

- `to_sql`: a parameterised SQL boolean over ``indicators i`` (back-fill, API listing).
- `evaluate` / `compile_predicate`: the same predicate in Python over an API-shaped dict (rule engine).

Semantics shared by both evaluators:

- Text fields (`value`, `type`, per-source `source`, `comments`, `extendedInformation`, `severity`):
  equality and IN are case-insensitive exact matches; `Like` / `$regex` is a case-insensitive *substring*
  match of the literal text (never a regular expression, as in the reference, which escapes it).
- `tags` and `sharedWith` are arrays: IN means "shares at least one element", NOT IN "shares none". These
  compare case-sensitively (tag and configuration names are case-sensitive identifiers), unlike the
  reference, where every string became a case-insensitive regex; this lets PostgreSQL use the GIN index.
- A missing or NULL value matches no positive comparison, and every negative one (`!=`, `NOT IN`,
  `$ne`, `$nin`): Mongo's rule that `$ne`/`$nin` match documents without the field. In SQL this is
  ``IS DISTINCT FROM`` and ``IS NOT TRUE``; NOT of a possibly-NULL expression is also ``IS NOT TRUE``,
  so SQL's three-valued logic collapses to the same two values as Python.
- `sources.*` conditions hold when ONE source entry satisfies them (Mongo `$elemMatch`). In the text
  form each ``sources.x`` comparison is its own elemMatch, so ``sources.severity = "high" &&
  sources.tags IN ("a")`` may be satisfied by two different entries (exactly like two `$elemMatch`
  clauses in the JSON form); ``sources(severity = "high" && tags IN ("a"))`` groups conditions on one entry.
- Dates: ISO 8601 strings (date-only allowed) on date fields only; naive datetimes are UTC; the AST holds
  aware UTC datetimes. Strings on other fields are never dates (the reference turned any string dateutil
  could parse into a datetime, whatever the field).
- Numbers are integers within bigint range (integral floats such as 5.0 are accepted as 5). `null` is
  accepted only with = / != on nullable fields (`expiresAt`, per-source `reputation`).
- `severity` operands must be one of the severities (case-insensitive, stored lower-case).

Where the JSON form is narrower than the reference: no `$options`; no dotted keys (`sources.tags`) and no
`%`-for-`.` keys, write `{"sources": {"$elemMatch": ...}}`; no `destinations` / `retractionDestinations`
(sink state, not in `indicator_sources`); no `$not` on dates (write the opposite comparison); JSON null
inside a list is refused, and the string "null" stays a string (no list field here can hold null);
duplicate keys are refused. `{"$eq": "x"}` means the same as the literal "x"; severity also takes a literal.

Text form additions over the reference's grammar: ``sources(...)`` grouping, ``ANY IN`` (= IN),
``netskopeHits`` (= internalHits), ``sources.extendedInformation``, and bare `source`, `firstSeen`,
`lastSeen`, `extendedInformation`, `retracted` meaning the per-source fields like bare `severity`.

Canonical AST (what both parsers produce, and what the renderers rely on to round-trip):

- And/Or/Nor have at least two children; a single-element `$and`/`$or` is its element. Explicit nesting
  is kept (``(a && b) && c`` is And(And(a, b), c)), chains are flat (``a && b && c`` is And(a, b, c)).
- Negation is `negate(x)`: Nor(x's children) when x is an Or, else Not(x). So `$nor: [x]`, ``NOT x`` and
  a field-level `$not: {"$regex": ...}` all give Not(x), and ``NOT (a || b)`` equals `$nor: [a, b]`.
  A field-level `$not: "s"` (a plain string) is `$ne: "s"`, as in the reference.
- ``{}`` and the empty text are `MATCH_ALL` (``And(())``), accepted only as the whole filter.
- Compare.field is the API name relative to its scope: inside ElemMatch it names a source-entry field.
- Limits: at most `MAX_DEPTH` levels of nesting and `MAX_NODES` AST nodes (an IN list is one node).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import partial
from typing import Any, Final, Literal, NoReturn, TypeAlias

from cte_common.indicators import IndicatorType, Severity

__all__ = [
    "INDICATOR_ALIAS",
    "MATCH_ALL",
    "MAX_DEPTH",
    "MAX_NODES",
    "And",
    "Compare",
    "ElemMatch",
    "Node",
    "Nor",
    "Not",
    "Op",
    "Or",
    "Predicate",
    "QueryError",
    "SqlParams",
    "Value",
    "compile_predicate",
    "evaluate",
    "negate",
    "parse_json",
    "parse_text",
    "referenced_tags",
    "to_json",
    "to_sql",
    "to_text",
]

MAX_DEPTH: Final = 32
MAX_NODES: Final = 1000

Op: TypeAlias = Literal["eq", "ne", "lt", "lte", "gt", "gte", "like", "in", "nin"]
Scalar: TypeAlias = str | int | bool | datetime | None
Value: TypeAlias = Scalar | tuple[str, ...]


class QueryError(ValueError):
    """A filter outside the language. `message` names the problem and where: a JSON path (`path`) or a
    0-based character offset in the text form (`position`); limit errors on text carry no position."""

    def __init__(self, message: str, *, path: str | None = None, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.position = position


# --- AST ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: Op
    value: Value


@dataclass(frozen=True, slots=True)
class And:
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Nor:
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    node: Node


@dataclass(frozen=True, slots=True)
class ElemMatch:
    """Some entry of `sources` satisfies `node` (whose fields are source-entry fields)."""

    node: Node


Node: TypeAlias = And | Or | Nor | Not | Compare | ElemMatch

MATCH_ALL: Final[Node] = And(())


def negate(node: Node) -> Node:
    """The canonical negation: NOT (a || b) is Nor(a, b), so `$nor` and ``NOT (...)`` meet in one AST."""
    return Nor(node.nodes) if isinstance(node, Or) else Not(node)


def _all(nodes: list[Node]) -> Node:
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _any(nodes: list[Node]) -> Node:
    return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))


def _children(node: Node) -> tuple[Node, ...]:
    match node:
        case And(nodes) | Or(nodes) | Nor(nodes):
            return nodes
        case Not(child) | ElemMatch(child):
            return (child,)
        case Compare():
            return ()


def _limit_problem(node: Node) -> str | None:
    """Checked on the finished AST so that both surface forms accept exactly the same trees."""
    count = 0
    deepest = 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        count += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(current))
    if deepest > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if count > MAX_NODES:
        return f"more than {MAX_NODES} conditions"
    return None


# --- fields and operand checking (shared by both parsers) -------------------------------------------


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


# --- JSON form ---------------------------------------------------------------------------------------

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


def _json_document(document: object, path: str, fields: Mapping[str, _Field], nesting: int) -> Node:
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


def _field_list(fields: Mapping[str, _Field]) -> str:
    names = list(fields)
    if fields is _TOP_FIELDS:
        names.append("sources")
    names.extend(_LOGICAL)
    return ", ".join(names)


def _json_elem_match(raw: object, path: str, nesting: int) -> Node:
    if not isinstance(raw, Mapping) or list(raw) != ["$elemMatch"]:
        raise _json_error(path, 'expected {"$elemMatch": {...}}')
    return ElemMatch(_json_document(raw["$elemMatch"], f"{path}.$elemMatch", _SOURCE_FIELDS, nesting + 1))


def _json_field(field: _Field, raw: object, path: str) -> Node:
    if not isinstance(raw, Mapping):
        if field.kind is _Kind.ARRAY:
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


def _json_not(field: _Field, operand: object, path: str) -> Node:
    if field.kind is not _Kind.TEXT:
        raise _json_error(path, f"operator $not cannot be used on {field.name} ({field.kind.value})")
    if isinstance(operand, Mapping):
        if "$not" in operand:
            raise _json_error(path, "$not cannot be nested")
        return negate(_json_field(field, operand, path))
    # The reference turns {"$not": "x"} into "not the case-insensitive exact match", i.e. $ne.
    return _json_compare(field, "ne", operand, path, "$not")


def _json_compare(field: _Field, op: Op, raw: object, path: str, spelled: str) -> Compare:
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


# --- text form ---------------------------------------------------------------------------------------
#
#   query      := <empty> | or
#   or         := and (("||" | OR) and)*
#   and        := unary (("&&" | AND) unary)*
#   unary      := NOT unary | "(" or ")" | "sources" "(" or ")" | comparison
#   comparison := FIELD operator operand
#   operator   := "=" | "==" | IS EQUAL | "!=" | "<" | "<=" | ">" | ">=" | LIKE | IN | ANY IN | NOT IN
#   operand    := STRING | NUMBER | TRUE | FALSE | NULL | "(" [scalar ("," scalar)*] ")"
#
# Keywords are case-insensitive; field names are not. Inside sources(...) fields are source-entry fields.

_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "like", "is", "equal", "any", "true", "false", "null"})
_SYMBOLS: Final = (
    ("&&", "and"),
    ("||", "or"),
    ("==", "op"),
    ("!=", "op"),
    ("<=", "op"),
    (">=", "op"),
    ("=", "op"),
    ("<", "op"),
    (">", "op"),
    ("(", "("),
    (")", ")"),
    (",", ","),
)
_SYMBOL_OPS: Final[Mapping[str, Op]] = {
    "=": "eq",
    "==": "eq",
    "!=": "ne",
    "<": "lt",
    "<=": "lte",
    ">": "gt",
    ">=": "gte",
}
_TEXT_OP_NAMES: Final[Mapping[Op, str]] = {
    "eq": "=",
    "ne": "!=",
    "lt": "<",
    "lte": "<=",
    "gt": ">",
    "gte": ">=",
    "like": "Like",
    "in": "IN",
    "nin": "NOT IN",
}
# ASCII digits only: \d would accept other scripts' digits, which int() then silently converts.
_WORD_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER_RE: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPES: Final = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "r": "\r", "t": "\t"}
_HEX4_RE: Final = re.compile(r"[0-9a-fA-F]{4}")
_FIELD_ALIASES: Final = {"netskopeHits": "internalHits"}  # the UI's older name for internal hits
_SOURCES_PREFIX: Final = "sources."
# Recursion guard; NOT (...) costs two levels per AST level, so allow twice the AST limit.
_TEXT_NESTING_GUARD: Final = 2 * MAX_DEPTH + 2
_OPERATOR_HINT: Final = "=, !=, <, <=, >, >=, Like, Is equal, IN, NOT IN"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # a symbol kind, a lower-case keyword, "word", "string", "number" or "end"
    pos: int
    text: str
    value: object = None


def _text_error(pos: int, problem: str) -> QueryError:
    return QueryError(f"position {pos}: {problem}", position=pos)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        if char == '"':
            token, pos = _string_token(text, pos)
            tokens.append(token)
            continue
        symbol = next(((s, kind) for s, kind in _SYMBOLS if text.startswith(s, pos)), None)
        if symbol is not None:
            tokens.append(_Token(symbol[1], pos, symbol[0]))
            pos += len(symbol[0])
            continue
        if number := _NUMBER_RE.match(text, pos):
            tokens.append(_number_token(number.group(), pos))
            pos = number.end()
            continue
        if word := _WORD_RE.match(text, pos):
            lowered = word.group().lower()
            kind = lowered if lowered in _KEYWORDS else "word"
            tokens.append(_Token(kind, pos, word.group()))
            pos = word.end()
            continue
        hint = {"&": " (did you mean '&&'?)", "|": " (did you mean '||'?)", "'": " (use double quotes)"}
        raise _text_error(pos, f"unexpected character {char!r}{hint.get(char, '')}")
    tokens.append(_Token("end", len(text), ""))
    return tokens


def _string_token(text: str, start: int) -> tuple[_Token, int]:
    chars: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == '"':
            return _Token("string", start, text[start : pos + 1], "".join(chars)), pos + 1
        if char == "\\":
            escape = text[pos + 1 : pos + 2]
            if escape in _ESCAPES:
                chars.append(_ESCAPES[escape])
                pos += 2
            elif escape == "u" and _HEX4_RE.fullmatch(text, pos + 2, pos + 6):
                chars.append(chr(int(text[pos + 2 : pos + 6], 16)))
                pos += 6
            else:
                raise _text_error(pos, f"invalid escape {text[pos : pos + 2]!r} in string")
            continue
        chars.append(char)
        pos += 1
    raise _text_error(start, "unterminated string")


def _number_token(spelled: str, pos: int) -> _Token:
    try:
        number: int | float = float(spelled) if any(c in spelled for c in ".eE") else int(spelled)
    except ValueError:  # int() refuses more than 4300 digits
        raise _text_error(pos, "number too long") from None
    return _Token("number", pos, spelled, number)


def parse_text(text: str) -> Node:
    """Parse the UI query string. Errors carry the 0-based character offset."""
    if not isinstance(text, str):
        raise QueryError(f"expected a string, got {_describe(text)}")
    parser = _TextParser(_tokenize(text))
    if parser.peek.kind == "end":
        return MATCH_ALL
    node = parser.disjunction(_TOP_FIELDS, 0)
    if parser.peek.kind != "end":
        raise _text_error(parser.peek.pos, f"unexpected {_spell(parser.peek)}")
    problem = _limit_problem(node)
    if problem:
        raise QueryError(f"query {problem}")
    return node


def _spell(token: _Token) -> str:
    return "end of query" if token.kind == "end" else repr(token.text)


class _TextParser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._index = 0

    @property
    def peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def _expect(self, kind: str, what: str) -> _Token:
        token = self._next()
        if token.kind != kind:
            raise _text_error(token.pos, f"expected {what}, got {_spell(token)}")
        return token

    def disjunction(self, fields: Mapping[str, _Field], nesting: int) -> Node:
        nodes = [self._conjunction(fields, nesting)]
        while self.peek.kind == "or":
            self._next()
            nodes.append(self._conjunction(fields, nesting))
        return _any(nodes)

    def _conjunction(self, fields: Mapping[str, _Field], nesting: int) -> Node:
        nodes = [self._unary(fields, nesting)]
        while self.peek.kind == "and":
            self._next()
            nodes.append(self._unary(fields, nesting))
        return _all(nodes)

    def _unary(self, fields: Mapping[str, _Field], nesting: int) -> Node:
        token = self.peek
        if token.kind in ("not", "(") and nesting >= _TEXT_NESTING_GUARD:
            raise _text_error(token.pos, f"nested deeper than {MAX_DEPTH} levels")
        if token.kind == "not":
            self._next()
            return negate(self._unary(fields, nesting + 1))
        if token.kind == "(":
            self._next()
            node = self.disjunction(fields, nesting + 1)
            self._expect(")", f"')' to close '(' at position {token.pos}")
            return node
        if token.kind == "word":
            return self._comparison(fields, nesting)
        raise _text_error(token.pos, f"expected a field, '(' or NOT, got {_spell(token)}")

    def _comparison(self, fields: Mapping[str, _Field], nesting: int) -> Node:
        name = self._next()
        if name.text == "sources" and self.peek.kind == "(":
            if fields is not _TOP_FIELDS:
                raise _text_error(name.pos, "sources(...) cannot be nested")
            opening = self._next()
            body = self.disjunction(_SOURCE_FIELDS, nesting + 1)
            self._expect(")", f"')' to close 'sources(' at position {opening.pos}")
            return ElemMatch(body)
        field, per_source = _text_field(name, fields)
        op_token = self.peek
        op, spelled = self._operator(name)
        try:
            _check_op(field, op, spelled)
        except _Invalid as err:
            raise _text_error(op_token.pos, str(err)) from None
        operand_token = self.peek
        raw = self._operand_list(op) if op in ("in", "nin") else self._scalar()
        try:
            compare = Compare(field.name, op, _operand(field, op, raw))
        except _Invalid as err:
            raise _text_error(operand_token.pos, f"{name.text}: {err}") from None
        return ElemMatch(compare) if per_source else compare

    def _operator(self, field: _Token) -> tuple[Op, str]:
        token = self._next()
        match token.kind:
            case "op":
                return _SYMBOL_OPS[token.text], token.text
            case "like":
                return "like", token.text
            case "in":
                return "in", token.text
            case "any":
                self._expect("in", "IN after ANY")
                return "in", "ANY IN"
            case "not":
                self._expect("in", "IN after NOT")
                return "nin", "NOT IN"
            case "is":
                self._expect("equal", "EQUAL after IS")
                return "eq", "Is equal"
        raise _text_error(token.pos, f"expected an operator ({_OPERATOR_HINT}) after {field.text!r}")

    def _scalar(self) -> object:
        token = self._next()
        match token.kind:
            case "string" | "number":
                return token.value
            case "true":
                return True
            case "false":
                return False
            case "null":
                return None
            case "(":
                raise _text_error(token.pos, "a list is only allowed after IN / NOT IN")
        hint = " (strings must be double-quoted)" if token.kind == "word" else ""
        raise _text_error(
            token.pos,
            f"expected a value (a string, a number, true, false or null){hint}, got {_spell(token)}",
        )

    def _operand_list(self, op: Op) -> list[object]:
        self._expect("(", f'a parenthesised list after {_TEXT_OP_NAMES[op]}, like ("a", "b")')
        items: list[object] = []
        if self.peek.kind == ")":
            self._next()
            return items
        items.append(self._scalar())
        while self.peek.kind == ",":
            self._next()
            items.append(self._scalar())
        self._expect(")", "',' or ')' in the list")
        return items


def _text_field(token: _Token, fields: Mapping[str, _Field]) -> tuple[_Field, bool]:
    """The field a name denotes, and whether it is a source-entry field named from the indicator level."""
    name = token.text
    if fields is _SOURCE_FIELDS:
        if name.startswith(_SOURCES_PREFIX):
            raise _text_error(token.pos, f"inside sources(...) write {name[len(_SOURCES_PREFIX) :]!r}")
        field = _SOURCE_FIELDS.get(_FIELD_ALIASES.get(name, name))
        if field is None:
            raise _text_error(token.pos, f"unknown source field {name!r}")
        return field, False
    if name.startswith(_SOURCES_PREFIX):
        rest = name[len(_SOURCES_PREFIX) :]
        field = _SOURCE_FIELDS.get(_FIELD_ALIASES.get(rest, rest))
        if field is None:
            raise _text_error(token.pos, f"unknown field {name!r}")
        return field, True
    base = _FIELD_ALIASES.get(name, name)
    if base in _TOP_FIELDS:
        return _TOP_FIELDS[base], False
    # Bare reputation, severity, tags, comments, ... live per source, as in the reference.
    if base in _SOURCE_FIELDS:
        return _SOURCE_FIELDS[base], True
    hint = " (use sources.<field> or sources(...))" if name == "sources" else ""
    raise _text_error(token.pos, f"unknown field {name!r}{hint}")


def to_text(node: Node) -> str:
    """Render as the text form; `parse_text` gives `node` back for every canonical AST."""
    return "" if node == MATCH_ALL else _text_node(node, "")


def _text_node(node: Node, prefix: str) -> str:
    # `prefix` is "sources." for a lone comparison under ElemMatch, "" elsewhere.
    match node:
        case Compare(field, op, value):
            return f"{prefix}{field} {_TEXT_OP_NAMES[op]} {_text_value(value)}"
        case And(nodes):
            return " && ".join(_text_group(child) for child in nodes)
        case Or(nodes):
            return " || ".join(_text_group(child) for child in nodes)
        case Nor(nodes):
            return "NOT (" + " || ".join(_text_group(child) for child in nodes) + ")"
        case Not(child):
            return "NOT " + _text_group(child)
        case ElemMatch(Compare() as child):
            return _text_node(child, _SOURCES_PREFIX)
        case ElemMatch(child):
            return f"sources({_text_node(child, '')})"


def _text_group(node: Node) -> str:
    """Parenthesise And/Or operands so precedence and explicit nesting survive the round trip."""
    text = _text_node(node, "")
    return f"({text})" if isinstance(node, And | Or) else text


def _text_value(value: Value) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "true" if value else "false"
        case int():
            return str(value)
        case datetime():
            return _quote(value.isoformat())
        case str():
            return _quote(value)
        case tuple():
            return "(" + ", ".join(_quote(item) for item in value) + ")"


def _quote(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'"{escaped}"'


# --- operators: SQL and Python side by side ----------------------------------------------------------
#
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


def _lower_in(column: str, placeholder: str) -> str:
    return f"(lower({column}) = ANY (SELECT lower(u.x) FROM unnest({placeholder}) AS u(x)))"


def _lowered(operand: str) -> str:
    return operand.lower()


def _lowered_set(operand: tuple[str, ...]) -> frozenset[str]:
    return frozenset(item.lower() for item in operand)


# Text: case-insensitive. PostgreSQL lower() and str.lower() agree on ASCII and on simple
# case mappings; special cases (e.g. U+0130) depend on the database's ctype.
_TEXT_OPS: Final[Mapping[Op, _Impl]] = {
    "eq": _Impl(
        sql=lambda c, p, n: f"lower({c}) = lower({p})",
        py=lambda a, v: a is not None and a.lower() == v,
        prep=_lowered,
    ),
    "ne": _Impl(
        sql=lambda c, p, n: f"lower({c}) IS DISTINCT FROM lower({p})",
        py=lambda a, v: a is None or a.lower() != v,
        prep=_lowered,
        total=True,
    ),
    "like": _Impl(
        sql=lambda c, p, n: f"strpos(lower({c}), lower({p})) > 0",
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

_KIND_IMPLS: Final[Mapping[_Kind, Mapping[Op, _Impl]]] = {
    _Kind.TEXT: _TEXT_OPS,
    _Kind.SEVERITY: _EXACT_OPS,
    _Kind.TYPE: _EXACT_OPS,
    _Kind.NUMBER: _ORDERED_OPS,
    _Kind.DATE: _ORDERED_OPS,
    _Kind.BOOL: _ORDERED_OPS,
    _Kind.ARRAY: _ARRAY_OPS,
}
_SCALAR_CASTS: Final[Mapping[_Kind, str]] = {
    _Kind.TEXT: "text",
    _Kind.SEVERITY: "text",
    _Kind.TYPE: "text",
    _Kind.NUMBER: "bigint",
    _Kind.BOOL: "boolean",
    _Kind.DATE: "timestamptz",
    _Kind.ARRAY: "text[]",
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


_NORMALISERS: Final[Mapping[_Kind, Callable[[object], Any]]] = {
    _Kind.TEXT: _normal_text,
    _Kind.SEVERITY: _normal_text,
    _Kind.TYPE: _normal_text,
    _Kind.NUMBER: _normal_number,
    _Kind.BOOL: _normal_bool,
    _Kind.DATE: _normal_date,
    _Kind.ARRAY: _normal_array,
}


def _resolve(node: Compare, fields: Mapping[str, _Field]) -> tuple[_Field, _Impl]:
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


# --- SQL ---------------------------------------------------------------------------------------------

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


def to_sql(node: Node, params: SqlParams) -> str:
    """A SQL boolean over ``indicators i``; every value goes into `params`, none into the text."""
    return _sql(node, params, INDICATOR_ALIAS, _TOP_FIELDS)[0]


def _sql(node: Node, params: SqlParams, table: str, fields: Mapping[str, _Field]) -> tuple[str, bool]:
    """(SQL, may it be NULL). Compounds come back parenthesised."""
    match node:
        case Compare(_, op, value):
            field, impl = _resolve(node, fields)
            column = f"{table}.{field.column}"
            placeholder = ""
            if value is not None:
                cast = "text[]" if op in ("in", "nin") else _SCALAR_CASTS[field.kind]
                placeholder = f"{params.add(list(value) if isinstance(value, tuple) else value)}::{cast}"
            return impl.sql(column, placeholder, field.nullable), field.nullable and not impl.total
        case And(nodes) | Or(nodes) if not nodes:
            return ("TRUE" if isinstance(node, And) else "FALSE"), False
        case And(nodes) | Or(nodes):
            parts = [_sql(child, params, table, fields) for child in nodes]
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(_wrap(sql) for sql, _ in parts) + ")", any(n for _, n in parts)
        case Nor(nodes):
            inner, nullable = _sql(Or(nodes), params, table, fields)
            return _sql_not(_wrap(inner), nullable), False
        case Not(child):
            inner, nullable = _sql(child, params, table, fields)
            return _sql_not(_wrap(inner), nullable), False
        case ElemMatch(child):
            if fields is not _TOP_FIELDS:
                raise QueryError("sources conditions cannot be nested")
            alias = params.alias()
            body, _ = _sql(child, params, alias, _SOURCE_FIELDS)
            # WHERE treats a NULL body as false, which is the Python any() over entries.
            return (
                f"EXISTS (SELECT 1 FROM indicator_sources {alias} "
                f"WHERE {alias}.value = {table}.value AND {_wrap(body)})"
            ), False


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


# --- Python ------------------------------------------------------------------------------------------

Predicate: TypeAlias = Callable[[Mapping[str, Any]], bool]


def evaluate(node: Node, indicator: Mapping[str, Any]) -> bool:
    """Does `indicator` (shaped like the API output) match? Same semantics as `to_sql`.

    For many indicators compile once with `compile_predicate`.
    """
    return compile_predicate(node)(indicator)


def compile_predicate(node: Node) -> Predicate:
    """A function indicator -> bool; operands are prepared once (lower-cased, made into sets)."""
    return _compile(node, _TOP_FIELDS)


def _compile(node: Node, fields: Mapping[str, _Field]) -> Predicate:
    match node:
        case Compare(_, _, value):
            field, impl = _resolve(node, fields)
            return partial(_check, field.name, _NORMALISERS[field.kind], impl.py, impl.prep(value))
        case And(nodes):
            predicates = [_compile(child, fields) for child in nodes]
            return lambda record: all(predicate(record) for predicate in predicates)
        case Or(nodes):
            predicates = [_compile(child, fields) for child in nodes]
            return lambda record: any(predicate(record) for predicate in predicates)
        case Nor(nodes):
            predicates = [_compile(child, fields) for child in nodes]
            return lambda record: not any(predicate(record) for predicate in predicates)
        case Not(child):
            predicate = _compile(child, fields)
            return lambda record: not predicate(record)
        case ElemMatch(child):
            if fields is not _TOP_FIELDS:
                raise QueryError("sources conditions cannot be nested")
            return partial(_any_source, _compile(child, _SOURCE_FIELDS))


def _check(
    name: str,
    normalise: Callable[[object], Any],
    test: Callable[[Any, Any], bool],
    operand: Any,
    record: Mapping[str, Any],
) -> bool:
    return test(normalise(record.get(name)), operand)


def _any_source(predicate: Predicate, indicator: Mapping[str, Any]) -> bool:
    sources = indicator.get("sources")
    if not isinstance(sources, list | tuple):
        return False
    return any(isinstance(entry, Mapping) and predicate(entry) for entry in sources)


# --- inspection --------------------------------------------------------------------------------------


def _walk(node: Node, inside_sources: bool = False) -> Iterator[tuple[Node, bool]]:
    yield node, inside_sources
    for child in _children(node):
        yield from _walk(child, inside_sources or isinstance(node, ElemMatch))


def referenced_tags(node: Node) -> set[str]:
    """Tag names the filter mentions (a tag in use by a rule must not be deleted)."""
    return {
        tag
        for current, inside in _walk(node)
        if inside and isinstance(current, Compare) and current.field == "tags" and isinstance(current.value, tuple)
        for tag in current.value
    }
