"""The filter language's canonical AST: its nodes, negation, the size limits, and inspection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TypeAlias

__all__ = [
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
    "QueryError",
    "Scalar",
    "Value",
    "negate",
    "referenced_tags",
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
