"""What a sharing selects (cte_common.sharing) and how the rule-engine turns decisions into intents."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cte_common.events import IndicatorSighting
from cte_common.indicators import IndicatorType, Severity
from cte_common.query import MATCH_ALL, parse_json, parse_text
from cte_common.sharing import (
    AllowEntry,
    AllowList,
    Candidate,
    Evaluator,
    FileTarget,
    RuleDef,
    RuleException,
    SharingDef,
    UrlTarget,
    check_allow_pattern,
    cost_bytes,
    list_key,
    parse_filter,
    select_within_cap,
)
from rule_engine.domain import DELETED, Announced, Catalog, apply_sighting, decide_batch, indicator_view

T0 = datetime(2026, 5, 1, tzinfo=UTC)
EVERY_SEVERITY_TEXT = 'sources.severity IN ("unknown","low","medium","high","critical")'
EVERY_SEVERITY_JSON = {
    "sources": {"$elemMatch": {"severity": {"$in": ["unknown", "low", "medium", "high", "critical"]}}}
}


def state(value: str, kind: IndicatorType, source: str = "api", **kw: Any) -> Any:
    ev = IndicatorSighting(
        value=value,
        type=kind,
        source=source,
        first_seen=kw.pop("seen", T0),
        last_seen=kw.pop("last", T0),
        occurred_at=T0,
        expires_at=kw.pop("expires_at", None),
        severity=kw.pop("severity", Severity.HIGH),
        **kw,
    )
    return apply_sighting(None, ev)


def sharing(sid: int = 1, action: str = "url", rule: RuleDef | None = None, **kw: Any) -> SharingDef:
    return SharingDef(
        id=sid,
        source=kw.get("source", "api"),
        rule=rule or RuleDef("Every Severity", parse_json(EVERY_SEVERITY_JSON)),
        action=action,  # type: ignore[arg-type]
        list_key=list_key("t", action, f"list{sid}"),  # type: ignore[arg-type]
        cap_bytes=7 * 1024 * 1024,
        priority=kw.get("priority", "lastSeen"),
    )


def test_every_severity_is_the_same_rule_in_both_forms() -> None:
    assert parse_filter(query=EVERY_SEVERITY_TEXT) == parse_filter(mongo=EVERY_SEVERITY_JSON)
    with pytest.raises(ValueError, match="exactly one"):
        parse_filter()


def test_urls_domains_and_ips_go_to_url_lists_and_hashes_to_file_lists() -> None:
    ev = Evaluator()
    url_list, file_list = sharing(1, "url"), sharing(2, "file")
    for value, kind in (
        ("evil.example/x", IndicatorType.URL),
        ("evil.example", IndicatorType.DOMAIN),
        ("1.2.3.4", IndicatorType.IPV4),
    ):
        view = indicator_view(state(value, kind))
        assert ev.decide(url_list, view).selected
        assert ev.decide(file_list, view).outcome == "type"
    view = indicator_view(state("a" * 32, IndicatorType.MD5))
    assert ev.decide(file_list, view).selected
    assert ev.decide(url_list, view).outcome == "type"


def test_excluded_by_each_reason() -> None:
    allow = AllowList([AllowEntry(7, "suffix", "good.example")])
    ev = Evaluator(allow)
    s = sharing(
        rule=RuleDef(
            "r",
            parse_text('severity IN ("high", "critical")'),
            (
                RuleException("benign", tags=frozenset({"benign"})),
                RuleException("q", node=parse_text('value = "skip.example"')),
            ),
        )
    )
    cases = {
        "allow_listed": state("www.good.example", IndicatorType.HOSTNAME),
        "inactive": state("old.example", IndicatorType.DOMAIN, expires_at=T0 - timedelta(days=1)),
        "test": state("t.example", IndicatorType.DOMAIN, test=True),
        "not_from_source": state("other.example", IndicatorType.DOMAIN, source="elsewhere"),
        "rule": state("low.example", IndicatorType.DOMAIN, severity=Severity.LOW),
        "exception": state("benign.example", IndicatorType.DOMAIN, tags=["benign"]),
    }
    for outcome, st_ in cases.items():
        decision = ev.decide(s, indicator_view(st_))
        assert decision.outcome == outcome, outcome
    assert ev.decide(s, indicator_view(state("skip.example", IndicatorType.DOMAIN))).outcome == "exception"
    retracted = state("r.example", IndicatorType.DOMAIN)
    retracted.sources["api"].retracted = True
    assert ev.decide(s, indicator_view(retracted)).outcome == "retracted"
    assert ev.decide(s, indicator_view(cases["allow_listed"])).allow_entry == 7


def test_allow_list_kinds() -> None:
    allow = AllowList(
        [
            AllowEntry(1, "exact", "https://ok.example/login"),
            AllowEntry(2, "suffix", check_allow_pattern("suffix", "*.Corp.Example.")),
            AllowEntry(3, "cidr", check_allow_pattern("cidr", "10.0.0.0/8")),
            AllowEntry(4, "regex", r"^[0-9a-f]{32}$"),
        ]
    )
    assert allow.match("https://ok.example/login", IndicatorType.URL) == 1
    assert allow.match("https://intranet.corp.example/x", IndicatorType.URL) == 2
    assert allow.match("corp.example", IndicatorType.DOMAIN) == 2
    assert allow.match("notcorp.example", IndicatorType.DOMAIN) is None
    assert allow.match("10.1.2.3", IndicatorType.IPV4) == 3
    assert allow.match("http://10.9.9.9:8080/a", IndicatorType.URL) == 3
    assert allow.match("11.0.0.1", IndicatorType.IPV4) is None
    assert allow.match("d" * 32, IndicatorType.MD5) == 4
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        check_allow_pattern("cidr", "10.0.0.0/33")


def test_targets_follow_the_reference_defaults_and_caps() -> None:
    url = UrlTarget.model_validate({"list": "create", "name": "blocked", "url_list_type": "Exact"})
    assert (url.list_name, url.url_list_type, url.cap_bytes, url.default_url) == (
        "blocked",
        "exact",
        7 * 1024 * 1024,
        "cedefaultpush.io",
    )
    assert FileTarget.model_validate({"file_list": "hashes"}).cap_bytes == 8 * 1024 * 1024
    with pytest.raises(ValueError, match="at most 7 MB"):
        UrlTarget.model_validate({"list": "x", "max_url_list_cap": 8})
    with pytest.raises(ValueError, match="name"):
        UrlTarget.model_validate({"list": "create"})


def test_priority_orders_by_last_seen_or_severity() -> None:
    ev = Evaluator()
    newer = indicator_view(state("a.example", IndicatorType.DOMAIN, last=T0 + timedelta(days=1), severity=Severity.LOW))
    older_critical = indicator_view(state("b.example", IndicatorType.DOMAIN, severity=Severity.CRITICAL))
    by_time = sharing()
    assert ev.decide(by_time, newer).priority > ev.decide(by_time, older_critical).priority
    by_severity = sharing(priority="severity")
    assert ev.decide(by_severity, older_critical).priority > ev.decide(by_severity, newer).priority


def test_select_within_cap_is_a_stable_prefix() -> None:
    cands = [Candidate(f"v{n}.example", priority=float(n % 5), cost=cost_bytes(f"v{n}.example")) for n in range(50)]
    cap = 1 + sum(c.cost for c in sorted(cands, key=lambda c: (-c.priority, c.value))[:17])
    kept, left = select_within_cap(cands, cap)
    assert len(kept) == 17
    assert len(left) == 33
    assert min(c.priority for c in kept) >= max(c.priority for c in left)
    assert select_within_cap(list(reversed(cands)), cap) == (kept, left)  # input order does not matter
    assert len(select_within_cap(cands, 10**9, max_entries=10)[0]) == 10


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(5, 40)), max_size=60), st.integers(1, 2000))
def test_select_within_cap_never_exceeds_the_cap(items: list[tuple[int, int]], cap: int) -> None:
    cands = [Candidate(f"v{n}", float(p), c) for n, (p, c) in enumerate(items)]
    kept, left = select_within_cap(cands, cap)
    assert not kept or 1 + sum(c.cost for c in kept) <= cap
    assert sorted(kept + left, key=lambda c: c.value) == sorted(cands, key=lambda c: c.value)


@settings(max_examples=500)
@given(st.text() | st.text(alphabet=st.characters(max_codepoint=0x80)))
def test_cost_bytes_is_the_length_of_the_json_encoding(value: str) -> None:
    # The cost is counted without encoding where nothing needs escaping: it must be what the reference's
    # json.dumps gives for every value (quotes, backslashes, control characters, DEL, non-ASCII).
    assert cost_bytes(value) == len(json.dumps(value)) + 3


def test_a_rule_equal_to_a_compiled_one_decides_alike() -> None:
    # Compiled predicates are found by the rule object's identity first: an equal rule (a catalog
    # reloaded) and a changed one must still be decided by their own filters.
    ev = Evaluator()
    view = indicator_view(state("evil.example", IndicatorType.DOMAIN, severity=Severity.LOW))
    high = parse_filter(query='sources.severity IN ("high")')
    assert ev.decide(sharing(1, rule=RuleDef("r", high)), view).outcome == "rule"
    assert ev.decide(sharing(1, rule=RuleDef("r", high)), view).outcome == "rule"
    low = parse_filter(query='sources.severity IN ("low")')
    assert ev.decide(sharing(1, rule=RuleDef("r", low)), view).selected


def test_decide_batch_publishes_only_changes_of_decision() -> None:
    catalog = Catalog(sharings=[sharing(1, "url"), sharing(2, "file")])
    ev = Evaluator()
    s = state("evil.example", IndicatorType.DOMAIN)
    first = decide_batch(catalog, ev, {"evil.example": s}, {}, T0)
    assert [(i.list_key, i.add) for i in first.intents] == [("t/url/list1", True)]
    announced = {"evil.example": {1: Announced(first.upserts[0][3], first.upserts[0][4])}}
    again = decide_batch(catalog, ev, {"evil.example": s}, announced, T0)
    assert again.intents == []
    s.active = False
    gone = decide_batch(catalog, ev, {"evil.example": s}, announced, T0)
    assert [(i.list_key, i.add) for i in gone.intents] == [("t/url/list1", False)]
    assert gone.deletes == [(1, "evil.example")]
    deleted = decide_batch(catalog, ev, {"evil.example": DELETED}, announced, T0, before={"evil.example": s})
    assert [(i.add, i.type) for i in deleted.intents] == [(False, IndicatorType.DOMAIN)]


def test_intents_have_distinct_version_4_event_ids() -> None:
    catalog = Catalog(sharings=[sharing(1, "url"), sharing(2, "url")])
    states = {f"v{n}.example": state(f"v{n}.example", IndicatorType.DOMAIN) for n in range(300)}
    ids = [i.event_id for _ in range(3) for i in decide_batch(catalog, Evaluator(), states, {}, T0).intents]
    assert len(ids) == 3 * 600
    assert len(set(ids)) == len(ids)  # within a batch and across batches
    assert {(u.version, u.variant) for u in ids} == {(4, uuid.RFC_4122)}


def test_muted_rules_freeze_their_sharings_and_orphans_are_emptied() -> None:
    muted = RuleDef("m", MATCH_ALL, muted=True, unmute_at=T0 + timedelta(hours=1))
    catalog = Catalog(sharings=[sharing(1, rule=muted)], orphan_lists={9: "t/url/old"})
    s = state("evil.example", IndicatorType.DOMAIN)
    frozen = decide_batch(catalog, Evaluator(), {"evil.example": s}, {}, T0)
    assert frozen.intents == []
    after = decide_batch(catalog, Evaluator(), {"evil.example": s}, {}, T0 + timedelta(hours=2))
    assert [i.add for i in after.intents] == [True]
    orphan = decide_batch(catalog, Evaluator(), {"evil.example": s}, {"evil.example": {9: Announced(1.0, 10)}}, T0)
    assert [(i.list_key, i.add) for i in orphan.intents] == [("t/url/old", False)]


def test_a_sharing_moved_to_another_list_leaves_the_old_one() -> None:
    moved = sharing(1, "url")
    s = state("evil.example", IndicatorType.DOMAIN)
    first = decide_batch(Catalog(sharings=[moved]), Evaluator(), {"evil.example": s}, {}, T0)
    prior = {"evil.example": {1: Announced(first.upserts[0][3], first.upserts[0][4], "t/url/previous")}}
    changes = decide_batch(Catalog(sharings=[moved]), Evaluator(), {"evil.example": s}, prior, T0)
    assert [(i.list_key, i.add) for i in changes.intents] == [("t/url/previous", False), ("t/url/list1", True)]
