"""The text surface form: the UI query string, tokenised, parsed and rendered."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cte_common.indicator_schema import FilterField
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
    "parse_text",
    "to_text",
]


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

    def disjunction(self, fields: Mapping[str, FilterField], nesting: int) -> Node:
        nodes = [self._conjunction(fields, nesting)]
        while self.peek.kind == "or":
            self._next()
            nodes.append(self._conjunction(fields, nesting))
        return _any(nodes)

    def _conjunction(self, fields: Mapping[str, FilterField], nesting: int) -> Node:
        nodes = [self._unary(fields, nesting)]
        while self.peek.kind == "and":
            self._next()
            nodes.append(self._unary(fields, nesting))
        return _all(nodes)

    def _unary(self, fields: Mapping[str, FilterField], nesting: int) -> Node:
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

    def _comparison(self, fields: Mapping[str, FilterField], nesting: int) -> Node:
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


def _text_field(token: _Token, fields: Mapping[str, FilterField]) -> tuple[FilterField, bool]:
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
