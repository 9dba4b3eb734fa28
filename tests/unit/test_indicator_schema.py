"""The indicator's one schema (cte_common.indicator_schema) and what is built on it agree: the answer models,
the catalog of filter fields, the filter language's fields, the plain-dict view the rule-engine evaluates,
and the ingest-api's answers (the same names, the same per-source fields, the same bytes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from pydantic import TypeAdapter

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
from ingest_api.indicators.domain import indicator_out, sighting_out
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
def test_the_rule_engines_view_has_the_catalogs_fields_and_the_answers_values(internal: bool) -> None:
    ev = sighting(**DETAILED, internal=internal)
    view = indicator_view(apply_sighting(None, ev))
    assert set(view) == set(IndicatorView.__required_keys__)
    [entry] = view["sources"]
    assert set(entry) == set(SourceView.__required_keys__)
    answer = sighting_out(ev).model_dump()
    assert {f.name: view[f.name] for f in TOP} == {f.name: answer[f.name] for f in TOP}
    assert {f.name: entry[f.name] for f in PER_SOURCE} == {f.name: answer["sources"][0][f.name] for f in PER_SOURCE}


def rows(expires_at: datetime | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A read-model row of ``indicators`` and its ``indicator_sources`` rows."""
    row = {
        "value": "evil.example",
        "type": "domain",
        "test": False,
        "safe": False,
        "active": True,
        "expires_at": expires_at,
        "source": "DW",
        "first_seen": T0,
        "last_seen": T0 + timedelta(hours=2),
        "reputation": None,
        "severity": "high",
        "comments": "",
        "extended_information": "",
        "internal_hits": 1,
        "external_hits": 2,
        "shared_with": ["tenant-a"],
        "created_at": T0,
        "updated_at": T0,
    }
    source = {
        "value": "evil.example",
        "internal_hits": 1,
        "external_hits": 0,
        "first_seen": T0,
        "last_seen": T0 + timedelta(hours=1),
        "reputation": 7,
        "severity": "high",
        "comments": "seen",
        "extended_information": "https://intel.example/evil",
        "tags": ["a", "b"],
        "retracted": False,
    }
    return row, [{**source, "source": "DW"}, {**source, "source": "Other", "tags": ["b", "c"], "retracted": True}]


@pytest.mark.parametrize("expires_at", [None, T0 + timedelta(days=30)])
def test_a_read_model_answer_is_the_model_and_keeps_the_bytes_of_the_plain_dict(expires_at: datetime | None) -> None:
    row, sources = rows(expires_at)
    plain = indicator_out(row, sources)
    assert list(plain) == ANSWER_KEYS
    assert [list(s) for s in plain["sources"]] == [SOURCE_KEYS, SOURCE_KEYS]
    # The API wrote the plain dict as FastAPI writes an untyped answer; the model must write the same bytes.
    untyped = TypeAdapter(Any).dump_json([plain])
    assert TypeAdapter(list[IndicatorOut]).dump_json([IndicatorOut.model_validate(plain)]) == untyped
    assert plain["tags"] == ["a", "b", "c"]


# What the API answered a write of this sighting with before the answer was a model, byte for byte.
SIGHTING_ANSWER = (
    '{"value":"evil.example","type":"domain","test":false,"safe":false,"active":true,"internalHits":1,'
    '"externalHits":0,"expiresAt":null,"source":"DW","sharedWith":[],"tags":["a","b"],'
    '"firstSeen":"2026-05-01T12:30:15.123456Z","lastSeen":"2026-05-01T13:30:15.123456Z","reputation":7,'
    '"severity":"high","comments":"seen","extendedInformation":"https://intel.example/evil","sources":[{'
    '"source":"DW","internalHits":1,"externalHits":0,"firstSeen":"2026-05-01T12:30:15.123456Z",'
    '"lastSeen":"2026-05-01T13:30:15.123456Z","reputation":7,"severity":"high","comments":"seen",'
    '"extendedInformation":"https://intel.example/evil","tags":["a","b"],"destinations":[],"retracted":false,'
    '"retractionDestinations":[]}]}'
)


def test_a_sightings_answer_keeps_its_bytes() -> None:
    answer = sighting_out(sighting(**DETAILED, expires_at=None, internal=True))
    assert TypeAdapter(list[IndicatorOut]).dump_json([answer]).decode() == f"[{SIGHTING_ANSWER}]"


def test_dashboards_group_by_filter_fields() -> None:
    assert all(path in FILTER_FIELD_PATHS for path in GROUPABLE)
