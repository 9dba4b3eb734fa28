"""The lean ingest path agrees with the full one: the canonical fast path with ``canonicalize``, the lean
batch validation with IndicatorIn's (items and every error), the sighting records and the answer with
the models they replace, the body read by msgspec with FastAPI's json.loads (hypothesis properties, and
examples of each shortcut)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cte_common.canonical import InvalidIndicator, canonicalize, canonicalize_fast, is_canonical
from cte_common.events import (
    INDICATOR_EVENT_ADAPTER,
    IndicatorSighting,
    SightingRecord,
    encode_sighting,
    random_event_ids,
)
from cte_common.indicator_schema import IndicatorOut, SourceOut
from cte_common.indicators import IndicatorType as T
from ingest_api.configurations.schemas import AgingCriteria
from ingest_api.indicators.domain import (
    NeedsJsonValues,
    build_sighting,
    lean_item,
    parse_json,
    read_body,
    sighting_out,
    sighting_records,
    sightings_answer,
    validate_batch,
    validate_batch_lean,
)
from ingest_api.indicators.schemas import (
    AcceptedIndicator,
    AcceptedSource,
    IndicatorIn,
    LeanIndicatorIn,
    ValidIndicator,
)
from tests.unit.test_canonical import domain_names, ipv4_addresses, ipv6_addresses, urls
from tests.unit.test_ingest_domain import NOW, config

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


def _outcome(kind: T, value: str, canon: Any) -> str | tuple[str, str]:
    try:
        return str(canon(kind, value))
    except InvalidIndicator as error:
        return ("invalid", error.reason)


# Near-canonical text: what feeds send, and the spellings one step away from canonical.
near_canonical = st.one_of(
    domain_names(),
    domain_names().map(str.lower),
    domain_names().map(lambda d: "*." + d.lower()),
    urls(),
    urls().map(str.lower),
    ipv4_addresses.map(str),
    ipv6_addresses.map(str),
    st.from_regex(r"[0-9a-fA-F]{32}|[0-9a-f]{64}", fullmatch=True),
    st.from_regex(r"(https?://)?[a-z0-9_.:-]{1,20}(/[ -~]{0,10})?", fullmatch=True),
    st.text(max_size=30),
)


@PROPERTY_SETTINGS
@given(st.sampled_from(list(T)), near_canonical)
def test_the_canonical_fast_path_agrees_with_the_full_path(kind: T, value: str) -> None:
    assert _outcome(kind, value, canonicalize_fast) == _outcome(kind, value, canonicalize)
    if is_canonical(kind, value):
        assert canonicalize(kind, value) == value


@PROPERTY_SETTINGS
@given(st.sampled_from(list(T)), near_canonical)
def test_canonical_text_mostly_takes_the_fast_path(kind: T, value: str) -> None:
    try:
        canonical = canonicalize(kind, value)
    except InvalidIndicator:
        return
    assert canonicalize_fast(kind, canonical) == canonical
    if kind in (T.MD5, T.SHA256, T.IPV4):
        assert is_canonical(kind, canonical)


@pytest.mark.parametrize(
    ("kind", "value", "fast"),
    [
        (T.URL, "http://example.com/a?b=1", True),
        (T.URL, "example.com/a/b.php", True),
        (T.URL, "10.1.2.3:8080/x", True),
        (T.URL, "http://example.com/", False),  # the lone "/" goes
        (T.URL, "http://example.com:80/x", False),  # the default port goes
        (T.URL, "example.com?q=1", False),  # the root path is written in: "example.com/?q=1"
        (T.URL, "http:8080/x", False),  # refused by the full path
        (T.URL, "example.com/a[.]b", False),  # a defang form
        (T.URL, "HTTP://example.com/x", False),
        (T.DOMAIN, "*.a.example.com", True),
        (T.DOMAIN, "xn--bcher-kva.example", False),  # idna checks A-labels
        (T.DOMAIN, "a.123", False),  # a numeric top label is refused
        (T.HOSTNAME, "*.a.example.com", False),
        (T.IPV4, "10.0.0.1", True),
        (T.IPV4, "10.0.0.01", False),
        (T.MD5, "0" * 32, True),
        (T.MD5, "A" * 32, False),
        (T.IPV6, "::1", False),
    ],
)
def test_fast_path_examples(kind: T, value: str, fast: bool) -> None:
    assert is_canonical(kind, value) is fast


# --- lean batch validation ------------------------------------------------------------------------------

times = st.one_of(
    st.none(),
    st.datetimes(timezones=st.sampled_from([None, UTC])).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(
        [
            "2026-01-01",
            "2026-01-01 10:00:00",
            "2026-01-01T10:00:00.1234567Z",
            "2026-01-01T10:00:00+05:30",
            "2026-01-01T10:00:00-00:00",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00",
            "1767261600",
            "yesterday",
        ]
    ),
    st.integers(0, 2_000_000_000),
)
texts = st.one_of(
    st.sampled_from(["", " ", "plain", " padded ", "\x1ftail\x1f", "x" * 501, "\u00a0nbsp"]), st.text(max_size=12)
)
fields: dict[str, st.SearchStrategy[Any]] = {
    "type": st.one_of(st.sampled_from([t.value for t in T]), st.sampled_from(["URL", "colour", " url"]), st.none()),
    "value": st.one_of(near_canonical, near_canonical.map(lambda v: f" {v} "), st.integers()),
    "source": st.one_of(st.sampled_from(["DW", "other", " DW ", "", "DW\u3000"]), st.integers()),
    "reputation": st.one_of(st.integers(-1, 12), st.sampled_from(["5", 5.0, 5.5, True, None])),
    "severity": st.one_of(st.sampled_from(["unknown", "low", "high", "critical", "HIGH", "bad"]), st.none()),
    "tags": st.one_of(st.lists(texts, max_size=4), st.just(["t"] * 101), st.just("t"), st.lists(st.integers())),
    "comments": st.one_of(texts, st.just("c" * 10_001)),
    "extendedInformation": st.sampled_from(
        ["", "https://example.com/x", "http://", "ftp://x", "http://[::1", " https://a.b ", "x" * 2049]
    ),
    "firstSeen": times,
    "lastSeen": times,
    "expiresAt": times,
    "test": st.one_of(st.booleans(), st.sampled_from([0, 1, "true", None])),
    "extra": st.just(1),
}
optional_fields = [name for name in fields if name not in ("type", "value", "source")]


@st.composite
def items(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(st.sampled_from([42, "text", None, [], {}]))
    chosen = draw(st.lists(st.sampled_from(optional_fields), unique=True, max_size=6))
    required = [n for n in ("type", "value", "source") if draw(st.integers(0, 12)) > 0]
    return {name: draw(fields[name]) for name in [*required, *chosen] if name != "extra" or draw(st.booleans())}


def _a_url(value: str) -> bool:
    try:
        canonicalize(T.URL, value)
    except InvalidIndicator:
        return False  # shapes Netskope lists refuse (0.0.0.0, a CIDR with host bits set) are no valid URL
    return True


@st.composite
def valid_items(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from([T.URL, T.DOMAIN, T.IPV4, T.MD5, T.SHA256]))
    value = draw(
        {
            T.URL: urls().filter(_a_url),
            T.DOMAIN: domain_names(),
            T.IPV4: ipv4_addresses.map(str),
            T.MD5: st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
            T.SHA256: st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
        }[kind]
    )
    item: dict[str, Any] = {"type": kind.value, "value": value, "source": "DW"}
    for name in draw(st.lists(st.sampled_from(["reputation", "severity", "tags", "firstSeen", "test"]), unique=True)):
        item[name] = draw(
            {
                "reputation": st.integers(1, 10),
                "severity": st.sampled_from(["low", "high"]),
                "tags": st.lists(st.sampled_from(["a", "b", "feed"]), max_size=3),
                "firstSeen": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5+02:00"]),
                "test": st.booleans(),
            }[name]
        )
    return item


def _as_valid(item: IndicatorIn) -> ValidIndicator:
    return ValidIndicator(**{name: getattr(item, name) for name in ValidIndicator.__struct_fields__})


def _same_batch(raw: list[Any]) -> None:
    known = {"DW"}
    reference_items, reference_errors = validate_batch(raw, known)
    lean_items, lean_errors = validate_batch_lean(raw, known)
    assert lean_errors == reference_errors
    assert [_as_valid(i) for i in reference_items] == lean_items
    # The same offsets too, not only the same instants.
    for ref, lean in zip(reference_items, lean_items, strict=True):
        for name in ("firstSeen", "lastSeen", "expiresAt"):
            mine, theirs = getattr(lean, name), getattr(ref, name)
            assert (mine is None and theirs is None) or mine.utcoffset() == theirs.utcoffset()


@settings(max_examples=500, deadline=None)
@given(st.lists(items(), max_size=4))
def test_lean_validation_gives_the_reference_items_and_errors(raw: list[Any]) -> None:
    _same_batch(raw)


@PROPERTY_SETTINGS
@given(st.lists(valid_items(), min_size=1, max_size=4))
def test_valid_items_mostly_take_the_lean_path(raw: list[dict[str, Any]]) -> None:
    _same_batch(raw)
    for entry in raw:
        if canonicalize(T(entry["type"]), entry["value"]) == entry["value"]:
            lean_item(entry)  # raises when it falls back to IndicatorIn


def _read_and_validate(body: bytes, known: set[str]) -> tuple[list[ValidIndicator], list[dict[str, Any]]]:
    """What the POST handler does with a body: read_body, and the JSON values where an item decoded
    straight into LeanIndicatorIn needs IndicatorIn."""
    raw = read_body(body)
    try:
        return validate_batch_lean(raw, known)
    except NeedsJsonValues:
        return validate_batch_lean(parse_json(body), known)


@settings(max_examples=500, deadline=None)
@given(st.lists(items(), max_size=4))
def test_a_body_read_by_msgspec_gives_the_items_and_errors_of_json_loads(raw: list[Any]) -> None:
    body = json.dumps(raw).encode()
    items, errors = _read_and_validate(body, {"DW"})
    reference_items, reference_errors = validate_batch(json.loads(body), {"DW"})
    assert errors == reference_errors
    assert items == [_as_valid(i) for i in reference_items]


@PROPERTY_SETTINGS
@given(st.lists(valid_items(), min_size=1, max_size=4))
def test_a_body_of_plain_items_is_read_straight_into_structs(raw: list[dict[str, Any]]) -> None:
    body = json.dumps(raw).encode()
    read = read_body(body)
    assert all(type(i) is LeanIndicatorIn for i in read)
    assert _read_and_validate(body, {"DW"}) == validate_batch_lean(json.loads(body), {"DW"})


def test_a_struct_the_lean_checks_are_not_sure_of_asks_for_the_json_values() -> None:
    body = json.dumps(
        [
            {"type": "domain", "value": "example.com", "source": "DW"},
            {"type": "domain", "value": " A.COM ", "source": "DW", "reputation": 11},
        ]
    ).encode()
    with pytest.raises(NeedsJsonValues):
        validate_batch_lean(read_body(body), {"DW"})
    items, errors = _read_and_validate(body, {"DW"})
    assert [i.value for i in items] == ["example.com"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "reputation")]


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'[{"a": 1}, 2, "x", null, true, 1.5]',
        b'{"not": "a list"}',
        b"[NaN, Infinity, -Infinity]",  # json.loads reads these; orjson does not
        b"[123456789012345678901234567890]",  # beyond 64 bits
        '[{"value": "bücher.example"}]'.encode("utf-16"),  # json.loads detects the encoding
        rb'["\ud800"]',  # a lone surrogate
        b"[1e400, 0.1, -0.0, 1.0000000000000000000001, 5e-324]",
        b"\xef\xbb\xbf[1]",  # a UTF-8 byte order mark
        b'{"a": 1, "a": 2}',
    ],
)
def test_parse_json_gives_what_json_loads_gives(body: bytes) -> None:
    assert repr(parse_json(body)) == repr(json.loads(body))
    assert repr(read_body(body)) == repr(json.loads(body))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@PROPERTY_SETTINGS
@given(json_values, st.booleans())
def test_parse_json_reads_any_json_as_json_loads(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert repr(parse_json(body)) == repr(json.loads(body))


@pytest.mark.parametrize("body", [b"", b"[", b"[1,]", b"[1] x", b"{'a': 1}", b"\xff[]"])
def test_a_malformed_body_is_json_loads_error(body: bytes) -> None:
    malformed = (json.JSONDecodeError, UnicodeDecodeError)  # FastAPI's 422 or 400
    with pytest.raises(malformed) as expected:
        json.loads(body)
    with pytest.raises(malformed) as got:
        read_body(body)
    assert (type(got.value), got.value.args) == (type(expected.value), expected.value.args)


def test_random_event_ids_are_version_4_uuids_like_uuid4s() -> None:
    ids = random_event_ids(5000)
    assert len(set(ids)) == 5000
    for event_id in ids[:200]:
        assert type(event_id) is UUID
        assert (event_id.version, event_id.variant) == (4, "specified in RFC 4122")
        again = UUID(str(event_id))
        assert again == event_id
        assert hash(again) == hash(event_id)
        assert again.is_safe == event_id.is_safe
        assert msgspec.json.encode(event_id) == json.dumps(str(event_id)).encode()
    # All 122 random bits vary: every bit outside the version and variant is set in some id, clear in another.
    fixed = (0xF000 << 64) | (0xC000 << 48)
    assert [b for b in range(128) if not (1 << b) & fixed and len({(u.int >> b) & 1 for u in ids}) < 2] == []
    assert random_event_ids(0) == []


def test_an_item_the_lean_path_is_not_sure_of_is_validated_by_the_model() -> None:
    raw = [
        {"type": "domain", "value": " Example.COM. ", "source": "DW", "reputation": "7"},
        {"type": "url", "value": "http://[::1", "source": "DW"},
        {"type": "md5", "value": "0" * 32, "source": "nope"},
    ]
    items, errors = validate_batch_lean(raw, {"DW"})
    assert [i.value for i in items] == ["example.com", "0" * 32]
    assert items[0].reputation == 7
    assert [(e["index"], e["field"]) for e in errors] == [(1, "value"), (2, "source")]


# --- the sighting records and the answer -----------------------------------------------------------------


@PROPERTY_SETTINGS
@given(st.lists(valid_items(), min_size=1, max_size=4), st.sampled_from(["plain", "aging", "override", "netskope"]))
def test_sighting_records_and_the_answer_match_the_models(raw: list[dict[str, Any]], kind: str) -> None:
    cfg = {
        "plain": config(),
        "aging": config(aging=AgingCriteria(value=7, unit="hours", base="firstSeen")),
        "override": config(reputation=9, tags_aggregate_strategy="overwrite"),
        "netskope": config(plugin="netskope", age_after_days=0),
    }[kind]
    reference, _ = validate_batch(raw, {"DW"})
    lean, _ = validate_batch_lean(raw, {"DW"})
    records = sighting_records(lean, {"DW": cfg}, "firstSeen", NOW)
    expected = [build_sighting(i, cfg, "firstSeen", NOW) for i in reference]
    decoded = [INDICATOR_EVENT_ADAPTER.validate_json(encode_sighting(r)) for r in records]
    for d, e in zip(decoded, expected, strict=True):
        assert d.model_dump(exclude={"event_id"}) == e.model_dump(exclude={"event_id"})
        assert d.model_dump_json(exclude={"event_id"}) == e.model_dump_json(exclude={"event_id"})
    answer = json.loads(sightings_answer(records))
    models = [json.loads(sighting_out(e).model_dump_json()) for e in expected]
    assert answer == models
    assert [list(a) for a in answer] == [list(m) for m in models]  # the same keys in the same order


def test_the_sighting_record_has_the_models_fields_in_order() -> None:
    assert list(SightingRecord.__struct_fields__) == list(IndicatorSighting.model_fields)


def test_the_answer_structs_have_the_models_fields_in_order() -> None:
    assert list(AcceptedIndicator.__struct_fields__) == list(IndicatorOut.model_fields)
    assert list(AcceptedSource.__struct_fields__) == list(SourceOut.model_fields)


def test_a_sighting_record_decodes_as_the_sighting_it_stands_for() -> None:
    record = sighting_records(
        validate_batch_lean([{"type": "url", "value": "example.com/x", "source": "DW"}], {"DW"})[0],
        {"DW": config()},
        "lastSeen",
        NOW,
    )[0]
    event = INDICATOR_EVENT_ADAPTER.validate_json(encode_sighting(record))
    assert isinstance(event, IndicatorSighting)
    assert msgspec.json.decode(encode_sighting(record))["first_seen"] == "2026-06-01T12:00:00Z"
    assert event.expires_at == datetime(2026, 8, 30, 12, tzinfo=UTC)
