"""The sink's decisions without I/O: entries, the calls that bring a list to its selection, tags."""

from __future__ import annotations

from cte_common.sharing import Candidate, cost_bytes
from netskope_sink.lists.domain import (
    outcome_tags,
    plan_url_push,
    rejected_entries,
    select,
    to_entries,
    url_list_entry,
    v1_errors,
)


def test_url_list_entries_follow_the_tenant_grammar() -> None:
    assert url_list_entry("https://evil.example/login", "url") == "evil.example/login"
    assert url_list_entry("evil.example:8080/x", "url") == "evil.example:8080/x"
    assert url_list_entry("203.0.113.9", "ipv4") == "203.0.113.9"
    assert url_list_entry("2001:db8::1", "ipv6") is None
    entries, unfit = to_entries(
        ["http://a.example/x", "https://a.example/x", "b.example", "2001:db8::1"],
        {"http://a.example/x": "url", "https://a.example/x": "url", "b.example": "domain", "2001:db8::1": "ipv6"},
    )
    assert entries == {"a.example/x": ["http://a.example/x", "https://a.example/x"], "b.example": ["b.example"]}
    assert unfit == ["2001:db8::1"]


def test_plan_appends_new_entries_and_replaces_when_something_must_go() -> None:
    assert plan_url_push(["a", "b"], {"a", "b"}, "default").mode == "none"
    append = plan_url_push(["a", "b", "c"], {"a", "b"}, "default")
    assert (append.mode, append.urls) == ("append", ["c"])
    replace = plan_url_push(["a", "c"], {"a", "b"}, "default")
    assert (replace.mode, replace.urls) == ("replace", ["a", "c"])
    assert plan_url_push([], {"a"}, "default").urls == ["default"]  # an empty list holds the placeholder
    assert plan_url_push(["a"], set(), "default").mode == "replace"  # the placeholder must go


def test_selection_skips_refused_values_and_respects_the_cap() -> None:
    cands = [
        Candidate(v, p, cost_bytes(v)) for v, p in (("new.example", 3.0), ("mid.example", 2.0), ("old.example", 1.0))
    ]
    cap = 1 + cost_bytes("new.example") + cost_bytes("old.example")
    chosen = select(cands, {"mid.example"}, cap)
    assert (chosen.selected, chosen.left_out) == (["new.example", "old.example"], [])
    chosen = select(cands, set(), cap)
    assert (chosen.selected, chosen.left_out) == (["new.example", "mid.example"], ["old.example"])


def test_tenant_answers_are_read_like_the_reference_plugin() -> None:
    assert rejected_entries({"message": [["bad/*", "wildcard only as a leading *."], ["x y", "space"]]}) == [
        ("bad/*", "wildcard only as a leading *."),
        ("x y", "space"),
    ]
    assert rejected_entries({"message": "Invalid token"}) == []
    assert v1_errors({"status": "error", "errors": ["Duplicate request, no change in file hashes"]}) == [
        "Duplicate request, no change in file hashes"
    ]
    assert v1_errors({"status": "success"}) == []


def test_only_changes_of_outcome_become_tag_events() -> None:
    tags = outcome_tags({"a": "left_out", "b": "rejected"}, {"a": "left_out", "c": "left_out", "d": "rejected"}, ["b"])
    assert tags.add == {"Unshared": ["c"], "Invalid host": ["d"]}
    assert tags.remove == {"Invalid host": ["b"]}
