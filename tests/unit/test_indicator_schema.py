"""The indicator's one schema (cte_common.indicator_schema) and what is built on it agree: the answer models,
the catalog of filter fields, the filter language's fields and the plain-dict view the rule-engine evaluates
(the same names, the same per-source fields)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from cte_common.indicator_schema import (
    FILTER_FIELD_PATHS,
    FILTER_FIELDS,
    FieldKind,
    FilterField,
    IndicatorOut,
    IndicatorView,
    SourceOut,
    SourceView,
)
from cte_common.indicators import IndicatorType, Severity
from cte_common.query import Compare, ElemMatch, QueryError, SqlParams, parse_json, parse_text, to_sql
from ingest_api.dashboards.repository import GROUPABLE
from rule_engine.domain import apply_sighting, indicator_view
from tests.unit.test_rule_engine_merge import sighting

T0 = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)

# The answer's keys in the order the API has always written them, written out independently of the module.
ANSWER_KEYS = [
    "value",
    "type",
    "test",
    "safe",
    "active",
    "internalHits",
    "externalHits",
    "expiresAt",
    "source",
    "sharedWith",
    "tags",
    "firstSeen",
    "lastSeen",
    "reputation",
    "severity",
    "comments",
    "extendedInformation",
    "sources",
]
SOURCE_KEYS = [
    "source",
    "internalHits",
    "externalHits",
    "firstSeen",
    "lastSeen",
    "reputation",
    "severity",
    "comments",
    "extendedInformation",
    "tags",
    "destinations",
    "retracted",
    "retractionDestinations",
]
# The Python type a field of each kind holds in the answer.
KIND_TYPES: dict[FieldKind, Any] = {
    FieldKind.TEXT: str,
    FieldKind.NUMBER: int,
    FieldKind.BOOL: bool,
    FieldKind.DATE: datetime,
    FieldKind.ARRAY: list[str],
    FieldKind.SEVERITY: Severity,
    FieldKind.TYPE: IndicatorType,
}
# An operator and operand each kind takes, in the text form.
KIND_SAMPLES = {
    FieldKind.TEXT: '= "x"',
    FieldKind.NUMBER: "= 1",
    FieldKind.BOOL: "= true",
    FieldKind.DATE: '> "2026-01-01"',
    FieldKind.ARRAY: 'IN ("x")',
    FieldKind.SEVERITY: '= "high"',
    FieldKind.TYPE: '= "url"',
}
TOP = [f for f in FILTER_FIELDS if not f.per_source]
PER_SOURCE = [f for f in FILTER_FIELDS if f.per_source]


def test_the_models_fields_are_the_answers_keys_in_order() -> None:
    assert list(IndicatorOut.model_fields) == ANSWER_KEYS
    assert list(SourceOut.model_fields) == SOURCE_KEYS


@pytest.mark.parametrize("field", FILTER_FIELDS, ids=lambda f: f.path)
def test_each_catalog_field_is_a_field_of_the_answer_of_its_kinds_type(field: FilterField) -> None:
    model = SourceOut if field.per_source else IndicatorOut
    annotation = model.model_fields[field.name].annotation
    held = [t for t in get_args(annotation) if t is not type(None)] if field.nullable else [annotation]
    assert held == [KIND_TYPES[field.kind]]
    assert field.nullable == (type(None) in get_args(annotation))
    assert FILTER_FIELD_PATHS[field.path] is field


def test_the_catalog_names_each_field_once_per_level() -> None:
    assert len({f.path for f in FILTER_FIELDS}) == len(FILTER_FIELDS)


def test_the_views_hold_exactly_the_catalogs_fields() -> None:
    assert set(IndicatorView.__required_keys__) == {*(f.name for f in TOP), "sources"}
    assert set(SourceView.__required_keys__) == {f.name for f in PER_SOURCE}
    assert not IndicatorView.__optional_keys__
    assert not SourceView.__optional_keys__


def test_the_filter_language_names_exactly_the_catalogs_fields() -> None:
    # The JSON form lists the fields it knows when it meets another one.
    logical = ["$and", "$or", "$nor"]
    with pytest.raises(QueryError) as top:
        parse_json({"colour": 1})
    assert top.value.message.endswith(f"(expected one of: {', '.join([*(f.name for f in TOP), 'sources', *logical])})")
    with pytest.raises(QueryError) as per_source:
        parse_json({"sources": {"$elemMatch": {"colour": 1}}})
    assert per_source.value.message.endswith(
        f"(expected one of: {', '.join([*(f.name for f in PER_SOURCE), *logical])})"
    )


@pytest.mark.parametrize("field", FILTER_FIELDS, ids=lambda f: f.path)
def test_the_filter_language_reads_each_catalog_field_by_its_kind_column_and_nullability(field: FilterField) -> None:
    node = parse_text(f"{field.path} {KIND_SAMPLES[field.kind]}")
    compare = node.node if isinstance(node, ElemMatch) else node
    assert isinstance(compare, Compare)
    assert compare.field == field.name
    assert isinstance(node, ElemMatch) == field.per_source
    assert f".{field.column}" in to_sql(node, SqlParams(start=1))
    null = {field.name: None}
    document = {"sources": {"$elemMatch": null}} if field.per_source else null
    if field.kind is FieldKind.ARRAY:
        assert not field.nullable  # an empty list, never null: a filter has no way to ask
    elif field.nullable:
        parse_json(document)
    else:
        with pytest.raises(QueryError, match="never null"):
            parse_json(document)


# Every detail set, so that each field of the answer has a value of its own to compare.
DETAILED: dict[str, Any] = {
    "source": "DW",
    "reputation": 7,
    "severity": Severity.HIGH,
    "tags": ["a", "b"],
    "comments": "seen",
    "extended_information": "https://intel.example/evil",
    "first_seen": T0,
    "last_seen": T0 + timedelta(hours=1),
    "occurred_at": T0,
}


@pytest.mark.parametrize("internal", [False, True])
def test_the_rule_engines_view_has_the_catalogs_fields(internal: bool) -> None:
    view = indicator_view(apply_sighting(None, sighting(**DETAILED, internal=internal)))
    assert set(view) == set(IndicatorView.__required_keys__)
    [entry] = view["sources"]
    assert set(entry) == set(SourceView.__required_keys__)


def test_dashboards_group_by_filter_fields() -> None:
    assert all(path in FILTER_FIELD_PATHS for path in GROUPABLE)
