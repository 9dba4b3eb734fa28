"""The indicator filter language: both surface forms, the SQL renderer and the Python evaluator."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cte_common.query import (
    MATCH_ALL,
    And,
    Compare,
    ElemMatch,
    Node,
    Nor,
    Not,
    Or,
    QueryError,
    SqlParams,
    compile_predicate,
    evaluate,
    negate,
    parse_json,
    parse_text,
    referenced_tags,
    to_json,
    to_sql,
    to_text,
)

EVERY_SEVERITY = ("unknown", "low", "medium", "high", "critical")
EVERY_TYPE = ("url", "domain", "hostname", "fqdn", "ipv4", "ipv6", "md5", "sha256")
HOSTILE = "x'); DROP TABLE indicators; --"
JAN1 = datetime(2024, 1, 1, tzinfo=UTC)


def c(field: str, op: Any, value: Any) -> Compare:
    return Compare(field, op, value)


def src(field: str, op: Any, value: Any) -> ElemMatch:
    return ElemMatch(Compare(field, op, value))


# --- every operator, in both forms -------------------------------------------------------------------

# (text form, JSON form, expected AST): both parsers must give exactly the expected AST.
BOTH_FORMS: list[tuple[str, dict[str, Any], Node]] = [
    # text fields
    ('value = "a.com"', {"value": "a.com"}, c("value", "eq", "a.com")),
    ('value == "a.com"', {"value": {"$eq": "a.com"}}, c("value", "eq", "a.com")),
    ('value Is equal "a.com"', {"value": {"$eq": "a.com"}}, c("value", "eq", "a.com")),
    ('value != "a.com"', {"value": {"$ne": "a.com"}}, c("value", "ne", "a.com")),
    ('value != "a.com"', {"value": {"$not": "a.com"}}, c("value", "ne", "a.com")),
    ('value Like "evil"', {"value": {"$regex": "evil"}}, c("value", "like", "evil")),
    ('NOT value Like "evil"', {"value": {"$not": {"$regex": "evil"}}}, Not(c("value", "like", "evil"))),
    ('type IN ("url", "md5")', {"type": {"$in": ["url", "md5"]}}, c("type", "in", ("url", "md5"))),
    ('type NOT IN ("url")', {"type": {"$nin": ["url"]}}, c("type", "nin", ("url",))),
    ('type ANY IN ("url")', {"type": {"$in": ["url"]}}, c("type", "in", ("url",))),
    ("type IN ()", {"type": {"$in": []}}, c("type", "in", ())),
    ('type = "URL"', {"type": "Url"}, c("type", "eq", "url")),
    ('type != "md5"', {"type": {"$ne": "MD5"}}, c("type", "ne", "md5")),
    ('type NOT IN ("IPv4", "ipv6")', {"type": {"$nin": ["ipv4", "IPV6"]}}, c("type", "nin", ("ipv4", "ipv6"))),
    ('value IN ("a", "B")', {"value": {"$in": ["a", "B"]}}, c("value", "in", ("a", "B"))),
    # numbers
    ("internalHits = 3", {"internalHits": 3}, c("internalHits", "eq", 3)),
    ("internalHits == 3", {"internalHits": {"$eq": 3.0}}, c("internalHits", "eq", 3)),
    ("internalHits != 3", {"internalHits": {"$ne": 3}}, c("internalHits", "ne", 3)),
    ("internalHits < 3", {"internalHits": {"$lt": 3}}, c("internalHits", "lt", 3)),
    ("internalHits <= 3", {"internalHits": {"$lte": 3}}, c("internalHits", "lte", 3)),
    ("externalHits > -1", {"externalHits": {"$gt": -1}}, c("externalHits", "gt", -1)),
    ("externalHits >= 1e2", {"externalHits": {"$gte": 100}}, c("externalHits", "gte", 100)),
    ("netskopeHits > 0", {"internalHits": {"$gt": 0}}, c("internalHits", "gt", 0)),
    # booleans
    ("active = true", {"active": True}, c("active", "eq", True)),
    ("test != false", {"test": {"$ne": False}}, c("test", "ne", False)),
    ("safe Is equal false", {"safe": {"$eq": False}}, c("safe", "eq", False)),
    # dates
    ('expiresAt < "2024-01-01"', {"expiresAt": {"$lt": "2024-01-01T00:00:00Z"}}, c("expiresAt", "lt", JAN1)),
    (
        'expiresAt >= "2024-01-01T01:00:00+01:00"',
        {"expiresAt": {"$gte": "2024-01-01T00:00:00"}},
        c("expiresAt", "gte", JAN1),
    ),
    ('expiresAt > "2024-01-01"', {"expiresAt": {"$gt": JAN1}}, c("expiresAt", "gt", JAN1)),
    ('expiresAt <= "2024-01-01"', {"expiresAt": {"$lte": "2024-01-01"}}, c("expiresAt", "lte", JAN1)),
    ('expiresAt = "2024-01-01"', {"expiresAt": "2024-01-01"}, c("expiresAt", "eq", JAN1)),
    ('expiresAt != "2024-01-01"', {"expiresAt": {"$ne": "2024-01-01"}}, c("expiresAt", "ne", JAN1)),
    ("expiresAt = null", {"expiresAt": None}, c("expiresAt", "eq", None)),
    ("expiresAt != null", {"expiresAt": {"$ne": None}}, c("expiresAt", "ne", None)),
    # sharedWith (array)
    ('sharedWith IN ("tenant")', {"sharedWith": {"$in": ["tenant"]}}, c("sharedWith", "in", ("tenant",))),
    (
        'sharedWith NOT IN ("a", "b")',
        {"sharedWith": {"$nin": ["a", "b"]}},
        c("sharedWith", "nin", ("a", "b")),
    ),
    # per-source fields, prefixed and bare
    ('sources.source = "feed"', {"sources": {"$elemMatch": {"source": "feed"}}}, src("source", "eq", "feed")),
    (
        'source != "feed"',
        {"sources": {"$elemMatch": {"source": {"$ne": "feed"}}}},
        src("source", "ne", "feed"),
    ),
    (
        "sources.reputation >= 7",
        {"sources": {"$elemMatch": {"reputation": {"$gte": 7}}}},
        src("reputation", "gte", 7),
    ),
    ("reputation < 3", {"sources": {"$elemMatch": {"reputation": {"$lt": 3}}}}, src("reputation", "lt", 3)),
    (
        "sources.reputation = null",
        {"sources": {"$elemMatch": {"reputation": None}}},
        src("reputation", "eq", None),
    ),
    (
        'severity IN ("high", "CRITICAL")',
        {"sources": {"$elemMatch": {"severity": {"$in": ["high", "critical"]}}}},
        src("severity", "in", ("high", "critical")),
    ),
    (
        'sources.severity NOT IN ("low")',
        {"sources": {"$elemMatch": {"severity": {"$nin": ["low"]}}}},
        src("severity", "nin", ("low",)),
    ),
    (
        'sources.severity = "high"',
        {"sources": {"$elemMatch": {"severity": {"$eq": "high"}}}},
        src("severity", "eq", "high"),
    ),
    (
        'severity != "low"',
        {"sources": {"$elemMatch": {"severity": {"$ne": "low"}}}},
        src("severity", "ne", "low"),
    ),
    (
        'tags IN ("invalid")',
        {"sources": {"$elemMatch": {"tags": {"$in": ["invalid"]}}}},
        src("tags", "in", ("invalid",)),
    ),
    (
        'sources.tags NOT IN ("a")',
        {"sources": {"$elemMatch": {"tags": {"$nin": ["a"]}}}},
        src("tags", "nin", ("a",)),
    ),
    (
        'comments Like "phish"',
        {"sources": {"$elemMatch": {"comments": {"$regex": "phish"}}}},
        src("comments", "like", "phish"),
    ),
    (
        'sources.extendedInformation = "https://x"',
        {"sources": {"$elemMatch": {"extendedInformation": "https://x"}}},
        src("extendedInformation", "eq", "https://x"),
    ),
    (
        'sources.comments NOT IN ("a")',
        {"sources": {"$elemMatch": {"comments": {"$nin": ["a"]}}}},
        src("comments", "nin", ("a",)),
    ),
    (
        'sources.firstSeen > "2024-01-01"',
        {"sources": {"$elemMatch": {"firstSeen": {"$gt": "2024-01-01"}}}},
        src("firstSeen", "gt", JAN1),
    ),
    (
        'lastSeen <= "2024-01-01"',
        {"sources": {"$elemMatch": {"lastSeen": {"$lte": "2024-01-01"}}}},
        src("lastSeen", "lte", JAN1),
    ),
    (
        "sources.internalHits > 1",
        {"sources": {"$elemMatch": {"internalHits": {"$gt": 1}}}},
        src("internalHits", "gt", 1),
    ),
    (
        "sources.netskopeHits > 1",
        {"sources": {"$elemMatch": {"internalHits": {"$gt": 1}}}},
        src("internalHits", "gt", 1),
    ),
    (
        "sources.externalHits = 0",
        {"sources": {"$elemMatch": {"externalHits": 0}}},
        src("externalHits", "eq", 0),
    ),
    (
        "sources.retracted = false",
        {"sources": {"$elemMatch": {"retracted": False}}},
        src("retracted", "eq", False),
    ),
    (
        "retracted != true",
        {"sources": {"$elemMatch": {"retracted": {"$ne": True}}}},
        src("retracted", "ne", True),
    ),
    # connectors, precedence, grouping
    (
        'active = true && type = "url"',
        {"active": True, "type": "url"},
        And((c("active", "eq", True), c("type", "eq", "url"))),
    ),
    (
        'active = true and type = "url" AND test = false',
        {"$and": [{"active": True}, {"type": "url"}, {"test": False}]},
        And((c("active", "eq", True), c("type", "eq", "url"), c("test", "eq", False))),
    ),
    (
        'active = true || type = "url" or test = false',
        {"$or": [{"active": True}, {"type": "url"}, {"test": False}]},
        Or((c("active", "eq", True), c("type", "eq", "url"), c("test", "eq", False))),
    ),
    (
        'active = true || type = "url" && test = false',
        {"$or": [{"active": True}, {"$and": [{"type": "url"}, {"test": False}]}]},
        Or((c("active", "eq", True), And((c("type", "eq", "url"), c("test", "eq", False))))),
    ),
    (
        '(active = true || type = "url") && test = false',
        {"$and": [{"$or": [{"active": True}, {"type": "url"}]}, {"test": False}]},
        And((Or((c("active", "eq", True), c("type", "eq", "url"))), c("test", "eq", False))),
    ),
    (
        'NOT active = true && type = "url"',
        {"$and": [{"$nor": [{"active": True}]}, {"type": "url"}]},
        And((Not(c("active", "eq", True)), c("type", "eq", "url"))),
    ),
    (
        'not (active = true || type = "url")',
        {"$nor": [{"active": True}, {"type": "url"}]},
        Nor((c("active", "eq", True), c("type", "eq", "url"))),
    ),
    (
        'NOT (active = true && type = "url")',
        {"$nor": [{"$and": [{"active": True}, {"type": "url"}]}]},
        Not(And((c("active", "eq", True), c("type", "eq", "url")))),
    ),
    (
        "internalHits > 1 && internalHits < 5",
        {"internalHits": {"$gt": 1, "$lt": 5}},
        And((c("internalHits", "gt", 1), c("internalHits", "lt", 5))),
    ),
    # one source entry vs possibly two
    (
        'sources(severity = "high" && tags IN ("a"))',
        {"sources": {"$elemMatch": {"severity": "high", "tags": {"$in": ["a"]}}}},
        ElemMatch(And((c("severity", "eq", "high"), c("tags", "in", ("a",))))),
    ),
    (
        'sources.severity = "high" && sources.tags IN ("a")',
        {
            "$and": [
                {"sources": {"$elemMatch": {"severity": "high"}}},
                {"sources": {"$elemMatch": {"tags": {"$in": ["a"]}}}},
            ]
        },
        And((src("severity", "eq", "high"), src("tags", "in", ("a",)))),
    ),
    (
        'sources(NOT internalHits > 2 || source = "x")',
        {"sources": {"$elemMatch": {"$or": [{"$nor": [{"internalHits": {"$gt": 2}}]}, {"source": "x"}]}}},
        ElemMatch(Or((Not(c("internalHits", "gt", 2)), c("source", "eq", "x")))),
    ),
]


@pytest.mark.parametrize(("text", "document", "expected"), BOTH_FORMS)
def test_both_forms_parse_to_the_expected_ast(text: str, document: dict[str, Any], expected: Node) -> None:
    assert parse_text(text) == expected
    assert parse_json(document) == expected
    assert parse_json(json.dumps(document, default=str)) == expected


def test_every_severity_rule_is_the_same_in_both_forms() -> None:
    text = parse_text('sources.severity IN ("unknown","low","medium","high","critical")')
    mongo = parse_json({"sources": {"$elemMatch": {"severity": {"$in": list(EVERY_SEVERITY)}}}})
    assert text == mongo == ElemMatch(Compare("severity", "in", EVERY_SEVERITY))


def test_empty_filter_matches_everything() -> None:
    for node in (parse_text(""), parse_text("  \n"), parse_json("{}"), parse_json({})):
        assert node == MATCH_ALL
    assert to_text(MATCH_ALL) == ""
    assert to_json(MATCH_ALL) == {}
    assert to_sql(MATCH_ALL, SqlParams()) == "TRUE"
    assert evaluate(MATCH_ALL, {})


def test_keywords_are_case_insensitive_and_field_names_are_not() -> None:
    assert parse_text('value in ("a") And value LIKE "b" oR NoT active = TRUE') == Or(
        (
            And((c("value", "in", ("a",)), c("value", "like", "b"))),
            Not(c("active", "eq", True)),
        )
    )
    assert parse_text('value is EQUAL "x"') == c("value", "eq", "x")
    with pytest.raises(QueryError, match="unknown field 'Value'"):
        parse_text('Value = "x"')


def test_canonical_forms() -> None:
    a, b = {"value": "a"}, {"type": "url"}
    ca, cb = c("value", "eq", "a"), c("type", "eq", "url")
    # single-element lists are their element; one-element $nor is Not; $nor of an $or is Nor
    assert parse_json({"$and": [a]}) == parse_json({"$or": [a]}) == ca
    assert parse_json({"$nor": [a]}) == parse_text('NOT value = "a"') == Not(ca)
    assert parse_json({"$nor": [{"$or": [a, b]}]}) == parse_json({"$nor": [a, b]}) == Nor((ca, cb))
    assert negate(Or((ca, cb))) == Nor((ca, cb))
    assert negate(ca) == Not(ca)
    # explicit nesting is kept, chains are flat, redundant parentheses vanish
    assert parse_text('(value = "a" && type = "url") && active = true') == And((And((ca, cb)), c("active", "eq", True)))
    assert parse_text('((value = "a"))') == ca
    assert parse_text('NOT NOT value = "a"') == Not(Not(ca))


def test_string_escapes_in_text() -> None:
    assert parse_text(r'value = "a\"b\\c\n\t\r\/\u00e9"') == c("value", "eq", 'a"b\\c\n\t\r/é')
    assert parse_text('value = "multi\nline"') == c("value", "eq", "multi\nline")


def test_dates_are_utc() -> None:
    naive = parse_json({"expiresAt": {"$gt": datetime(2024, 1, 1)}})
    offset = parse_json({"expiresAt": {"$gt": datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))}})
    assert naive == offset == c("expiresAt", "gt", JAN1)
    assert isinstance(naive, Compare)
    assert isinstance(naive.value, datetime)
    assert naive.value.tzinfo is UTC
    # strings on text fields are never dates
    assert parse_json({"value": "2024-01-01"}) == c("value", "eq", "2024-01-01")


def test_the_string_null_in_a_list_stays_a_string() -> None:
    assert parse_json({"value": {"$in": ["null"]}}) == c("value", "in", ("null",))
    assert parse_text('value IN ("null")') == c("value", "in", ("null",))


def test_severity_is_normalised_to_lower_case() -> None:
    assert parse_json({"sources": {"$elemMatch": {"severity": "HIGH"}}}) == src("severity", "eq", "high")


@pytest.mark.parametrize("kind", EVERY_TYPE)
def test_every_type_is_accepted_in_any_case_and_lower_cased(kind: str) -> None:
    for spelling in (kind, kind.upper(), kind.title()):
        assert parse_json({"type": spelling}) == c("type", "eq", kind)
        assert parse_text(f'type IN ("{spelling}")') == c("type", "in", (kind,))


def test_type_is_an_indicator_type() -> None:
    assert parse_json({"type": "URL"}) == c("type", "eq", "url")
    assert to_text(parse_json({"type": "URL"})) == 'type = "url"'
    assert to_json(parse_text('type = "URL"')) == {"type": "url"}
    not_a_type = "'colour' is not an indicator type (one of url, domain, hostname, fqdn, ipv4, ipv6, md5, sha256)"
    with pytest.raises(QueryError, match=re.escape("filters.type: " + not_a_type)):
        parse_json({"type": "colour"})
    with pytest.raises(QueryError, match=re.escape("position 7: type: " + not_a_type)):
        parse_text('type = "colour"')
    with pytest.raises(
        QueryError,
        match=re.escape("filters.type.$regex: operator $regex cannot be used on type (an indicator type field)"),
    ):
        parse_json({"type": {"$regex": "x"}})
    with pytest.raises(QueryError, match=re.escape("operator Like cannot be used on type (an indicator type field)")):
        parse_text('type Like "url"')
    # exact comparison, so a plain index on indicators.type serves it
    params = SqlParams()
    assert to_sql(parse_text('type IN ("url","md5")'), params) == "i.type = ANY ($1::text[])"
    assert params.values == [["url", "md5"]]
    params = SqlParams()
    assert to_sql(parse_text('type IN ("URL","md5") && active = true'), params) == (
        "((i.type = ANY ($1::text[])) AND (i.active = $2::boolean))"
    )
    assert params.values == [["url", "md5"], True]


def test_type_and_severity_compare_exactly_with_stored_values() -> None:
    # The query side is lower-cased at parse time and stored values are lower-case, so the stored side
    # is not folded: like SQL's `=`, an upper-case stored value does not match.
    assert evaluate(parse_text('type = "DOMAIN"'), {"type": "domain"}) is True
    assert evaluate(parse_text('type = "domain"'), {"type": "DOMAIN"}) is False
    assert evaluate(parse_text('type != "domain"'), {"type": "DOMAIN"}) is True
    assert evaluate(parse_text('type IN ("domain", "url")'), {"type": "Domain"}) is False
    assert evaluate(parse_text('type NOT IN ("domain")'), {"type": "Domain"}) is True
    assert evaluate(parse_text('severity = "HIGH"'), {"sources": [{"severity": "high"}]}) is True
    assert evaluate(parse_text('severity = "high"'), {"sources": [{"severity": "HIGH"}]}) is False
    assert evaluate(parse_text('severity IN ("high")'), {"sources": [{"severity": "High"}]}) is False
    # text fields still fold both sides
    assert evaluate(parse_text('value = "evil.example.com"'), {"value": "EVIL.example.com"}) is True
    assert evaluate(parse_text('value IN ("evil.example.com")'), {"value": "EVIL.example.com"}) is True


# --- errors ------------------------------------------------------------------------------------------

DEEP_JSON: dict[str, Any] = {"active": True}
for _ in range(40):
    DEEP_JSON = {"$nor": [DEEP_JSON]}

JSON_ERRORS: list[tuple[Any, str]] = [
    ({"sources": {"$elemMatch": {"colour": "red"}}}, "filters.sources.$elemMatch.colour: unknown field"),
    ({"colour": 1}, "filters.colour: unknown field"),
    ({"value": {"$foo": 1}}, "filters.value.$foo: unknown operator"),
    ({"value": {"$options": "i", "$regex": "a"}}, "filters.value.$options: unknown operator"),
    ({"$where": "1"}, "filters.$where: unknown operator"),
    ({"value": {"$eq": "a", "x": 1}}, "filters.value.x: expected an operator such as $eq, not a field"),
    ({"value": 5}, "filters.value: expected a string, got a number"),
    ({"value": ["a"]}, "filters.value: expected a string, got a list"),
    ({"value": {}}, "filters.value: empty operator object"),
    ({"value": {"$in": "a"}}, "filters.value.$in: expected a list, got a string"),
    ({"value": {"$nin": ["a", 1]}}, "filters.value.$nin: item 1: expected a string, got a number"),
    ({"value": {"$regex": None}}, "filters.value.$regex: value is never null"),
    ({"value": {"$in": [None]}}, "filters.value.$in: item 0: expected a string, got null"),
    ({"sources.tags": {"$in": ["a"]}}, "filters.sources.tags: unknown field"),
    ({"value": {"$gt": "a"}}, "filters.value.$gt: operator $gt cannot be used on value (a text field)"),
    ({"value": {"$not": {"$not": "a"}}}, "filters.value.$not: $not cannot be nested"),
    ({"value": "a\x00"}, "filters.value: strings cannot contain NUL characters"),
    ({"value": "\ud800"}, "filters.value: string is not valid Unicode"),
    ({"internalHits": "5"}, "filters.internalHits: expected an integer, got a string"),
    ({"internalHits": 2.5}, "filters.internalHits: expected an integer, got 2.5"),
    ({"internalHits": True}, "filters.internalHits: expected an integer, got a boolean"),
    ({"internalHits": 2**63}, "filters.internalHits: integer out of range"),
    (
        {"internalHits": {"$regex": "1"}},
        "filters.internalHits.$regex: operator $regex cannot be used on internalHits",
    ),
    ({"internalHits": {"$in": [1]}}, "filters.internalHits.$in: operator $in cannot be used on internalHits"),
    ({"internalHits": {"$not": {"$gt": 1}}}, "filters.internalHits.$not: operator $not cannot be used"),
    ({"active": "true"}, "filters.active: expected true or false, got a string"),
    ({"active": {"$gt": True}}, "filters.active.$gt: operator $gt cannot be used on active"),
    ({"expiresAt": "soon"}, "filters.expiresAt: expected an ISO 8601 date, got 'soon'"),
    ({"expiresAt": 1700000000}, "filters.expiresAt: expected an ISO 8601 date string, got a number"),
    ({"expiresAt": {"$gt": None}}, "filters.expiresAt.$gt: null can only be compared with equality"),
    ({"sharedWith": "a"}, "filters.sharedWith: expected an operator object ($in or $nin)"),
    ({"sharedWith": {"$eq": "a"}}, "filters.sharedWith.$eq: operator $eq cannot be used on sharedWith"),
    ({"sources": {"severity": "high"}}, 'filters.sources: expected {"$elemMatch": {...}}'),
    ({"sources": {"$elemMatch": {}}}, "filters.sources.$elemMatch: empty condition"),
    (
        {"sources": {"$elemMatch": {"firstSeen": None}}},
        "filters.sources.$elemMatch.firstSeen: firstSeen is never null",
    ),
    ({"sources": {"$elemMatch": {"severity": {"$in": ["severe"]}}}}, "item 0: 'severe' is not a severity"),
    ({"type": "colour"}, "filters.type: 'colour' is not an indicator type (one of url, domain, hostname"),
    ({"type": {"$in": ["url", "colour"]}}, "filters.type.$in: item 1: 'colour' is not an indicator type"),
    ({"type": 5}, "filters.type: expected a string, got a number"),
    ({"type": None}, "filters.type: type is never null"),
    (
        {"type": {"$regex": "x"}},
        "filters.type.$regex: operator $regex cannot be used on type (an indicator type field)",
    ),
    ({"type": {"$gt": "url"}}, "filters.type.$gt: operator $gt cannot be used on type (an indicator type field)"),
    (
        {"sources": {"$elemMatch": {"severity": {"$regex": "hi"}}}},
        "operator $regex cannot be used on severity",
    ),
    (
        {"sources": {"$elemMatch": {"tags": "a"}}},
        "filters.sources.$elemMatch.tags: expected an operator object",
    ),
    (
        {"sources": {"$elemMatch": {"tags": {"$in": "a"}}}},
        "filters.sources.$elemMatch.tags.$in: expected a list",
    ),
    (
        {"sources": {"$elemMatch": {"sources": {"$elemMatch": {"source": "a"}}}}},
        "filters.sources.$elemMatch.sources: unknown field",
    ),
    ({"sources": {"$elemMatch": {"value": "a"}}}, "filters.sources.$elemMatch.value: unknown field"),
    ({"$and": []}, "filters.$and: expected a non-empty list of conditions"),
    ({"$or": {"value": "a"}}, "filters.$or: expected a non-empty list of conditions"),
    ({"$nor": [{}]}, "filters.$nor[0]: empty condition"),
    ({"$and": [{"value": "a"}, 1]}, "filters.$and[1]: expected an object, got a number"),
    ({"$or": [{"colour": 1}]}, "filters.$or[0].colour: unknown field"),
    ("{", "filters: invalid JSON"),
    ('{"value": "a", "value": "b"}', "filters: duplicate key 'value'"),
    ('{"internalHits": NaN}', "filters: invalid JSON"),
    ("[]", "filters: expected a JSON object, got a list"),
    ("[" * 100_000, "filters: invalid JSON"),
    (DEEP_JSON, "nested deeper than 32 levels"),
    ({"$or": [{"internalHits": n} for n in range(1000)]}, "filters: more than 1000 conditions"),
]


@pytest.mark.parametrize(("document", "message"), JSON_ERRORS)
def test_json_errors_name_the_problem_and_the_path(document: Any, message: str) -> None:
    with pytest.raises(QueryError, match=re.escape(message)) as caught:
        parse_json(document)
    assert caught.value.path is not None
    assert caught.value.message.startswith(caught.value.path + ": ")


def test_json_error_root_name_and_limits_at_the_edge() -> None:
    with pytest.raises(QueryError, match=r"^filters\.mongo\.colour: unknown field"):
        parse_json({"colour": 1}, root="filters.mongo")
    at_limit: dict[str, Any] = {"active": True}
    for _ in range(31):
        at_limit = {"$nor": [at_limit]}
    parse_json(at_limit)  # depth 32
    with pytest.raises(QueryError, match="nested deeper than 32 levels"):
        parse_json({"$nor": [at_limit]})
    parse_json({"$or": [{"internalHits": n} for n in range(999)]})  # 1000 nodes


TEXT_ERRORS: list[tuple[str, int | None, str]] = [
    ('colour = "red"', 0, "unknown field 'colour'"),
    ('type = "url" &&', 15, "expected a field, '(' or NOT, got end of query"),
    ('type "url"', 5, "expected an operator (=, !=, <, <=, >, >=, Like, Is equal, IN, NOT IN) after 'type'"),
    ("type = url", 7, "strings must be double-quoted"),
    ("type = 'url'", 7, 'unexpected character "\'" (use double quotes)'),
    ('type = "url', 7, "unterminated string"),
    ('type = "u\\q"', 9, "invalid escape '\\\\q' in string"),
    ('(type = "url"', 13, "expected ')' to close '(' at position 0"),
    ('type = "url")', 12, "unexpected ')'"),
    ('type = "a" & value = "b"', 11, "unexpected character '&' (did you mean '&&'?)"),
    ('type = "a" | value = "b"', 11, "did you mean '||'?"),
    ("type NOT value", 9, "expected IN after NOT"),
    ('type IS "a"', 8, "expected EQUAL after IS"),
    ('type IN "url"', 8, 'expected a parenthesised list after IN, like ("a", "b")'),
    ('type IN ("a" "b")', 13, "expected ',' or ')' in the list"),
    ('type = ("a")', 7, "a list is only allowed after IN / NOT IN"),
    ('value < "a"', 6, "operator < cannot be used on value (a text field)"),
    ('type < "url"', 5, "operator < cannot be used on type (an indicator type field)"),
    ('type Like "url"', 5, "operator Like cannot be used on type (an indicator type field)"),
    ('type = "colour"', 7, "type: 'colour' is not an indicator type"),
    ('type IN ("url", "a")', 8, "type: item 1: 'a' is not an indicator type"),
    ('internalHits Like "1"', 13, "operator Like cannot be used on internalHits (a number field)"),
    ('internalHits > "1"', 15, "internalHits: expected an integer, got a string"),
    ("internalHits > 1.5", 15, "internalHits: expected an integer, got 1.5"),
    ("internalHits > 99999999999999999999", 15, "integer out of range"),
    ("internalHits > " + "9" * 5000, 15, "number too long"),
    ("active = 1", 9, "active: expected true or false, got a number"),
    ("expiresAt > null", 12, "null can only be compared with equality"),
    ('expiresAt > "tomorrow"', 12, "expected an ISO 8601 date, got 'tomorrow'"),
    ("sources.lastSeen = null", 19, "lastSeen is never null"),
    ('severity = "severe"', 11, "'severe' is not a severity"),
    ('tags = "a"', 5, "operator = cannot be used on tags (a list field)"),
    ('sharedWith Like "a"', 11, "operator Like cannot be used on sharedWith"),
    ("sources.colour = 1", 0, "unknown field 'sources.colour'"),
    ("sources = 1", 0, "unknown field 'sources' (use sources.<field> or sources(...))"),
    ('sources(sources.severity = "high")', 8, "inside sources(...) write 'severity'"),
    ('sources(sources(source = "a"))', 8, "sources(...) cannot be nested"),
    ('sources(value = "a")', 8, "unknown source field 'value'"),
    ('sources(source = "a"', 20, "expected ')' to close 'sources(' at position 7"),
    ('value = "\\u0000"', 8, "strings cannot contain NUL characters"),
    ('value = "\\ud800"', 8, "string is not valid Unicode"),
    ("active = true ! ", 14, "unexpected character '!'"),
    ("(" * 70 + "active = true" + ")" * 70, 66, "nested deeper than 32 levels"),
    ("NOT " * 40 + "active = true", None, "query nested deeper than 32 levels"),
    (" || ".join(["active = true"] * 1001), None, "query more than 1000 conditions"),
]


@pytest.mark.parametrize(("text", "position", "message"), TEXT_ERRORS)
def test_text_errors_carry_the_position(text: str, position: int | None, message: str) -> None:
    with pytest.raises(QueryError, match=re.escape(message)) as caught:
        parse_text(text)
    assert caught.value.position == position
    if position is not None:
        assert caught.value.message.startswith(f"position {position}: ")


# --- SQL ---------------------------------------------------------------------------------------------


def sql_of(text: str, start: int = 1) -> tuple[str, list[object]]:
    params = SqlParams(start)
    return to_sql(parse_text(text), params), params.values


S1 = "EXISTS (SELECT 1 FROM indicator_sources s1 WHERE s1.value = i.value AND "

SQL_SHAPES: list[tuple[str, str, list[object]]] = [
    ('value = "A"', 'lower((i.value) COLLATE "default") = lower($1::text)', ["A"]),
    ('value != "A"', 'lower((i.value) COLLATE "default") IS DISTINCT FROM lower($1::text)', ["A"]),
    ('value Like "ev"', 'strpos(lower((i.value) COLLATE "default"), lower($1::text)) > 0', ["ev"]),
    (
        'value IN ("A")',
        '(lower((i.value) COLLATE "default") = ANY (SELECT lower(u.x) FROM unnest($1::text[]) AS u(x)))',
        [["A"]],
    ),
    (
        'value NOT IN ("A")',
        'NOT (lower((i.value) COLLATE "default") = ANY (SELECT lower(u.x) FROM unnest($1::text[]) AS u(x)))',
        [["A"]],
    ),
    # type and severity: closed vocabularies, lower-cased at parse time, compared exactly
    ('type = "URL"', "i.type = $1::text", ["url"]),
    ('type != "url"', "i.type IS DISTINCT FROM $1::text", ["url"]),
    ('type IN ("url", "MD5")', "i.type = ANY ($1::text[])", [["url", "md5"]]),
    ('type NOT IN ("url")', "NOT (i.type = ANY ($1::text[]))", [["url"]]),
    ('NOT type IN ("url")', "NOT (i.type = ANY ($1::text[]))", [["url"]]),
    ('severity = "High"', S1 + "(s1.severity = $1::text))", ["high"]),
    ('severity != "low"', S1 + "(s1.severity IS DISTINCT FROM $1::text))", ["low"]),
    ('severity IN ("high", "critical")', S1 + "(s1.severity = ANY ($1::text[])))", [["high", "critical"]]),
    ('severity NOT IN ("low")', S1 + "(NOT (s1.severity = ANY ($1::text[]))))", [["low"]]),
    ("internalHits >= 2", "i.internal_hits >= $1::bigint", [2]),
    ("externalHits != 2", "i.external_hits IS DISTINCT FROM $1::bigint", [2]),
    ("active = true", "i.active = $1::boolean", [True]),
    ('expiresAt < "2024-01-01"', "i.expires_at < $1::timestamptz", [JAN1]),
    ("expiresAt = null", "i.expires_at IS NULL", []),
    ("expiresAt != null", "i.expires_at IS NOT NULL", []),
    # NOT of a nullable column's comparison: NULL must count as "not matched", then be negated to true
    ('NOT expiresAt < "2024-01-01"', "(i.expires_at < $1::timestamptz) IS NOT TRUE", [JAN1]),
    ('sharedWith IN ("d")', "i.shared_with && $1::text[]", [["d"]]),
    ('sharedWith NOT IN ("d")', "NOT (i.shared_with && $1::text[])", [["d"]]),
    (
        'tags IN ("a", "b")',
        S1 + "(s1.tags && $1::text[]))",
        [["a", "b"]],
    ),
    (
        'tags NOT IN ("a")',
        S1 + "(NOT (s1.tags && $1::text[])))",
        [["a"]],
    ),
    (
        "reputation > 5",
        S1 + "(s1.reputation > $1::bigint))",
        [5],
    ),
    (
        'NOT sources(severity = "high")',
        "NOT (" + S1 + "(s1.severity = $1::text)))",
        ["high"],
    ),
    (
        'active = true && (type = "url" || internalHits > 1)',
        "((i.active = $1::boolean) AND ((i.type = $2::text) OR (i.internal_hits > $3::bigint)))",
        [True, "url", 1],
    ),
    (
        'NOT (active = true || type = "url")',
        "NOT ((i.active = $1::boolean) OR (i.type = $2::text))",
        [True, "url"],
    ),
]


@pytest.mark.parametrize(("text", "sql", "values"), SQL_SHAPES)
def test_sql_shape(text: str, sql: str, values: list[object]) -> None:
    assert sql_of(text) == (sql, values)


def test_sql_placeholders_start_where_the_caller_says_and_aliases_are_unique() -> None:
    params = SqlParams(start=3)
    params_before = params.add("caller's own")  # a caller may also add its own parameters
    first = to_sql(parse_text('sources.severity = "high" && sources.tags IN ("a")'), params)
    second = to_sql(parse_text('sources(source = "feed")'), params)
    assert params_before == "$3"
    assert "$4::text" in first
    assert "$5::text[]" in first
    assert "$6::text" in second
    assert params.values == ["caller's own", "high", ["a"], "feed"]
    aliases = re.findall(r"indicator_sources (s\d+)", first + second)
    assert aliases == ["s1", "s2", "s3"]
    with pytest.raises(ValueError, match=r"\$1"):
        SqlParams(0)


@pytest.mark.parametrize(
    "text",
    [
        "value = {h}",
        "value != {h}",
        "value Like {h}",
        "value IN ({h}, {h})",
        "value NOT IN ({h})",
        "sources.comments IN ({h}, {h})",
        "sources(source NOT IN ({h}))",
        "sharedWith IN ({h})",
        "sources.tags NOT IN ({h})",
        "sources.comments Like {h}",
        "sources(source = {h} && extendedInformation != {h})",
    ],
)
def test_hostile_strings_only_reach_params(text: str) -> None:
    quoted = to_text(Compare("value", "eq", HOSTILE)).removeprefix("value = ")
    sql, values = sql_of(text.format(h=quoted))
    assert HOSTILE not in sql
    assert "DROP" not in sql
    assert "'" not in sql  # no string literal of any kind
    assert HOSTILE in values or [HOSTILE] in values or [HOSTILE, HOSTILE] in values


def test_hand_built_asts_are_checked_against_the_whitelist() -> None:
    bad: list[Node] = [
        Compare("value; DROP TABLE indicators", "eq", "a"),
        Compare("severity", "eq", "high"),  # a source field at the indicator level
        ElemMatch(Compare("value", "eq", "a")),  # an indicator field in a source entry
        ElemMatch(ElemMatch(Compare("source", "eq", "a"))),
        Compare("value", "gt", "a"),
        Compare("value", "eq", None),
        Compare("type", "like", "url"),  # type is exact-match only
        Compare("type", "gt", "url"),
        Compare("type", "eq", None),
        ElemMatch(Compare("severity", "like", "high")),
    ]
    for node in bad:
        with pytest.raises(QueryError):
            to_sql(node, SqlParams())
        with pytest.raises(QueryError):
            compile_predicate(node)


# --- evaluate ----------------------------------------------------------------------------------------

INDICATOR: dict[str, Any] = {
    "value": "Evil.Example.com",
    "type": "domain",
    "test": False,
    "safe": False,
    "active": True,
    "expiresAt": datetime(2030, 1, 1),  # naive: UTC
    "internalHits": 3,
    "externalHits": 0,
    "sharedWith": ["tenant-a"],
    "sources": [
        {
            "source": "FeedOne",
            "reputation": 8,
            "severity": "high",
            "comments": "Phishing kit",
            "extendedInformation": "",
            "tags": ["phish", "Kit"],
            "firstSeen": datetime(2024, 1, 1, tzinfo=UTC),
            "lastSeen": datetime(2024, 6, 1, tzinfo=UTC),
            "internalHits": 0,
            "externalHits": 2,
            "retracted": False,
        },
        {
            "source": "FeedTwo",
            "reputation": None,
            "severity": "low",
            "comments": "",
            "extendedInformation": "https://intel/x",
            "tags": [],
            "firstSeen": datetime(2023, 1, 1, tzinfo=UTC),
            "lastSeen": datetime(2023, 2, 1, tzinfo=UTC),
            "internalHits": 1,
            "externalHits": 0,
            "retracted": True,
        },
    ],
}

EVALUATIONS: list[tuple[str, bool]] = [
    ('value = "evil.example.com"', True),  # case-insensitive exact
    ('value = "example.com"', False),
    ('value != "EVIL.example.com"', False),
    ('value Like "EXAMPLE"', True),  # case-insensitive substring
    ('value Like ".*"', False),  # not a regular expression
    ('value Like ""', True),
    ('type IN ("URL", "Domain")', True),
    ('type NOT IN ("domain")', False),
    ('type = "DOMAIN"', True),
    ('type != "domain"', False),
    ("type IN ()", False),
    ("type NOT IN ()", True),
    ("internalHits = 3", True),
    ("internalHits != 3", False),
    ("internalHits < 3", False),
    ("internalHits <= 3", True),
    ("externalHits > 0", False),
    ("externalHits >= 0", True),
    ("active = true", True),
    ("test != false", False),
    ("safe = false", True),
    ('expiresAt > "2029-12-31T23:00:00-02:00"', False),  # that is 2030-01-01T01:00Z
    ('expiresAt < "2030-01-01T00:00:01Z"', True),
    ('expiresAt = "2030-01-01"', True),
    ("expiresAt = null", False),
    ("expiresAt != null", True),
    ('sharedWith IN ("tenant-a", "b")', True),
    ('sharedWith IN ("TENANT-A")', False),  # array fields are case-sensitive
    ('sharedWith NOT IN ("b")', True),
    ('sources.source = "feedtwo"', True),
    ("reputation >= 8", True),
    ("reputation > 8", False),
    ("reputation = null", True),  # FeedTwo
    ("reputation != 8", True),  # FeedTwo: null is "not equal"
    ('severity IN ("critical")', False),
    ('severity = "HIGH"', True),  # FeedOne
    ('severity != "high"', True),  # FeedTwo
    ('severity NOT IN ("high")', True),  # FeedTwo
    ('sources(severity = "high" && retracted = true)', False),  # no single entry
    ('sources.severity = "high" && sources.retracted = true', True),  # two entries
    ('tags IN ("kit")', False),
    ('tags IN ("Kit")', True),
    ('sources(tags NOT IN ("phish") && source = "FeedOne")', False),
    ('comments Like "kit"', True),
    ('sources.extendedInformation Like "intel"', True),
    ('sources.firstSeen < "2023-06-01"', True),
    ('sources.lastSeen > "2024-06-01"', False),
    ("sources.internalHits > 0", True),
    ("sources.externalHits = 1", False),
    ('NOT sources(source = "FeedOne")', False),
    ('NOT (type = "url" || value = "x")', True),
    ('active = false || (type = "domain" && NOT test = true)', True),
]


@pytest.mark.parametrize(("text", "expected"), EVALUATIONS)
def test_evaluate(text: str, expected: bool) -> None:
    node = parse_text(text)
    assert evaluate(node, INDICATOR) is expected
    assert evaluate(parse_json(to_json(node)), INDICATOR) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Mongo: $ne / $nin match a missing field; every positive comparison fails on it.
        ('value != "a"', True),
        ('value = "a"', False),
        ('value Like ""', False),
        ('type NOT IN ("url")', True),
        ('type IN ("url")', False),
        ("internalHits != 1", True),
        ("internalHits < 1", False),
        ("active != true", True),
        ("active = false", False),
        ("expiresAt = null", True),
        ('expiresAt != "2024-01-01"', True),
        ('sharedWith NOT IN ("a")', True),
        ('sharedWith IN ("a")', False),
        ("sources.retracted != true", False),  # no entries at all: elemMatch is false
        ('NOT sources.severity = "high"', True),
    ],
)
def test_evaluate_on_missing_values(text: str, expected: bool) -> None:
    assert evaluate(parse_text(text), {}) is expected
    assert evaluate(parse_text(text), dict.fromkeys(INDICATOR)) is expected


def test_referenced_tags() -> None:
    node = parse_text(
        'tags IN ("a", "b") || sources(severity = "high" && tags NOT IN ("c")) || NOT sources.tags IN ("D")'
        ' || sharedWith IN ("not-a-tag") || comments = "e"'
    )
    assert referenced_tags(node) == {"a", "b", "c", "D"}
    assert referenced_tags(MATCH_ALL) == set()


# --- properties --------------------------------------------------------------------------------------

# The language's fields, written out independently of the module so the tests check it.
TOP_FIELDS = {
    "value": "text",
    "type": "type",
    "test": "bool",
    "safe": "bool",
    "active": "bool",
    "expiresAt": "date?",
    "internalHits": "number",
    "externalHits": "number",
    "sharedWith": "array",
}
SOURCE_FIELDS = {
    "source": "text",
    "reputation": "number?",
    "internalHits": "number",
    "externalHits": "number",
    "firstSeen": "date",
    "lastSeen": "date",
    "severity": "severity",
    "comments": "text",
    "extendedInformation": "text",
    "tags": "array",
    "retracted": "bool",
}
KIND_OPS = {
    "text": ["eq", "ne", "like", "in", "nin"],
    "number": ["eq", "ne", "lt", "lte", "gt", "gte"],
    "bool": ["eq", "ne"],
    "date": ["eq", "ne", "lt", "lte", "gt", "gte"],
    "array": ["in", "nin"],
    "severity": ["eq", "ne", "in", "nin"],
    "type": ["eq", "ne", "in", "nin"],
}
# Closed vocabularies: their operands are always one of these (lower-case, as the parsers leave them).
VOCABULARIES = {"severity": EVERY_SEVERITY, "type": EVERY_TYPE}

ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
INT64 = st.integers(-(2**63), 2**63 - 1)
UTC_DATES = st.datetimes(timezones=st.just(UTC))


def compares(
    fields: dict[str, str],
    texts: st.SearchStrategy[str] = ANY_TEXT,
    numbers: st.SearchStrategy[int] = INT64,
    dates: st.SearchStrategy[datetime] = UTC_DATES,
) -> st.SearchStrategy[Node]:
    def for_field(name: str, spec: str) -> st.SearchStrategy[Node]:
        kind = spec.rstrip("?")
        items = st.sampled_from(VOCABULARIES[kind]) if kind in VOCABULARIES else texts
        scalar: st.SearchStrategy[Any] = {
            "text": texts,
            "severity": items,
            "type": items,
            "number": numbers,
            "bool": st.booleans(),
            "date": dates,
            "array": texts,
        }[kind]

        def with_op(op: str) -> st.SearchStrategy[Node]:
            if op in ("in", "nin"):
                operand: st.SearchStrategy[Any] = st.lists(items, max_size=3).map(tuple)
            elif spec.endswith("?") and op in ("eq", "ne"):
                operand = st.none() | scalar
            else:
                operand = scalar
            return operand.map(lambda value: Compare(name, op, value))  # type: ignore[arg-type]

        return st.sampled_from(KIND_OPS[kind]).flatmap(with_op)

    return st.sampled_from(sorted(fields.items())).flatmap(lambda item: for_field(*item))


def trees(leaves: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    """Canonical ASTs: n-ary nodes have at least two children, negation goes through negate()."""

    def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        several = st.lists(children, min_size=2, max_size=3).map(tuple)
        return st.one_of(several.map(And), several.map(Or), several.map(Nor), children.map(negate))

    return st.recursive(leaves, extend, max_leaves=8)


def asts(**values: Any) -> st.SearchStrategy[Node]:
    per_source = trees(compares(SOURCE_FIELDS, **values)).map(ElemMatch)
    return trees(st.one_of(compares(TOP_FIELDS, **values), per_source))


def operands(node: Node) -> list[Any]:
    match node:
        case Compare(_, _, value):
            return list(value) if isinstance(value, tuple) else [value]
        case And(nodes) | Or(nodes) | Nor(nodes):
            return [v for child in nodes for v in operands(child)]
        case Not(child) | ElemMatch(child):
            return operands(child)


@settings(max_examples=200)
@given(asts())
def test_text_and_json_round_trip(node: Node) -> None:
    assert parse_text(to_text(node)) == node
    assert parse_json(to_json(node)) == node
    assert parse_json(json.dumps(to_json(node))) == node


MARK = "\u2691"  # marks every generated string, so any leak into the SQL text is visible


@settings(max_examples=200)
@given(asts(texts=ANY_TEXT.map(lambda s: MARK + s + "'")))
def test_sql_never_contains_a_value(node: Node) -> None:
    params = SqlParams(start=7)
    sql = to_sql(node, params)
    assert MARK not in sql
    assert "'" not in sql
    # digits only in placeholders, aliases, SELECT 1 and "> 0"
    skeleton = re.sub(r"\$\d+|\bs\d+\b", "", sql)
    assert set(re.findall(r"\d+", skeleton)) <= {"0", "1"}
    placeholders = [int(n) for n in re.findall(r"\$(\d+)", sql)]
    assert placeholders == list(range(7, 7 + len(params.values)))
    flattened = [v for value in params.values for v in (value if isinstance(value, list) else [value])]
    # every operand passed (a lower bound on the sources' lastSeen twice: it also bounds the indicator's own)
    assert set(map(repr, flattened)) == {repr(v) for v in operands(node) if v is not None}


ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.datetimes(),
    UTC_DATES,
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def stored(kind: str, other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Stored type and severity are lower-case vocabulary values (so comparisons can match); anything
    else is still possible, because evaluate must be total."""
    return st.one_of(st.sampled_from(VOCABULARIES[kind]), other) if kind in VOCABULARIES else other


SOURCE_ENTRIES = st.one_of(
    st.fixed_dictionaries({}, optional={name: stored(spec, ANYTHING) for name, spec in SOURCE_FIELDS.items()}),
    ANYTHING,
)
INDICATOR_VALUES = st.one_of(ANYTHING, st.lists(SOURCE_ENTRIES, max_size=3))
INDICATORS = st.fixed_dictionaries(
    {},
    optional={
        **{name: stored(spec, INDICATOR_VALUES) for name, spec in TOP_FIELDS.items()},
        "sources": INDICATOR_VALUES,
    },
)


@settings(max_examples=200)
@given(asts(), INDICATORS)
def test_evaluate_is_total(node: Node, indicator: dict[str, Any]) -> None:
    result = evaluate(node, indicator)
    assert isinstance(result, bool)
    assert evaluate(negate(node), indicator) is not result


def _sql_of_user_text(text: str, parse: Any) -> tuple[str, list[Any]]:
    params = SqlParams(start=1)
    return to_sql(parse(text), params), [
        v for value in params.values for v in (value if isinstance(value, list) else [value])
    ]


@settings(max_examples=200)
@given(asts(texts=ANY_TEXT.map(lambda s: MARK + s + "'\"\\;--")))
def test_user_text_reaches_sql_only_as_parameters(node: Node) -> None:
    # What a client sends, in either form, through the parsers the API uses: every string it wrote is a
    # parameter, none is in the SQL text.
    marked = sorted(repr(v) for v in operands(node) if isinstance(v, str) and v.startswith(MARK))
    for text, parse in ((to_text(node), parse_text), (json.dumps(to_json(node)), parse_json)):
        sql, values = _sql_of_user_text(text, parse)
        assert MARK not in sql
        assert "'" not in sql
        assert ";" not in sql
        assert marked == sorted(repr(v) for v in values if isinstance(v, str) and v.startswith(MARK))


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_any_user_text_is_refused_or_compiles_without_literals(text: str) -> None:
    for parse in (parse_text, parse_json):
        try:
            sql, _ = _sql_of_user_text(text, parse)
        except QueryError:
            continue
        assert "'" not in sql
        assert ";" not in sql


def test_list_status_reads_shared_with_and_the_list_tags_from_the_list_state() -> None:
    """As the API compiles filters (list_status): sharedWith and the tags the list state gives are
    membership tests against list_value_status; other comparisons, and the rule-engine's compilation,
    read only stored columns."""
    params = SqlParams()
    sql = to_sql(parse_text('sharedWith IN ("d")'), params, list_status=True)
    assert sql == (
        "i.value IN (SELECT v.value FROM list_value_status v WHERE v.status = 'shared' "
        "AND v.destination = ANY ($1::text[]))"
    )
    assert params.values == [["d"]]
    params = SqlParams()
    sql = to_sql(parse_text('sharedWith NOT IN ("d")'), params, list_status=True)
    assert sql.startswith("NOT (i.value IN (SELECT v.value FROM list_value_status v")
    params = SqlParams()
    sql = to_sql(parse_text('tags IN ("Unshared", "x")'), params, list_status=True)
    assert "(s1.tags && $1::text[] OR s1.value IN (SELECT v.value FROM list_value_status v" in sql
    assert params.values == [["Unshared", "x"], ["left_out"]]
    params = SqlParams()
    sql = to_sql(parse_text('tags NOT IN ("Invalid host")'), params, list_status=True)
    assert "NOT ((s1.tags && $1::text[] OR" in sql
    assert params.values == [["Invalid host"], ["rejected", "unfit"]]
    # Tags the list state never gives, and the stored view of the rule-engine, stay on the columns.
    assert "list_value_status" not in to_sql(parse_text('tags IN ("a")'), SqlParams(), list_status=True)
    assert "list_value_status" not in to_sql(parse_text('tags IN ("Unshared")'), SqlParams())
    assert "list_value_status" not in to_sql(parse_text('sharedWith IN ("d")'), SqlParams())


def test_a_lower_bound_on_the_sources_last_seen_also_bounds_the_indicators_own() -> None:
    # The indicator's lastSeen is the latest of its sources': the bound lets its index serve the
    # console's default filter (the last 7 days) and its count; the EXISTS keeps the meaning.
    since = datetime(2024, 1, 1, tzinfo=UTC)
    params = SqlParams()
    sql = to_sql(
        parse_json({"sources": {"$elemMatch": {"lastSeen": {"$gte": since.isoformat()}, "source": "a"}}}), params
    )
    assert sql.startswith("(i.last_seen >= $1::timestamptz AND EXISTS (SELECT 1 FROM indicator_sources s1 ")
    assert params.values == [since, since, "a"]
    for upper in ({"$lt": since.isoformat()}, {"$ne": since.isoformat()}):
        assert to_sql(parse_json({"sources": {"$elemMatch": {"lastSeen": upper}}}), SqlParams()).startswith("EXISTS")
    either = {"$or": [{"lastSeen": {"$gte": since.isoformat()}}, {"source": "a"}]}
    assert to_sql(parse_json({"sources": {"$elemMatch": either}}), SqlParams()).startswith("EXISTS")


def test_a_lone_lower_bound_on_the_sources_last_seen_is_the_indicators_own() -> None:
    # The indicator's lastSeen is the latest of its current sources': some source seen since t is the
    # indicator seen since t, which its (last_seen, value) index answers without reading a source row.
    since = datetime(2024, 1, 1, tzinfo=UTC)
    for op, sql_op in (("$gte", ">="), ("$gt", ">")):
        params = SqlParams()
        sql = to_sql(parse_json({"sources": {"$elemMatch": {"lastSeen": {op: since.isoformat()}}}}), params)
        assert sql == f"i.last_seen {sql_op} $1::timestamptz"
        assert params.values == [since]
    # Equal to t is not the latest being t: the EXISTS stays.
    params = SqlParams()
    sql = to_sql(parse_json({"sources": {"$elemMatch": {"lastSeen": since.isoformat()}}}), params)
    assert "EXISTS (SELECT 1 FROM indicator_sources" in sql
