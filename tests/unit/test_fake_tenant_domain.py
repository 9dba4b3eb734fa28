"""The fake Netskope tenant's rules, without a server: grammar, caps, pending/deploy, v1 replace,
rate limiting, iterator cursors, fault draws."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pydantic import ValidationError

from fake_tenant.domain import (
    DUPLICATE_REQUEST,
    FAULT_KINDS,
    AlertExport,
    ExportIn,
    FaultInjector,
    FaultsIn,
    FileHashLists,
    MiB,
    RequestLog,
    SlidingWindowLimiter,
    Tenant,
    TenantConfig,
    TenantError,
    UrlLists,
    list_bytes,
    rejected_entries,
)
from fake_tenant.url_grammar import regex_entry_problem, url_entry_problem, url_entry_problem_in_full

NOW = 1_780_000_000.0
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def plugin_batch_size(values: list[str]) -> int:
    """The reference plugin's make_batch arithmetic, verbatim in spirit: +4 for the first, +3 after."""
    out: list[str] = []
    size = 0
    for value in values:
        size += len(json.dumps(value)) + (3 if out else 4)
        out.append(value)
    return size


def body(urls: list[Any], list_type: str | None = "exact", name: str | None = "L") -> dict[str, Any]:
    data: dict[str, Any] = {"urls": urls}
    if list_type is not None:
        data["type"] = list_type
    out: dict[str, Any] = {"data": data}
    if name is not None:
        out["name"] = name
    return out


def refused(exc: pytest.ExceptionInfo[TenantError]) -> list[str]:
    message = exc.value.message
    assert isinstance(message, list)
    return [entry for entry, _reason in message]


# ---------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    "entry",
    [
        "example.com",
        "EXAMPLE.com",
        "localhost",
        "www.example.com/path/to/page?x=1",
        "example.com/",
        "*.example.com",
        "*.example.com/path",
        "example.com:8080",
        "example.com:8080/p",
        "xn--bcher-kva.example",
        "a-b.example.co.uk",
        "1.2.3.4",
        "1.2.3.4:443",
        "1.2.3.4/some/path",
        "10.0.0.0/8",
        "192.168.1.0/24",
        "1.0.0.0/8",
        "http://example.com",
        "HTTPS://example.com:443/a?b=c#d",
        "10.0.0.1-10.0.0.9",
        "example.com/a%2Fb",
        "1-2.example",
    ],
)
def test_grammar_accepts_the_documented_formats(entry: str) -> None:
    assert url_entry_problem(entry) is None


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("google.com/*", "wildcards are allowed only as a leading '*.'"),
        ("*example.com", "wildcards are allowed only as a leading '*.'"),
        ("ex*ample.com", "wildcards are allowed only as a leading '*.'"),
        ("*.*.example.com", "wildcards are allowed only as a leading '*.'"),
        ("*", "wildcards are allowed only as a leading '*.'"),
        ("*.1.2.3.4", "a wildcard cannot prefix an IP address"),
        ("::1", "IPv6 addresses are not supported"),
        ("2001:db8::1", "IPv6 addresses are not supported"),
        ("2001:db8::/32", "IPv6 addresses are not supported"),
        ("[2001:db8::1]:443", "IPv6 addresses are not supported"),
        ("ftp://example.com", "only an http or https scheme is allowed (and ignored)"),
        ("0.0.0.0", "0.0.0.0 is not allowed"),  # noqa: S104
        ("0.0.0.0/0", "0.0.0.0 is not allowed"),
        ("1.2.3.4/24", "invalid CIDR: the prefix must be 0..32 and the host bits zero"),
        ("10.0.0.9-10.0.0.1", "invalid IP range: the start address must be lower than the end address"),
        ("10.0.0.1-10.0.0.1", "invalid IP range: the start address must be lower than the end address"),
        ("10.0.0.1-10.0.0.9/x", "an IP range cannot have a wildcard, port, path or query"),
        ("10.0.0.1-10.0.0.999", "invalid IP range: both ends must be IPv4 addresses other than 0.0.0.0"),
        ("example.com/a<b", "invalid path: use percent-encoding for characters other than unreserved and !$&'()*+,;="),
        ("example.com/100%", "invalid path: use percent-encoding for characters other than unreserved and !$&'()*+,;="),
        ("exa mple.com", "whitespace or control characters"),
        (" example.com", "whitespace or control characters"),
        ("bücher.de", "non-ASCII characters: use the punycode form of the host"),
        ("", "empty entry"),
        (42, "not a string"),
        (None, "not a string"),
        ("1.2.3.999", "invalid IPv4 address"),
        ("1.2.3", "invalid IPv4 address"),
        ("01.2.3.4", "invalid IPv4 address"),
        ("10.0.0.0/33", "invalid CIDR: the prefix must be 0..32 and the host bits zero"),
        ("10.0.0.0:80/8", "a CIDR range cannot have a port"),
        ("example.com:0", "invalid port"),
        ("example.com:99999", "invalid port"),
        ("example.com:http", "invalid port"),
        ("-bad.example.com", "invalid host name"),
        ("under_score.example.com", "invalid host name"),
        ("user@example.com", "user:password@host is not supported"),
        ("a..example.com", "invalid host name"),
        ("example.com.", "invalid host name"),
        ("a.123", "invalid host name: numeric top-level label"),
        ("/path-only", "missing host"),
        (":8080", "missing host"),
        ("x" * 64 + ".com", "invalid host name"),
        (".".join(["abcdefghi"] * 26), "host name longer than 253 characters"),
    ],
)
def test_grammar_refuses_the_rest_with_a_reason(entry: object, reason: str) -> None:
    assert url_entry_problem(entry) == reason


@pytest.mark.parametrize("alphabet", ["ab-.*/:1 _\t9é", "a-.*/", "a1.-/:*", "ab.-", "a0./?=&%:", "a1.-/<[%#"])
def test_the_fast_path_accepts_nothing_the_full_rules_refuse(alphabet: str) -> None:
    rng = random.Random(alphabet)
    for _ in range(20_000):
        entry = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert url_entry_problem(entry) == url_entry_problem_in_full(entry), entry
    assert url_entry_problem("a.com/redirect?to=http://b.com") is None  # a URL in the path is no scheme


def test_rejected_entries_lists_every_refused_entry_first_in_request_order() -> None:
    entries = ["ok.com", "google.com/*", "also-ok.com/x", "::1", 7, "1.2.3.4"]
    assert rejected_entries(entries, "exact") == [
        ["google.com/*", "wildcards are allowed only as a leading '*.'"],
        ["::1", "IPv6 addresses are not supported"],
        [7, "not a string"],
    ]


def test_regex_lists_take_any_compiling_pattern() -> None:
    assert regex_entry_problem(r"^.*\.example\.com/.*$") is None
    assert regex_entry_problem("google.com/*") is None
    problem = regex_entry_problem("(unclosed")
    assert problem is not None
    assert problem.startswith("invalid regular expression")
    assert rejected_entries(["ok", "(", "[a-"], "regex") == [
        ["(", regex_entry_problem("(")],
        ["[a-", regex_entry_problem("[a-")],
    ]


# ---------------------------------------------------------------------------- sizes and caps


@pytest.mark.parametrize(
    "values",
    [[], ["a.com"], ["a.com", "b.example.org/path"], ['quo"te.com', "back\\slash", "bücher.de", "ctl\x01"]],
)
def test_list_bytes_counts_exactly_as_the_reference_plugin(values: list[str]) -> None:
    assert list_bytes(values) == plugin_batch_size(values)


def test_url_list_at_exactly_7_mib_is_accepted_one_byte_more_is_not() -> None:
    lists = UrlLists(max_bytes=7 * MiB, max_entries=300_000)
    # Values of 40 characters cost 45 bytes each; the last one is sized to land on the cap.
    values = [f"h{i:08d}.example-for-cap-test.com/abcde" for i in range(163_000)]
    assert all(len(v) == 40 for v in values)
    remaining = 7 * MiB - list_bytes(values)
    last = "z.com/" + "p" * (remaining - 5 - len("z.com/"))
    values.append(last)
    assert list_bytes(values) == 7 * MiB
    lists.create(body(values), NOW)
    with pytest.raises(TenantError) as exc:
        lists.patch(1, "append", {"data": {"urls": ["y.io"], "type": "exact"}}, NOW)
    assert exc.value.status == 400
    assert "7340032" in str(exc.value.message)
    assert len(lists.get(1)["data"]["urls"]) == 163_001  # nothing applied

    over = UrlLists(max_bytes=7 * MiB, max_entries=300_000)
    values[-1] += "p"
    with pytest.raises(TenantError) as exc:
        over.create(body(values), NOW)
    assert exc.value.status == 400
    assert "7340033 bytes" in str(exc.value.message)
    assert over.listing() == []


def test_small_caps_count_appends_incrementally_and_entries_cap() -> None:
    cap = list_bytes(["a.com", "b.com"])
    assert cap == 21
    lists = UrlLists(max_bytes=cap, max_entries=3)
    lists.create(body(["a.com"]), NOW)
    lists.patch(1, "append", {"data": {"urls": ["b.com", "a.com"], "type": "exact"}}, NOW)
    assert lists.snapshot()["L"]["pending_bytes"] == 21
    with pytest.raises(TenantError, match="27 bytes"):
        lists.patch(1, "append", {"data": {"urls": ["c"], "type": "exact"}}, NOW)
    # A replace is counted from scratch.
    lists.patch(1, "replace", {"data": {"urls": ["x.io", "y.io"], "type": "exact"}}, NOW)
    assert lists.snapshot()["L"]["pending_bytes"] == list_bytes(["x.io", "y.io"])

    counted = UrlLists(max_bytes=MiB, max_entries=3)
    counted.create(body(["a.com", "b.com", "c.com"]), NOW)
    with pytest.raises(TenantError, match="4 entries, more than the 3 allowed"):
        counted.patch(1, "append", {"data": {"urls": ["d.com"]}}, NOW)
    # Entries already present do not count twice.
    counted.patch(1, "append", {"data": {"urls": ["a.com", "c.com"]}}, NOW)


# ---------------------------------------------------------------------------- pending and deploy


def test_changes_stay_pending_until_deploy() -> None:
    lists = UrlLists(7 * MiB, 300_000)
    (created,) = lists.create(body(["a.com", "b.com"]), NOW)
    assert created["pending"] == 1
    assert created["modify_type"] == "Created"
    assert created["data"] == {"urls": ["a.com", "b.com"], "type": "exact", "json_version": 2}
    assert created["modify_time"].endswith("Z")
    assert lists.listing(pending_param="0") == []
    assert [r["id"] for r in lists.listing(pending_param="1")] == [1]
    assert lists.snapshot()["L"]["deployed"] == []

    deployed = lists.deploy()
    assert [(r["id"], r["pending"], r["data"]["urls"]) for r in deployed] == [(1, 0, ["a.com", "b.com"])]
    assert lists.deploy() == []  # nothing pending any more
    assert lists.listing(pending_param="1") == []

    edited = lists.patch(1, "append", {"data": {"urls": ["c.com", "a.com"], "type": "exact"}}, NOW + 1)
    assert edited["data"]["urls"] == ["a.com", "b.com", "c.com"]
    assert (edited["pending"], edited["modify_type"]) == (1, "Edited")
    # The default view is the list as it will be; pending=0 the deployed one.
    assert lists.listing("id,name,data")[0]["data"]["urls"] == ["a.com", "b.com", "c.com"]
    assert lists.listing("data", "0")[0]["data"]["urls"] == ["a.com", "b.com"]
    state = lists.snapshot()["L"]
    assert (state["deployed"], state["pending"]) == (["a.com", "b.com"], ["a.com", "b.com", "c.com"])
    lists.deploy()
    assert lists.snapshot()["L"]["deployed"] == ["a.com", "b.com", "c.com"]


def test_field_and_pending_parameters() -> None:
    lists = UrlLists(7 * MiB, 300_000)
    lists.create(body(["a.com"], name="One"), NOW)
    lists.create(body(["b.com"], name="Two"), NOW)
    assert lists.listing("id,name") == [{"id": 1, "name": "One"}, {"id": 2, "name": "Two"}]
    assert set(lists.listing()[0]) == {"id", "name", "data", "modify_type", "modify_time", "modify_by", "pending"}
    with pytest.raises(TenantError, match="unknown field"):
        lists.listing("id,colour")
    with pytest.raises(TenantError, match="pending must be 0 or 1"):
        lists.listing(pending_param="2")


def test_delete_is_pending_too_and_blocks_edits() -> None:
    lists = UrlLists(7 * MiB, 300_000)
    lists.create(body(["a.com"]), NOW)
    lists.deploy()
    deleted = lists.delete("1", NOW)
    assert (deleted["modify_type"], deleted["pending"]) == ("Deleted", 1)
    assert lists.delete(1, NOW)["modify_type"] == "Deleted"  # idempotent
    assert lists.snapshot()["L"]["pending"] is None
    assert lists.listing(pending_param="0")[0]["data"]["urls"] == ["a.com"]
    with pytest.raises(TenantError, match="pending deletion"):
        lists.patch(1, "append", {"data": {"urls": ["b.com"]}}, NOW)
    with pytest.raises(TenantError, match="already exists"):
        lists.create(body(["b.com"]), NOW)  # the name is taken until the deletion is deployed
    assert lists.deploy()[0]["modify_type"] == "Deleted"
    with pytest.raises(TenantError) as exc:
        lists.get(1)
    assert exc.value.status == 404
    lists.create(body(["b.com"]), NOW)
    assert lists.listing("id,name") == [{"id": 2, "name": "L"}]


def test_create_put_and_patch_validation() -> None:
    lists = UrlLists(7 * MiB, 300_000)
    for bad, message in [
        ([], "request body must be a JSON object"),
        ({"data": {"urls": ["a.com"], "type": "exact"}}, "name is required"),
        (body(["a.com"], name=""), "name must be a non-empty string"),
        (body(["a.com"], name="my.list"), "not allowed: ."),
        (body(["a.com"], name="a/b:c"), "not allowed: / :"),
        ({"name": "L"}, "data is required"),
        ({"name": "L", "data": ["a.com"]}, "data must be an object"),
        ({"name": "L", "data": {"type": "exact"}}, "data.urls is required"),
        ({"name": "L", "data": {"urls": "a.com", "type": "exact"}}, "data.urls must be an array"),
        (body([]), "data.urls must not be empty"),
        (body(["a.com"], list_type=None), "data.type is required"),
        (body(["a.com"], list_type="wildcard"), "data.type must be 'exact' or 'regex'"),
    ]:
        with pytest.raises(TenantError, match=message):
            lists.create(bad, NOW)
    assert lists.listing() == []

    with pytest.raises(TenantError) as exc:
        lists.create(body(["a.com", "google.com/*", "::1"]), NOW)
    assert refused(exc) == ["google.com/*", "::1"]
    assert lists.listing() == []  # nothing applied

    lists.create(body(["a.com"], name="A"), NOW)
    lists.create(body(["^b$"], list_type="regex", name="B"), NOW)
    with pytest.raises(TenantError, match="already exists"):
        lists.create(body(["c.com"], name="A"), NOW)
    with pytest.raises(TenantError, match="already exists"):
        lists.put(2, body(["x"], name="A"), NOW)
    renamed = lists.put(2, body(["x.com"], name="B2"), NOW)
    assert (renamed["name"], renamed["data"]["type"], renamed["data"]["urls"]) == ("B2", "exact", ["x.com"])
    with pytest.raises(TenantError, match="does not match the list's type"):
        lists.patch(1, "append", {"data": {"urls": ["a"], "type": "regex"}}, NOW)
    replaced = lists.patch(1, "replace", {"data": {"urls": ["^a.*$"], "type": "regex"}}, NOW)
    assert (replaced["data"]["type"], replaced["data"]["urls"]) == ("regex", ["^a.*$"])
    with pytest.raises(TenantError) as exc:
        lists.patch(1, "append", {"data": {"urls": ["ok", "(", "also("]}}, NOW)
    assert refused(exc) == ["(", "also("]
    with pytest.raises(TenantError) as exc:
        lists.patch(99, "append", {"data": {"urls": ["a.com"]}}, NOW)
    assert exc.value.status == 404
    with pytest.raises(TenantError) as exc:
        lists.patch(1, "merge", {"data": {"urls": ["a.com"]}}, NOW)
    assert exc.value.status == 404


def test_duplicates_are_kept_once_in_first_seen_order() -> None:
    lists = UrlLists(7 * MiB, 300_000)
    (created,) = lists.create(body(["b.com", "a.com", "b.com"]), NOW)
    assert created["data"]["urls"] == ["b.com", "a.com"]
    assert lists.snapshot()["L"]["pending_bytes"] == list_bytes(["b.com", "a.com"])


# ---------------------------------------------------------------------------- file hash lists


def test_file_hash_list_replace_duplicate_rule_and_errors() -> None:
    hashes = FileHashLists(max_bytes=8 * MiB)
    assert hashes.update("Malware", MD5) == ["File hash list 'Malware' does not exist"]
    assert hashes.create("Malware") is True
    assert hashes.create("Malware") is False
    # An empty list is already empty: a duplicate request.
    assert hashes.update("Malware", "") == [DUPLICATE_REQUEST]
    assert hashes.update("Malware", f"{MD5},{SHA256}") == []
    assert hashes.snapshot() == {"Malware": [MD5, SHA256]}
    # The same hashes in another order, case or spacing change nothing.
    assert hashes.update("Malware", f" {SHA256.upper()} ,{MD5}") == [DUPLICATE_REQUEST]
    # The whole list is replaced.
    assert hashes.update("Malware", SHA256) == []
    assert hashes.snapshot() == {"Malware": [SHA256]}
    assert hashes.update("Malware", f"{MD5},nothex,{MD5[:-1]}") == [
        "Invalid file hash (not MD5 or SHA256): nothex",
        f"Invalid file hash (not MD5 or SHA256): {MD5[:-1]}",
    ]
    assert hashes.snapshot() == {"Malware": [SHA256]}
    assert hashes.update("Malware", None) == ["list is required: a comma-separated string of MD5 or SHA256 hashes"]
    assert hashes.update(None, MD5) == ["name is required"]
    hashes.create("Malware", pending_change=True)
    assert "pending change" in hashes.update("Malware", MD5)[0]
    hashes.create("Malware")
    assert hashes.update("Malware", MD5) == []


def test_file_hash_list_cap_is_counted_like_the_plugin() -> None:
    values = [f"{i:032x}" for i in range(3)]
    cap = list_bytes(values)
    assert cap == plugin_batch_size(values) == 3 * 37 + 1
    hashes = FileHashLists(max_bytes=cap)
    hashes.create("H")
    assert hashes.update("H", ",".join(values)) == []
    errors = hashes.update("H", ",".join([*values, f"{9:032x}"]))
    assert len(errors) == 1
    assert f"{cap + 37} bytes, more than the {cap} allowed" in errors[0]


# ---------------------------------------------------------------------------- rate limits


def test_sliding_window_allows_24_per_5_seconds_per_token() -> None:
    limiter = SlidingWindowLimiter(limit=24, window=5.0)
    for i in range(24):
        assert limiter.check("t", 100.0 + i * 0.01) is None
    wait = limiter.check("t", 101.0)
    assert wait == pytest.approx(4.0)
    assert limiter.check("other", 101.0) is None  # per token
    # Refused requests do not count: the window frees up as the first requests age out.
    assert limiter.check("t", 104.99) is not None
    assert limiter.check("t", 105.0) is None
    assert limiter.check("t", 105.005) is not None  # 100.01 is still in the window
    assert limiter.check("t", 105.011) is None
    assert SlidingWindowLimiter(limit=0, window=1.0).check("t", 0.0) is None  # 0 turns it off


def test_export_endpoints_allow_4_per_second_each_and_report_their_window() -> None:
    export = AlertExport(page_size=10_000, wait_time=30)
    states = [export.rate("tok", "malware", 10.0 + i * 0.1) for i in range(4)]
    assert [w for w, _ in states] == [None] * 4
    assert [s.remaining for _, s in states if s is not None] == [3, 2, 1, 0]
    assert states[0][1] is not None
    assert states[0][1].headers() == {"RateLimit-Limit": "4", "RateLimit-Remaining": "3", "RateLimit-Reset": "1"}
    wait, window = export.rate("tok", "malware", 10.5)
    assert wait == pytest.approx(0.5)
    assert window is not None
    assert window.headers() == {"RateLimit-Limit": "4", "RateLimit-Remaining": "0", "RateLimit-Reset": "1"}
    assert export.rate("tok", "malsite", 10.5)[0] is None  # per endpoint
    assert export.rate("tok", "malware", 11.0)[0] is None  # 10.0 left the window
    settings = export.configure(ExportIn(page_size=5, wait_time=2, rate_limit=0))
    assert settings == {"page_size": 5, "wait_time": 2, "rate_limit": 0, "rate_window": 1.0}
    assert all(export.rate("tok", "malware", 11.0) == (None, None) for _ in range(10))  # 0 turns it off


def test_the_default_page_holds_10000_alerts_as_documented() -> None:
    assert TenantConfig().alert_page_size == 10_000
    assert (TenantConfig().alert_rate_limit, TenantConfig().alert_rate_window) == (4, 1.0)


# ---------------------------------------------------------------------------- alert export


def alerts(*timestamps: int) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "md5": f"{ts:032x}", "severity": "high"} for ts in timestamps]


def ts(answer: dict[str, Any]) -> list[int]:
    return [a["timestamp"] for a in answer["result"]]


def test_iterator_next_resend_and_catch_up() -> None:
    export = AlertExport(page_size=2, wait_time=30)
    assert export.enqueue("malware", alerts(100, 101, 102, 103, 104), NOW) == 5
    first = export.export("malware", "it", "next")
    assert (first["ok"], ts(first), first["wait_time"], first["timestamp_hwm"]) == (1, [100, 101], 0, 101)
    assert first["result"][0]["alert_type"] == "Malware"
    assert len(first["result"][0]["_id"]) == 32
    assert ts(export.export("malware", "it", "next")) == [102, 103]
    again = export.export("malware", "it", "resend")
    assert (ts(again), again["timestamp_hwm"]) == ([102, 103], 103)
    last = export.export("malware", "it", "next")
    assert (ts(last), last["wait_time"], last["timestamp_hwm"]) == ([104], 30, 104)
    empty = export.export("malware", "it", "next")
    assert (ts(empty), empty["wait_time"]) == ([], 30)
    export.enqueue("malware", alerts(105), NOW)
    assert ts(export.export("malware", "it", "next")) == [105]
    # Another index has its own cursor; another type its own alerts.
    assert ts(export.export("malware", "other", "next")) == [100, 101]
    assert ts(export.export("malsite", "it", "next")) == []


def test_iterator_epoch_head_and_tail() -> None:
    export = AlertExport(page_size=10, wait_time=5)
    export.enqueue("malsite", [{"timestamp": t, "url": f"h{t}.com"} for t in (100, 200, 300)], NOW)
    started = export.export("malsite", "it", "200")
    assert (ts(started), started["timestamp_hwm"]) == ([200, 300], 300)
    assert started["result"][0]["alert_type"] == "malsite"
    # An alert older than the epoch, received later, stays skipped by that iterator.
    export.enqueue("malsite", [{"timestamp": 150}, {"timestamp": 400}], NOW)
    assert ts(export.export("malsite", "it", "next")) == [400]
    assert ts(export.export("malsite", "it", "head")) == [100, 200, 300, 150, 400]
    tail = export.export("malsite", "it", "tail")
    assert (ts(tail), tail["wait_time"], tail["timestamp_hwm"]) == ([], 5, 400)
    export.enqueue("malsite", [{"timestamp": 500}], NOW)
    assert ts(export.export("malsite", "it", "next")) == [500]
    fresh = export.export("malsite", "new", "1000")
    assert (ts(fresh), fresh["timestamp_hwm"]) == ([], 1000)


def test_iterator_errors_and_defaults() -> None:
    export = AlertExport(page_size=10, wait_time=5)
    with pytest.raises(TenantError) as exc:
        export.export("dlp", "it", "next")
    assert exc.value.status == 404
    for index, op, message in [(None, "next", "index"), ("it", None, "operation"), ("it", "later", "operation")]:
        with pytest.raises(TenantError, match=message):
            export.export("malware", index, op)
    with pytest.raises(TenantError, match="type must be"):
        export.enqueue("virus", [], NOW)
    with pytest.raises(TenantError, match=r"alerts \[1, 2\]"):
        export.enqueue("malware", [{}, "x", {"timestamp": "yesterday"}], NOW)
    export.enqueue("malware", [{"md5": MD5, "alert_type": "malware", "_id": "given"}], NOW)
    (alert,) = export.export("malware", "it", "next")["result"]
    assert alert == {"md5": MD5, "alert_type": "malware", "_id": "given", "timestamp": int(NOW)}


# ---------------------------------------------------------------------------- faults, log, reset


def test_faults_are_fractions_that_add_up_to_at_most_one() -> None:
    assert FaultsIn.model_validate({}).rates() == (0, 0, 0, 0, 0)
    FaultsIn.model_validate({"rate_429": 0.5, "rate_500": 0.5})
    for bad in ({"rate_429": 0.6, "rate_500": 0.5}, {"rate_drop": 1.5}, {"rate_500": -0.1}, {"colour": 1}):
        with pytest.raises(ValidationError):
            FaultsIn.model_validate(bad)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_rate_of_one_always_injects_that_fault(kind: str) -> None:
    injector = FaultInjector(seed=1)
    injector.configure(FaultsIn.model_validate({f"rate_{kind}": 1.0}))
    assert {injector.draw() for _ in range(200)} == {kind}


def test_fault_draws_replay_with_a_seed_and_split_by_rate() -> None:
    config = FaultsIn.model_validate({"rate_429": 0.1, "rate_500": 0.1, "rate_timeout": 0.1, "seed": 7})
    first, second = FaultInjector(seed=None), FaultInjector(seed=None)
    first.configure(config)
    second.configure(config)
    a = [first.draw() for _ in range(3000)]
    assert a == [second.draw() for _ in range(3000)]
    failed = sum(1 for d in a if d is not None) / len(a)
    assert 0.26 < failed < 0.34
    assert {d for d in a if d is not None} == {"429", "500", "timeout"}


def test_faults_apply_to_api_paths_only() -> None:
    injector = FaultInjector(seed=1)
    assert injector.applies("/api/v2/policy/urllist")
    assert not injector.applies("/_sim/state")
    injector.configure(FaultsIn.model_validate({"paths": ["/api/v1/", "/_sim/"]}))
    assert injector.applies("/api/v1/updateFileHashList")
    assert not injector.applies("/api/v2/policy/urllist")
    assert not injector.applies("/_sim/state")


def test_request_log_is_a_bounded_ring() -> None:
    requests = RequestLog(size=3)
    for i in range(5):
        requests.add("GET", f"/api/{i}", "", 200, None, NOW + i, 1.0)
    snap = requests.snapshot()
    assert (snap["total"], snap["kept"]) == (5, 3)
    assert [r["seq"] for r in snap["requests"]] == [3, 4, 5]
    assert [r["path"] for r in requests.snapshot(since=4)["requests"]] == ["/api/4"]
    assert requests.snapshot(path_prefix="/api/3")["requests"][0]["seq"] == 4


def test_reset_empties_everything() -> None:
    tenant = Tenant(TenantConfig(v1_rate_limit=1))
    tenant.urllists.create(body(["a.com"]), NOW)
    tenant.filehashlists.create("H")
    tenant.alerts.enqueue("malware", alerts(1), NOW)
    tenant.alerts.export("malware", "it", "next")
    tenant.faults.configure(FaultsIn.model_validate({"rate_500": 1.0}))
    tenant.requests.add("GET", "/api/x", "", 200, None, NOW, 1.0)
    assert tenant.v1_limiter.check("t", 0.0) is None
    assert tenant.v1_limiter.check("t", 0.1) is not None
    tenant.reset()
    assert tenant.state() == {
        "urllists": {},
        "filehashlists": {},
        "alerts": {"malware": 0, "malsite": 0},
        "iterators": {},
    }
    assert tenant.faults.config == FaultsIn()
    assert tenant.requests.snapshot()["total"] == 0
    assert tenant.v1_limiter.check("t", 0.2) is None
    (created,) = tenant.urllists.create(body(["a.com"]), NOW)
    assert created["id"] == 1


def test_a_replace_checks_what_is_new_to_the_list_and_answers_as_before() -> None:
    """A replace checks only the entries the list does not hold yet (held ones passed the same grammar):
    refused entries are still every bad new one, in request order, and nothing is applied."""
    lists = UrlLists(max_bytes=7 * MiB, max_entries=300_000)
    lists.create(body(["a.com", "b.com", "c.com"]), NOW)
    with pytest.raises(TenantError) as exc:
        lists.patch(1, "replace", {"data": {"urls": ["bad_host.com", "a.com", 7, "b.com"], "type": "exact"}}, NOW)
    assert exc.value.status == 400
    assert exc.value.message == [["bad_host.com", "invalid host name"], [7, "not a string"]]
    assert lists.get(1)["data"]["urls"] == ["a.com", "b.com", "c.com"]
    lists.patch(1, "replace", {"data": {"urls": ["c.com", "a.com", "d.com"], "type": "exact"}}, NOW)
    assert lists.get(1)["data"]["urls"] == ["c.com", "a.com", "d.com"]
    # Under another type, nothing held counts as checked.
    with pytest.raises(TenantError) as exc:
        lists.patch(1, "replace", {"data": {"urls": ["a.com", "("], "type": "regex"}}, NOW)
    assert [e[0] for e in exc.value.message] == ["("]
