"""The ingest-api's pure rules for business rules, the allow-list and sharing configurations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from cte_common.query import QueryError
from cte_common.sharing import AllowList, Candidate, Decision, Evaluator, cost_bytes
from ingest_api.allow_list.domain import allow_pattern
from ingest_api.rules.domain import (
    RuleTestTally,
    ad_hoc_sharing,
    exception_tags,
    mute_problem,
    rule_columns,
    rule_def,
    rule_muted,
    rule_out,
    rule_test_action,
    rule_test_source,
    rule_uses_tag,
    stored_exceptions,
)
from ingest_api.rules.schemas import ExceptionIn, FiltersIn, RuleIn, RulePatch
from ingest_api.sharing.domain import DryRun, sharing_def, sharing_out, target_problems
from ingest_api.sharing.schemas import SharingIn

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
SEVERITIES = ["unknown", "low", "medium", "high", "critical"]
EVERY_SEVERITY_TEXT = 'sources.severity IN ("unknown","low","medium","high","critical")'
EVERY_SEVERITY_MONGO = {"sources": {"$elemMatch": {"severity": {"$in": SEVERITIES}}}}


def stored_rule(rule: RuleIn, **kw: Any) -> dict[str, Any]:
    row = {
        "name": rule.name,
        **rule_columns(rule.filters),
        "exceptions": stored_exceptions(rule.exceptions),
        "muted": False,
        "unmute_at": None,
        "created_at": NOW,
        "updated_at": NOW,
    }
    row.update(kw)
    return row


def indicator(value: str, kind: str, *sources: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"value": value, "type": kind, "active": True, "test": False, "sources": list(sources), **kw}


def entry(source: str = "DW", **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": source,
        "severity": "high",
        "reputation": 5,
        "tags": [],
        "lastSeen": NOW - timedelta(days=1),
        "retracted": False,
    }
    base.update(kw)
    return base


def test_every_severity_is_the_same_rule_in_both_forms() -> None:
    text = rule_columns(FiltersIn(query=EVERY_SEVERITY_TEXT))
    as_object = rule_columns(FiltersIn(mongo=EVERY_SEVERITY_MONGO))
    as_string = rule_columns(FiltersIn(mongo=json.dumps(EVERY_SEVERITY_MONGO)))
    assert text["filter"] == as_object["filter"] == as_string["filter"] == EVERY_SEVERITY_MONGO
    assert text["filter_text"] == EVERY_SEVERITY_TEXT  # the text as written
    assert as_object["filter_text"] == 'sources.severity IN ("unknown", "low", "medium", "high", "critical")'


def test_filters_need_exactly_one_form_and_errors_name_where() -> None:
    with pytest.raises(ValidationError, match="exactly one of query and mongo"):
        FiltersIn()
    with pytest.raises(ValidationError, match="exactly one of query and mongo"):
        FiltersIn(query="", mongo={})
    with pytest.raises(QueryError, match=r"^filters\.query: position 0: unknown field 'colour'"):
        rule_columns(FiltersIn(query='colour = "red"'))
    with pytest.raises(QueryError, match=r"^filters\.mongo\.\$where: unknown operator"):
        rule_columns(FiltersIn(mongo={"$where": "1"}))
    with pytest.raises(QueryError, match=r"^exceptions\[1\]\.filters\.mongo: invalid JSON"):
        stored_exceptions([ExceptionIn(name="a", tags=["x"]), ExceptionIn(name="b", filters=FiltersIn(mongo="{nope"))])


def test_exceptions_are_stored_with_canonical_filters_or_tags() -> None:
    exceptions = [
        ExceptionIn(name="low", filters=FiltersIn(query='sources.severity = "low"')),
        ExceptionIn(name="benign", tags=["benign", "benign", "fp"]),
    ]
    stored = stored_exceptions(exceptions)
    assert stored == [
        {"name": "low", "filter": {"sources": {"$elemMatch": {"severity": "low"}}}, "tags": []},
        {"name": "benign", "filter": None, "tags": ["benign", "fp"]},
    ]
    assert exception_tags(stored) == ["benign", "fp"]
    with pytest.raises(ValidationError, match="exactly one of filters and tags"):
        ExceptionIn(name="both", filters=FiltersIn(query=""), tags=["a"])
    with pytest.raises(ValidationError, match="exactly one of filters and tags"):
        ExceptionIn(name="neither")
    with pytest.raises(ValidationError):
        ExceptionIn(name="no tags", tags=[])
    with pytest.raises(QueryError, match="matches everything"):
        stored_exceptions([ExceptionIn(name="all", filters=FiltersIn(query=""))])


def test_rule_input_rules() -> None:
    with pytest.raises(ValidationError, match="cannot be created muted"):
        RuleIn(name="r", filters=FiltersIn(query=""), muted=True, unmuteAt=NOW + timedelta(days=1))
    with pytest.raises(ValidationError, match="two exceptions are named 'x'"):
        RuleIn(
            name="r",
            filters=FiltersIn(query=""),
            exceptions=[ExceptionIn(name="x", tags=["a"]), ExceptionIn(name="x", tags=["b"])],
        )
    with pytest.raises(ValidationError, match="must not contain '/'"):
        RuleIn(name="a/b", filters=FiltersIn(query=""))
    naive = RulePatch(muted=True, unmuteAt=datetime(2030, 1, 1))
    assert naive.unmuteAt == datetime(2030, 1, 1, tzinfo=UTC)


def test_mute_needs_a_future_unmute_time_and_ends_by_itself() -> None:
    assert mute_problem(True, None, NOW) == "unmuteAt: muting a rule needs an unmuteAt in the future"
    assert mute_problem(True, NOW - timedelta(seconds=1), NOW) is not None
    assert mute_problem(True, NOW + timedelta(hours=1), NOW) is None
    assert mute_problem(False, None, NOW) is None
    row = {"muted": True, "unmute_at": NOW + timedelta(hours=1)}
    assert rule_muted(row, NOW)
    assert not rule_muted(row, NOW + timedelta(hours=2))
    assert not rule_muted({"muted": False, "unmute_at": None}, NOW)


def test_rule_output_shape() -> None:
    rule = RuleIn(
        name="Every Severity",
        filters=FiltersIn(mongo=json.dumps(EVERY_SEVERITY_MONGO)),
        exceptions=[
            ExceptionIn(name="low", filters=FiltersIn(mongo={"sources": {"$elemMatch": {"severity": "low"}}})),
            ExceptionIn(name="benign", tags=["benign"]),
        ],
    )
    out = rule_out(stored_rule(rule), NOW)
    assert out["name"] == "Every Severity"
    assert json.loads(out["filters"]["mongo"]) == EVERY_SEVERITY_MONGO
    assert out["filters"]["query"].startswith("sources.severity IN (")
    assert out["exceptions"] == [
        {
            "name": "low",
            "filters": {
                "query": 'sources.severity = "low"',
                "mongo": json.dumps({"sources": {"$elemMatch": {"severity": "low"}}}),
            },
        },
        {"name": "benign", "tags": ["benign"]},
    ]
    assert out["muted"] is False
    assert out["unmuteAt"] is None
    muted = rule_out(stored_rule(rule, muted=True, unmute_at=NOW + timedelta(days=1)), NOW)
    assert muted["muted"] is True
    assert muted["unmuteAt"] == NOW + timedelta(days=1)


def test_tags_a_rule_uses() -> None:
    rule = RuleIn(
        name="r",
        filters=FiltersIn(query='sources.tags IN ("in-filter") && type = "url"'),
        exceptions=[
            ExceptionIn(name="by tag", tags=["in-exception"]),
            ExceptionIn(name="by query", filters=FiltersIn(query='NOT sources.tags IN ("in-exception-filter")')),
        ],
    )
    row = stored_rule(rule)
    for tag in ("in-filter", "in-exception", "in-exception-filter"):
        assert rule_uses_tag(row, tag)
    assert not rule_uses_tag(row, "url")
    assert not rule_uses_tag(stored_rule(RuleIn(name="All", filters=FiltersIn(query=""))), "in-filter")


def test_stored_rule_decides_like_the_rule_engine() -> None:
    rule = rule_def(
        stored_rule(
            RuleIn(
                name="Every Severity",
                filters=FiltersIn(query=EVERY_SEVERITY_TEXT),
                exceptions=[
                    ExceptionIn(name="excepted value", filters=FiltersIn(query='value = "excepted.example"')),
                    ExceptionIn(name="benign", tags=["benign"]),
                ],
            )
        )
    )
    evaluator = Evaluator(AllowList(()))
    sharing = ad_hoc_sharing(rule, "DW", "url")

    def outcome(item: dict[str, Any]) -> str:
        return evaluator.decide(sharing, item).outcome

    assert outcome(indicator("shared.example", "domain", entry())) == "selected"
    assert outcome(indicator("excepted.example", "domain", entry())) == "exception"
    assert outcome(indicator("tagged.example", "domain", entry(), entry("Other", tags=["benign"]))) == "exception"
    assert outcome(indicator("other.example", "domain", entry("Other"))) == "not_from_source"
    assert outcome(indicator("a" * 32, "md5", entry())) == "type"


def test_rule_test_helpers() -> None:
    assert rule_test_action("sha256") == "file"
    assert rule_test_action("md5") == "file"
    assert rule_test_action("ipv6") == "url"
    since = NOW - timedelta(days=7)
    item = indicator(
        "x.example",
        "domain",
        entry("Old", lastSeen=NOW - timedelta(days=30)),
        entry("Retracted", retracted=True),
        entry("Fresh"),
    )
    assert rule_test_source(item, since) == "Fresh"  # recent, and not retracted
    assert rule_test_source(indicator("y", "domain", entry("R", retracted=True)), since) == "R"
    assert rule_test_source(indicator("z", "domain", entry("Old", lastSeen=NOW - timedelta(days=30))), since) is None
    tally = RuleTestTally()
    tally.add("url", Decision("selected", 1.0, 20))
    tally.add("url", Decision("rule"))
    tally.add("file", Decision("selected", 1.0, 70))
    assert tally.out() == {"hash_count": 1, "hash_size": 70, "url_count": 1, "url_size": 20}


def test_allow_patterns_are_validated_and_canonical() -> None:
    assert allow_pattern("exact", " WWW.Example.COM. ") == "www.example.com"
    assert allow_pattern("exact", "A" * 32) == "a" * 32
    assert allow_pattern("exact", "HTTPS://Example.com:443/Path") == "https://example.com/Path"
    assert allow_pattern("exact", "1.2.3.4") == "1.2.3.4"
    assert allow_pattern("exact", "not a value at all") == "not a value at all"  # kept as given
    assert allow_pattern("suffix", "*.Example.COM") == "example.com"
    assert allow_pattern("suffix", "bücher.de") == "xn--bcher-kva.de"
    assert allow_pattern("cidr", "10.1.2.3/8") == "10.0.0.0/8"
    assert allow_pattern("regex", r"^ads?\.") == r"^ads?\."
    with pytest.raises(ValueError, match=r"^pattern: not a valid cidr pattern"):
        allow_pattern("cidr", "10.0.0.0/33")
    with pytest.raises(ValueError, match=r"^pattern: not a valid regular expression"):
        allow_pattern("regex", "(unclosed")
    with pytest.raises(ValueError, match=r"^pattern: not a domain suffix"):
        allow_pattern("suffix", "has space.com")
    with pytest.raises(ValueError, match=r"^pattern: not a domain suffix"):
        allow_pattern("suffix", "10.0.0.1")
    with pytest.raises(ValueError, match=r"^pattern: "):
        allow_pattern("suffix", "*.")


def test_target_parameters() -> None:
    target, problems = target_problems("url", {"list": "create", "name": "CTE URLs", "url_list_type": "Regex"})
    assert problems == []
    assert target is not None
    assert target.list_name == "CTE URLs"
    assert target.model_dump()["url_list_type"] == "regex"
    assert target_problems("url", {"list": "L", "max_url_list_cap": 7.5})[1] == [
        "parameters.max_url_list_cap: at most 7 MB, the tenant's URL list limit"
    ]
    assert target_problems("file", {"file_list": "H", "max_file_hash_cap": 9})[1] == [
        "parameters.max_file_hash_cap: at most 8 MB, the tenant's file hash list limit"
    ]
    assert target_problems("url", {"list": "create"})[1] == ["parameters.name: required when list is 'create'"]
    assert target_problems("file", {})[1] == ["parameters.file_list: Field required"]


def test_sharing_target_in_both_forms() -> None:
    base = {"sourceConfiguration": "DW", "businessRule": "All", "destinationConfiguration": "NS"}
    plain = SharingIn.model_validate({**base, "action": "url", "parameters": {"list": "L"}})
    reference = SharingIn.model_validate(
        {**base, "target": {"label": "Add to URL List", "value": "url", "parameters": {"list": "L"}}}
    )
    assert plain.resolved() == reference.resolved() == ("url", {"list": "L"})
    assert plain.priority == "lastSeen"
    with pytest.raises(ValidationError, match="not both"):
        SharingIn.model_validate({**base, "action": "url", "target": {"value": "url"}})
    with pytest.raises(ValidationError, match="action: required"):
        SharingIn.model_validate(base)
    with pytest.raises(ValidationError):
        SharingIn.model_validate({**base, "action": "private_app"})
    with pytest.raises(ValidationError):
        SharingIn.model_validate({**base, "action": "url", "priority": "newest"})


def test_sharing_row_to_output_and_definition() -> None:
    rule = stored_rule(RuleIn(name="All", filters=FiltersIn(query="")))
    row = {
        "id": 3,
        "source": "DW",
        "rule": "All",
        "destination": "NS",
        "action": "file",
        "parameters": {"file_list": "H", "max_file_hash_cap": 0.5, "default_file_hash": "f" * 64},
        "list_key": "prod/file/H",
        "priority": "severity",
        "created_at": NOW,
        "updated_at": NOW,
    }
    out = sharing_out(row)
    assert out["target"] == {"label": "Add to File Hash List", "value": "file", "parameters": row["parameters"]}
    assert out["listKey"] == "prod/file/H"
    definition = sharing_def(row, rule)
    assert definition.cap_bytes == 512 * 1024
    assert definition.priority == "severity"
    assert definition.list_key == "prod/file/H"


def test_dry_run_compares_both_sides_at_the_cap() -> None:
    run = DryRun()
    for n, value in enumerate(["a.example", "b.example", "c.example"]):
        run.add(value, Decision("selected", priority=10.0 - n, cost=cost_bytes(value)))
    run.add("allowed.example", Decision("allow_listed", allow_entry=1))
    run.add("excepted.example", Decision("exception"))
    run.add("other.example", Decision("exception"))
    cap = 1 + cost_bytes("a.example") + cost_bytes("b.example")  # room for two
    current = [Candidate("b.example", 5.0, cost_bytes("b.example")), Candidate("gone.example", 1.0, 10)]
    out = run.out(cap, current)
    assert out["selected"] == 2
    assert out["selectedBytes"] == cost_bytes("a.example") + cost_bytes("b.example")
    assert (out["wouldAdd"], out["wouldAddCount"]) == (["a.example"], 1)
    assert (out["wouldRemove"], out["wouldRemoveCount"]) == (["gone.example"], 1)
    assert (out["leftOutByCap"], out["leftOutByCapCount"]) == (["c.example"], 1)
    assert out["excluded"] == {"allow_listed": 1, "exception": 2}
    # The current side is cut at the same cap: what the cap leaves out of it is not held, so not removed.
    full = [Candidate(v, 10.0 - n, cost_bytes(v)) for n, v in enumerate(["a.example", "b.example", "c.example"])]
    assert run.out(cap, full)["wouldRemoveCount"] == 0
    assert run.out(cap, full)["wouldAddCount"] == 0


def test_dry_run_samples_at_most_a_hundred() -> None:
    run = DryRun()
    for n in range(150):
        run.add(f"v{n:03}.example", Decision("selected", priority=float(n), cost=10))
    out = run.out(10_000, [])
    assert out["wouldAddCount"] == 150
    assert len(out["wouldAdd"]) == 100
    assert out["wouldAdd"][0] == "v149.example"  # highest priority first
