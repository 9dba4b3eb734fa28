"""The Python evaluator: a filter compiled to a predicate over API-shaped indicator dicts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeAlias

from cte_common.indicator_schema import FilterField
from cte_common.query.ast import And, Compare, ElemMatch, Node, Nor, Not, Or, QueryError
from cte_common.query.fields import _SOURCE_FIELDS, _TOP_FIELDS
from cte_common.query.operators import _NORMALISERS, _resolve

__all__ = [
    "Predicate",
    "compile_predicate",
    "evaluate",
]


Predicate: TypeAlias = Callable[[Mapping[str, Any]], bool]


def evaluate(node: Node, indicator: Mapping[str, Any]) -> bool:
    """Does `indicator` (shaped like the API output) match? Same semantics as `to_sql`.

    For many indicators compile once with `compile_predicate`.
    """
    return compile_predicate(node)(indicator)


def compile_predicate(node: Node) -> Predicate:
    """A function indicator -> bool; operands are prepared once (lower-cased, made into sets)."""
    return _compile(node, _TOP_FIELDS)


def _compile(node: Node, fields: Mapping[str, FilterField]) -> Predicate:
    match node:
        case Compare(_, _, value):
            field, impl = _resolve(node, fields)
            return partial(_check, field.name, _NORMALISERS[field.kind], impl.py, impl.prep(value))
        case And(nodes):
            predicates = [_compile(child, fields) for child in nodes]
            return predicates[0] if len(predicates) == 1 else partial(_all_of, predicates)
        case Or(nodes):
            predicates = [_compile(child, fields) for child in nodes]
            return predicates[0] if len(predicates) == 1 else partial(_any_of, predicates)
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


# Loops, not all()/any() over a generator: the rule-engine runs these for every indicator and sharing.
def _all_of(predicates: list[Predicate], record: Mapping[str, Any]) -> bool:
    for predicate in predicates:  # noqa: SIM110
        if not predicate(record):
            return False
    return True


def _any_of(predicates: list[Predicate], record: Mapping[str, Any]) -> bool:
    for predicate in predicates:  # noqa: SIM110
        if predicate(record):
            return True
    return False


def _any_source(predicate: Predicate, indicator: Mapping[str, Any]) -> bool:
    sources = indicator.get("sources")
    if not isinstance(sources, list | tuple):
        return False
    for entry in sources:  # noqa: SIM110
        # A dict first: isinstance against the Mapping ABC is a Python-level call per entry.
        if (type(entry) is dict or isinstance(entry, Mapping)) and predicate(entry):
            return True
    return False
