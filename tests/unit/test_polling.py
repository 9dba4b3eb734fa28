"""Alert polling without I/O: alerts to indicators as the reference converts them, sightings exactly as
the ingest-api builds them for the same configuration, the iterator's names and page identities, and
the tenant client's rule that a lost ``next`` is never blindly retried."""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cte_common.events import IndicatorSighting
from cte_common.indicators import IndicatorType, Severity
from cte_common.sightings import SourceConfiguration
from ingest_api.configurations.schemas import AgingCriteria as ApiAgingCriteria
from ingest_api.configurations.schemas import ConfigurationRow
from ingest_api.indicators.domain import build_sighting
from ingest_api.indicators.schemas import IndicatorIn
from netskope_sink.alerts.domain import (
    alert_comments,
    alert_indicators,
    initial_epoch,
    iterator_index,
    page_digest,
    polled_alert_types,
    polled_page,
    polled_sighting,
)
from netskope_sink.alerts.schemas import Checkpoint, Page, targets_from_rows
from netskope_sink.tenant.client import TenantClient, TenantUnavailable
from netskope_sink.tenant.domain import rate_limit_pause

TENANT = "https://acme.goskope.com"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TS = 1_777_000_000  # the alerts' time
MD5 = "0cc175b9c0f1b6a831c399e269772661"
MD5_LOCAL = "92eb5ffee6ae2fec3ad71c777531578f"
SHA = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
SHA_LOCAL = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
ALL_KINDS = {IndicatorType.MD5, IndicatorType.SHA256, IndicatorType.URL}
NETSKOPE = SourceConfiguration(name="ns-poll", plugin="netskope")


def malware(**fields: Any) -> dict[str, Any]:
    return {
        "alert_type": "Malware",
        "timestamp": TS,
        "severity": "High",
        "object": "invoice.exe",
        "malware_name": "W32.Trojan",
        "malware_type": "Trojan",
        "md5": MD5,
        "local_md5": MD5,
        "sha256": SHA,
        "local_sha256": SHA,
        **fields,
    }


def malsite(**fields: Any) -> dict[str, Any]:
    return {
        "alert_type": "malsite",
        "timestamp": TS,
        "severity": "medium",
        "url": "evil.example/login",
        "malsite_category": ["Phishing", "Malware Distribution"],
        **fields,
    }


# ---------------------------------------------------------------------------- alerts to indicators


def test_a_malware_alert_gives_its_md5_and_sha256_with_the_reference_comments() -> None:
    items = alert_indicators(malware(), TENANT, ALL_KINDS, NOW)
    assert [(i.value, i.type) for i in items] == [(MD5, IndicatorType.MD5), (SHA, IndicatorType.SHA256)]
    for item in items:
        assert item.comments == f"{TENANT} - invoice.exe, Malware Name: W32.Trojan, Malware Type: Trojan"
        assert item.severity == Severity.HIGH
        assert item.seen == datetime.fromtimestamp(TS, UTC)


def test_local_hashes_are_taken_too_when_they_differ() -> None:
    items = alert_indicators(malware(local_md5=MD5_LOCAL, local_sha256=SHA_LOCAL), TENANT, ALL_KINDS, NOW)
    assert [i.value for i in items] == [MD5_LOCAL, MD5, SHA_LOCAL, SHA]
    only_local = alert_indicators(malware(md5=None, sha256="", local_sha256=SHA_LOCAL), TENANT, ALL_KINDS, NOW)
    assert [i.value for i in only_local] == [MD5, SHA_LOCAL]


def test_malware_comments_leave_out_a_missing_name_or_type() -> None:
    alert = malware(malware_name=None, malware_type="")
    assert alert_comments(alert, TENANT) == f"{TENANT} - invoice.exe"
    assert alert_comments(malware(object=None, malware_type=None), TENANT) == f"{TENANT} - , Malware Name: W32.Trojan"


def test_a_malsite_alert_gives_its_url_with_the_categories_as_comments() -> None:
    (item,) = alert_indicators(malsite(), TENANT, ALL_KINDS, NOW)
    assert (item.value, item.type, item.severity) == ("evil.example/login", IndicatorType.URL, Severity.MEDIUM)
    assert item.comments == f"{TENANT} - Phishing, Malware Distribution"
    assert alert_indicators(malsite(url=""), TENANT, ALL_KINDS, NOW) == []
    (no_categories,) = alert_indicators(malsite(malsite_category=None), TENANT, ALL_KINDS, NOW)
    assert no_categories.comments == f"{TENANT} -"  # stripped, as the reference's Indicator strips comments


def test_severity_is_lower_cased_when_valid_else_unknown_and_a_bad_timestamp_means_now() -> None:
    assert alert_indicators(malsite(severity="CRITICAL"), TENANT, ALL_KINDS, NOW)[0].severity == Severity.CRITICAL
    for bad in ("severe", None, 3):
        assert alert_indicators(malsite(severity=bad), TENANT, ALL_KINDS, NOW)[0].severity == Severity.UNKNOWN
    for bad_ts in (None, "soon", True, 1e30):
        assert alert_indicators(malsite(timestamp=bad_ts), TENANT, ALL_KINDS, NOW)[0].seen == NOW
    assert alert_indicators(malsite(timestamp=str(TS)), TENANT, ALL_KINDS, NOW)[0].seen.timestamp() == TS


def test_the_data_types_select_what_an_alert_gives() -> None:
    assert alert_indicators(malware(), TENANT, {IndicatorType.URL}, NOW) == []
    assert alert_indicators(malsite(), TENANT, {IndicatorType.MD5, IndicatorType.SHA256}, NOW) == []
    assert polled_alert_types({"threatDataTypes": "Malware"}) == ("malware",)
    assert polled_alert_types({"threatDataTypes": "URL"}) == ("malsite",)
    assert polled_alert_types({"threatDataTypes": "Both"}) == ("malware", "malsite")
    assert polled_alert_types({}) == ("malware", "malsite")


def test_a_page_skips_and_counts_invalid_values_and_gives_each_value_once_per_alert() -> None:
    page = polled_page(
        [
            malware(md5="not-a-hash", local_md5="NOT-A-HASH", sha256=SHA.upper(), local_sha256=SHA),
            malsite(url="http://bad host/x"),
            malsite(url="HTTP://Evil.Example/a"),
            "not an alert",
        ],
        tenant=TENANT,
        alert_type="malware",
        config=NETSKOPE,
        criterion="lastSeen",
        now=NOW,
    )
    # The malware export gives hashes only; the two spellings of one sha256 are one indicator.
    assert [(s.value, s.type) for s in page.sightings] == [(SHA, IndicatorType.SHA256)]
    assert page.invalid == {"md5": 2, "alert": 1}
    urls = polled_page(
        [malsite(url="http://bad host/x"), malsite(url="HTTP://Evil.Example/a")],
        tenant=TENANT,
        alert_type="malsite",
        config=NETSKOPE,
        criterion="lastSeen",
        now=NOW,
    )
    assert [s.value for s in urls.sightings] == ["http://evil.example/a"]  # canonical, as the API stores it
    assert urls.invalid == {"url": 1}


def test_the_same_page_gives_the_same_sightings_with_deterministic_ids() -> None:
    alerts = [malware(), malware(local_md5=MD5_LOCAL), malsite()]

    def build() -> list[IndicatorSighting]:
        return polled_page(
            alerts,
            tenant=TENANT,
            alert_type="malware",
            config=NETSKOPE,
            criterion="lastSeen",
            now=NOW,
            event_ids=lambda i: uuid.uuid5(uuid.NAMESPACE_URL, f"page/{i}"),
        ).sightings

    first, second = build(), build()
    assert first == second
    assert len({s.event_id for s in first}) == len(first) == 5
    assert all(s.internal and not s.from_api and s.source == "ns-poll" for s in first)


# ---------------------------------------------------------------------------- the API's rules


CONFIGS: list[dict[str, Any]] = [
    {},
    {"reputation": 8},
    {"reputation": 0, "age_after_days": 0},
    {"age_after_days": 30, "tags_aggregate_strategy": "overwrite"},
    {"aging": {"value": 6, "unit": "hours", "base": "lastSeen"}},
    {"aging": {"value": 90, "base": "firstSeen", "perType": {"url": {"value": 7}, "md5": {"value": 0}}}},
    {"plugin": "api_source", "aging": {"value": 15, "unit": "minutes"}},
]


@pytest.mark.parametrize("fields", CONFIGS)
@pytest.mark.parametrize("criterion", ["lastSeen", "firstSeen", "highestSeverity"])
@pytest.mark.parametrize(
    ("kind", "value"), [(IndicatorType.MD5, MD5), (IndicatorType.SHA256, SHA), (IndicatorType.URL, "evil.example/x")]
)
def test_a_polled_sighting_is_what_the_api_builds_for_the_same_item(
    fields: dict[str, Any], criterion: Any, kind: IndicatorType, value: str
) -> None:
    row = {
        "name": "ns-poll",
        "plugin": "netskope",
        "active": True,
        "age_after_days": 90,
        "reputation": 0,
        "tags_aggregate_strategy": "append",
        **fields,
    }
    seen = datetime.fromtimestamp(TS, UTC)
    comments = f"{TENANT} - invoice.exe, Malware Name: W32.Trojan"
    api_config = ConfigurationRow.model_validate(
        {**row, "aging": ApiAgingCriteria.model_validate(row["aging"]) if row.get("aging") else None}
    )
    item = IndicatorIn(
        type=kind,
        value=value,
        source="ns-poll",
        severity=Severity.HIGH,
        comments=comments,
        firstSeen=seen,
        lastSeen=seen,
    )
    expected = build_sighting(item, api_config, criterion, NOW)
    ours = polled_sighting(
        value,
        kind,
        severity=Severity.HIGH,
        seen=seen,
        comments=comments,
        config=SourceConfiguration.model_validate(row),
        criterion=criterion,
        now=NOW,
    )
    # The same event but for its id, and for from_api: a poll is not an API edit.
    assert ours.model_dump(exclude={"event_id", "from_api"}) == expected.model_dump(exclude={"event_id", "from_api"})
    assert expected.from_api is True
    assert ours.from_api is False
    assert ours.internal is (row["plugin"] == "netskope")


# ---------------------------------------------------------------------------- iterators and pages


def test_iterator_names_are_stable_and_made_of_safe_characters() -> None:
    assert iterator_index("ns-poll", "malware") == iterator_index("ns-poll", "malware")
    assert iterator_index("ns-poll", "malware") != iterator_index("ns-poll", "malsite")
    assert iterator_index("ns poll", "malware") != iterator_index("ns_poll", "malware")
    name = iterator_index("Prod / Tenant (EU) é", "malsite")
    assert name.startswith("cte_Prod_Tenant_EU_")
    assert name.endswith("_malsite")
    assert all(c.isascii() and (c.isalnum() or c == "_") for c in name)


def test_page_digest_identifies_a_page_whatever_the_key_order() -> None:
    a = [{"_id": "1", "url": "x.example", "timestamp": 1}]
    assert page_digest(a) == page_digest([{"timestamp": 1, "url": "x.example", "_id": "1"}])
    assert page_digest(a) != page_digest([{"_id": "2", "url": "x.example", "timestamp": 1}])
    assert page_digest([]) != page_digest(a)


def test_the_initial_epoch_is_now_minus_the_initial_range() -> None:
    assert initial_epoch(NOW, 7) == int((NOW - timedelta(days=7)).timestamp())
    assert initial_epoch(NOW, 0) == int(NOW.timestamp())


def test_an_answer_becomes_a_page() -> None:
    page = Page.from_answer({"ok": 1, "result": [malsite()], "wait_time": 30, "timestamp_hwm": TS})
    assert (len(page.alerts), page.wait_time, page.timestamp_hwm) == (1, 30, TS)
    assert page.digest == page_digest([malsite()])
    bare = Page.from_answer({"result": []})
    assert (bare.alerts, bare.wait_time, bare.timestamp_hwm) == ([], 0, None)


def test_targets_poll_the_chosen_types_from_the_initial_range() -> None:
    base = {
        "name": "ns-poll",
        "plugin": "netskope",
        "active": True,
        "age_after_days": 90,
        "reputation": 0,
        "tags_aggregate_strategy": "append",
        "aging": None,
        "ssl_validation": False,
        "use_proxy": False,
        "tenant": "acme",
        "base_url": TENANT,
        "v2_token_encrypted": None,
        "initial_range_days": 3,
        "tenant_proxy": True,
    }
    both = targets_from_rows([{**base, "parameters": {"enablePolling": True, "threatDataTypes": "Both"}}])
    assert [t.alert_type for t in both] == ["malware", "malsite"]
    assert all(t.initial_range_days == 3 and not t.verify and t.proxy for t in both)
    (url,) = targets_from_rows([{**base, "parameters": {"threatDataTypes": "URL", "initialRangeDays": 0}}])
    assert (url.alert_type, url.initial_range_days, url.comments_tenant) == ("malsite", 0, TENANT)
    assert url.index == iterator_index("ns-poll", "malsite")


def test_page_tags_name_the_next_page() -> None:
    cp = Checkpoint(
        configuration="c",
        alert_type="malware",
        tenant="t",
        index_name="cte_c_malware",
        started=True,
        start_epoch=100,
        last_timestamp=None,
        pages=4,
        alerts=10,
        indicators=20,
        page_digest=None,
        pending=False,
        pending_digest=None,
        pending_offsets=None,
        pending_at=None,
        next_sent=False,
        due_at=None,
    )
    assert cp.page_tag() == "cte_c_malware/100/5"


# ---------------------------------------------------------------------------- the tenant client


def client_with(handler: Any) -> tuple[TenantClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        response: httpx.Response = handler(request, len(seen))
        return response

    client = TenantClient(
        "acme",
        "https://tenant.test",
        v1_token=None,
        v2_token="v2",
        limiters={"v1": contextlib.nullcontext(), "v2": contextlib.nullcontext()},  # no budget here
        attempts=3,
        backoff_max=0.01,
    )
    client.http = httpx.AsyncClient(base_url="https://tenant.test", transport=httpx.MockTransport(record))
    return client, seen


ANSWER = {"ok": 1, "result": [], "wait_time": 30, "timestamp_hwm": 0}


async def test_a_failed_next_is_not_retried_but_a_refused_one_is() -> None:
    client, seen = client_with(lambda r, n: httpx.Response(500, json={}))
    with pytest.raises(TenantUnavailable) as failed:
        await client.export_alerts("malware", "it", "next")
    assert failed.value.status == 500
    assert len(seen) == 1  # the tenant may have moved its cursor: the caller asks resend instead
    assert seen[0].url.params["operation"] == "next"
    assert seen[0].headers["Netskope-Api-Token"] == "v2"

    client, seen = client_with(
        lambda r, n: httpx.Response(429, headers={"Retry-After": "0"}) if n == 1 else httpx.Response(200, json=ANSWER)
    )
    assert await client.export_alerts("malware", "it", "next") == ANSWER
    assert len(seen) == 2

    def dropped(request: httpx.Request, n: int) -> httpx.Response:
        raise httpx.ReadTimeout("lost", request=request)

    client, seen = client_with(dropped)
    with pytest.raises(TenantUnavailable) as lost:
        await client.export_alerts("malsite", "it", "next")
    assert lost.value.status is None
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("headers", "pause"),
    [
        ({"RateLimit-Limit": "4", "RateLimit-Remaining": "1", "RateLimit-Reset": "1"}, 0.0),
        ({"RateLimit-Limit": "4", "RateLimit-Remaining": "0", "RateLimit-Reset": "1"}, 1.0),
        ({"ratelimit-remaining": "0", "ratelimit-reset": "900"}, 60.0),  # at most the longest pause
        ({"RateLimit-Remaining": "0"}, 0.0),
        ({"RateLimit-Remaining": "none", "RateLimit-Reset": "1"}, 0.0),
        ({}, 0.0),
    ],
)
def test_rate_limit_headers_pause_an_endpoint_only_when_its_window_is_used_up(
    headers: dict[str, str], pause: float
) -> None:
    assert rate_limit_pause(httpx.Headers(headers), 60.0) == pause


async def test_an_endpoint_whose_window_is_used_up_waits_for_its_reset() -> None:
    times: list[float] = []

    def answer(request: httpx.Request, n: int) -> httpx.Response:
        times.append(time.monotonic())
        return httpx.Response(200, json=ANSWER, headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "1"})

    client, _seen = client_with(answer)
    client.backoff_max = 0.3  # the longest pause, here
    await client.export_alerts("malware", "it", "next")
    await client.export_alerts("malsite", "it", "next")  # another endpoint: not held
    await client.export_alerts("malware", "it", "resend")
    assert times[1] - times[0] < 0.25
    assert times[2] - times[0] >= 0.3


async def test_idempotent_operations_are_retried_like_any_call() -> None:
    client, seen = client_with(lambda r, n: httpx.Response(502) if n < 3 else httpx.Response(200, json=ANSWER))
    assert await client.export_alerts("malware", "it", "resend") == ANSWER
    assert [r.url.params["operation"] for r in seen] == ["resend"] * 3
    assert seen[0].url.path == "/api/v2/events/dataexport/alerts/malware"
