"""Netskope's documented URL-list examples (tests/data/netskope_url_grammar.json), classified as the
documentation classifies them by each of the three readers of the grammar: the fake tenant (what the
tenant takes), the sink's pre-check (cte_common.url_list: what the sink would push) and the canonicaliser
(what a url indicator becomes; its list entry must then be one the other two take)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cte_common.canonical import InvalidIndicator, canonicalize
from cte_common.indicators import IndicatorType
from cte_common.url_list import (
    PLAIN_ENTRY_RE,
    is_plain_entry,
    list_entry,
    url_list_entry_problem,
    url_list_entry_problem_in_full,
)
from fake_tenant.url_grammar import url_entry_problem
from tests.unit.test_canonical import urls

DATA = json.loads((Path(__file__).parents[1] / "data" / "netskope_url_grammar.json").read_text())
EXAMPLES: list[dict[str, Any]] = DATA["examples"]


def _id(example: dict[str, Any]) -> str:
    return f"{example['class']}:{example['entry']}"


def test_the_data_covers_every_documented_section() -> None:
    sections = {e["source"].rsplit("> ", 1)[-1] for e in EXAMPLES}
    assert {"Valid URL Examples", "Invalid URL Examples", "Valid Ranges and CIDR Examples"} <= sections
    assert {"Invalid Ranges and CIDR Examples", "URL Supported Formats"} <= sections
    assert {e["class"] for e in EXAMPLES} == {"valid", "invalid"}


@pytest.mark.parametrize("example", EXAMPLES, ids=_id)
def test_the_fake_tenant_classifies_each_example_as_documented(example: dict[str, Any]) -> None:
    problem = url_entry_problem(example["entry"])
    assert (problem is None) == (example["class"] == "valid"), problem


@pytest.mark.parametrize("example", EXAMPLES, ids=_id)
def test_the_sinks_pre_check_classifies_each_example_as_documented(example: dict[str, Any]) -> None:
    problem = url_list_entry_problem(example["entry"])
    assert (problem is None) == (example["class"] == "valid"), problem


@pytest.mark.parametrize("example", EXAMPLES, ids=_id)
def test_the_canonicaliser_keeps_what_lists_take_and_refuses_or_repairs_the_rest(example: dict[str, Any]) -> None:
    try:
        canonical: str | None = canonicalize(IndicatorType.URL, example["entry"])
    except InvalidIndicator:
        canonical = None
    assert canonical == example["canonical"]
    if example["class"] == "valid":
        assert canonical is not None
    if canonical is not None:
        # Whatever the canonicaliser keeps, the sink pushes as an entry the tenant takes.
        entry = list_entry(IndicatorType.URL, canonical)
        assert entry is not None
        assert url_entry_problem(entry) is None
        assert url_list_entry_problem(entry) is None


@pytest.mark.parametrize(
    ("kind", "value", "entry"),
    [
        (IndicatorType.URL, "https://a.example/x", "a.example/x"),
        (IndicatorType.URL, "ftp://a.example/x", "a.example/x"),
        (IndicatorType.URL, "a.example:8080", "a.example:8080"),
        (IndicatorType.DOMAIN, "*.a.example", "*.a.example"),
        (IndicatorType.IPV4, "10.1.2.3", "10.1.2.3"),
        (IndicatorType.IPV4, "0.0.0.0", None),  # noqa: S104
        (IndicatorType.IPV6, "2001:db8::1", None),
        (IndicatorType.URL, "http://[2001:db8::1]/x", None),
        (IndicatorType.HOSTNAME, "_dmarc.a.example", None),  # the tenant takes letters, digits, dashes
    ],
)
def test_list_entry_drops_the_scheme_and_refuses_what_a_url_list_cannot_hold(
    kind: IndicatorType, value: str, entry: str | None
) -> None:
    assert list_entry(kind, value) == entry


@settings(max_examples=500, deadline=None)
@given(st.one_of(urls(), st.text(alphabet="ab1.-/:*?#%<[@ 0", max_size=24)))
def test_whatever_the_pre_check_lets_through_the_fake_tenant_takes(value: str) -> None:
    # Beyond the documented examples: the two readings of the grammar never disagree the costly way
    # (the sink pushing an entry the tenant refuses); the pre-check may be the stricter one.
    try:
        canonical = canonicalize(IndicatorType.URL, value)
    except InvalidIndicator:
        canonical = None
    for entry in (value, list_entry(IndicatorType.URL, canonical) if canonical else None):
        if entry is not None and url_list_entry_problem(entry) is None:
            assert url_entry_problem(entry) is None, entry


@pytest.mark.parametrize(
    "entry",
    ["mail-cloud-1.top", "secure-0.track-site.online/account/0", "https://a.example/x?q=1#f", "10.1.2.3", "a"],
)
def test_the_common_shapes_are_taken_in_one_match(entry: str) -> None:
    assert is_plain_entry(entry)


@pytest.mark.parametrize(
    "entry",
    [
        "0.0.0.0",  # noqa: S104 (an entry, never bound)
        "http://0.0.0.0",
        "01.2.3.4",
        "1.2.3.4.",
        "1.2.3.4-a.example",
        "xn--bcher-kva.example",
        "a.example:8080",
        "A.example",
        "a.example?q",
        "*.a.example",
        "10.0.0.0/8",
        "1.2.3",
    ],
)
def test_the_other_shapes_go_through_every_check(entry: str) -> None:
    assert not is_plain_entry(entry)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.from_regex(PLAIN_ENTRY_RE, fullmatch=True),
        st.from_regex(r"(https?://)?[0-9a-z.-]{1,20}(/[a-z0-9/%:.*]{0,6})?", fullmatch=True),
        st.text(alphabet="abxn-019.5/:%*@#?_A2", max_size=30),
    )
)
def test_what_the_plain_shape_takes_every_check_takes(entry: str) -> None:
    # The one-match path of url_list_entry_problem is a shortcut, never a second reading of the grammar.
    if is_plain_entry(entry):
        assert url_list_entry_problem_in_full(entry) is None
