"""The sink's decisions without I/O: the call that brings a list to its selection, the tenant's answers."""

from __future__ import annotations

from cte_common.indicators import IndicatorType
from cte_common.sharing import cost_bytes, entry_cost, list_entry
from netskope_sink.lists.domain import (
    CapReserve,
    failure_kind,
    file_push_needed,
    plan_url_push,
    refused_backoff,
    rejected_entries,
    replaced_entries,
    split_left_out,
    tenant_message,
    v1_errors,
)


def test_a_url_list_gets_appends_and_a_replace_only_to_take_ours_out() -> None:
    assert plan_url_push(exists=True, appends=0, removes=0) == "none"
    assert plan_url_push(exists=True, appends=1, removes=0) == "append"
    # Something of ours must go: the tenant's content less ours replaces it (foreign entries stay).
    assert plan_url_push(exists=True, appends=1, removes=1) == "replace"
    assert plan_url_push(exists=True, appends=0, removes=1) == "replace"
    assert plan_url_push(exists=False, appends=0, removes=0) == "create"


def test_a_replace_keeps_what_the_tenant_holds_but_our_removals_and_adds_the_appends() -> None:
    holds = ["foreign.example", "ours-1.example", "ours-2.example", "default.example"]
    body = replaced_entries(
        holds,
        removes=["ours-2.example"],
        appends=["new-1.example", "ours-1.example", "new-1.example", "refused.example"],
        exclude={"default.example", "refused.example"},
    )
    # In the tenant's order; a foreign entry stays; an append it holds already is not sent twice; the
    # placeholder and refused entries never go.
    assert body == ["foreign.example", "ours-1.example", "new-1.example"]
    assert replaced_entries(["a.example"], removes=["a.example"], appends=[], exclude=set()) == []
    # An append that is also removed (not made by the diff, but as the set-wise replace read it) stays.
    assert replaced_entries(["a.example"], removes=["a.example"], appends=["a.example"], exclude=set()) == ["a.example"]


def test_a_file_hash_list_is_replaced_only_when_something_changed() -> None:
    assert not file_push_needed(appends=0, removes=0, holds_any=True)
    assert file_push_needed(appends=1, removes=0, holds_any=True)
    assert file_push_needed(appends=0, removes=1, holds_any=True)
    assert file_push_needed(appends=0, removes=0, holds_any=False)


def test_tenant_answers_are_read_in_both_documented_shapes() -> None:
    pairs = [["bad/*", "wildcard only as a leading *."], ["x y", "space"]]
    want = [("bad/*", "wildcard only as a leading *."), ("x y", "space")]
    assert rejected_entries({"message": pairs}) == want  # what Netskope's plugin reads
    assert rejected_entries({"status": "error", "errors": pairs}) == want  # the documentation's example
    assert rejected_entries({"message": "Invalid token"}) == []
    assert rejected_entries(None) == []
    assert tenant_message({"status": "error", "message": "list limit reached"}, "") == "list limit reached"
    assert tenant_message({"errors": ["one", "two"]}, "") == "one; two"
    assert tenant_message(None, "<html>gateway</html>") == "<html>gateway</html>"
    assert v1_errors({"status": "error", "errors": ["Duplicate request, no change in file hashes"]}) == [
        "Duplicate request, no change in file hashes"
    ]
    assert v1_errors({"status": "success"}) == []


def test_failures_are_credentials_refusals_or_transient() -> None:
    assert failure_kind(401) == failure_kind(403) == "credentials"
    assert failure_kind(400) == failure_kind(404) == failure_kind(413) == "refused"
    assert failure_kind(200) == "refused"  # a v1 error in its 200 envelope
    assert failure_kind(429) == failure_kind(500) == failure_kind(None) == "transient"


def test_a_refused_list_backs_off_to_at_most_fifteen_minutes() -> None:
    delays = [refused_backoff(n, 30, 900) for n in range(8)]
    assert delays == [30, 60, 120, 240, 480, 900, 900, 900]
    assert refused_backoff(10_000, 30, 900) == 900


def test_what_is_left_out_is_split_between_the_cap_and_the_tenant_limits() -> None:
    assert split_left_out(10, 5, fit=8, tenant_bound=True) == (7, 3)
    assert split_left_out(10, 5, fit=5, tenant_bound=False) == (10, 0)
    assert split_left_out(10, 5, fit=None, tenant_bound=True) == (0, 10)
    assert split_left_out(10, 5, fit=None, tenant_bound=False) == (10, 0)


def test_a_url_costs_what_its_entry_costs_as_pushed() -> None:
    assert list_entry("url", "https://a.example/x", IndicatorType.URL) == "a.example/x"
    assert list_entry("url", "2001:db8::1", IndicatorType.IPV6) is None
    assert list_entry("file", "ab" * 16, IndicatorType.MD5) == "ab" * 16
    assert entry_cost("url", "https://a.example/x", IndicatorType.URL) == cost_bytes("a.example/x")
    assert entry_cost("url", "ftp://é.example", IndicatorType.URL) == cost_bytes("é.example")
    assert entry_cost("url", "a.example", IndicatorType.DOMAIN) == cost_bytes("a.example")


def test_a_list_keeps_room_for_its_inflow_only_when_trimmed_again_soon() -> None:
    reserve = CapReserve(seconds=10.0, max_share=0.1)
    fed = {"cap_bytes": 1_000_000, "max_entries": 10_000, "grown_bytes": 1_000, "grown_entries": 25}
    # Never trimmed, or trimmed long ago: the longest prefix that fits, as without a reserve.
    assert reserve.room(**fed, since_push=2.0, since_trim=None) == (0, 0)
    assert reserve.room(**fed, since_push=2.0, since_trim=20.5) == (0, 0)
    # Trimmed within twice the horizon: ten seconds of the inflow measured since the last push.
    assert reserve.room(**fed, since_push=2.0, since_trim=20.0) == (5_000, 125)
    # At most the share of the cap, in bytes and in entries alike.
    assert reserve.room(**fed, since_push=0.5, since_trim=1.0) == (20_000, 500)
    assert reserve.room(**{**fed, "grown_entries": 2_000}, since_push=5.0, since_trim=1.0) == (2_000, 1_000)
    # A push right after another: its inflow is taken over at least a tenth of a second.
    assert reserve.room(**{**fed, "grown_bytes": 10}, since_push=0.0, since_trim=1.0) == (1_000, 1_000)
    # Nothing grew (removals only, or values beyond the cut): no reserve, the list is filled.
    assert reserve.room(**{**fed, "grown_bytes": -500, "grown_entries": 0}, since_push=1.0, since_trim=1.0) == (0, 0)
    # Turned off.
    assert CapReserve().room(**fed, since_push=1.0, since_trim=1.0) == (0, 0)
