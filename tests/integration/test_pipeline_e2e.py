"""End to end: indicators in through the API, business rules and sharing in the rule-engine, lists in
the (fake) Netskope tenant through the sink, and every change of rule, allow-list or indicator reflected
in the deployed lists."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import Pipeline
from tests.integration.test_api_first_path import token
from tests.support.waiting import eventually

EVERY_SEVERITY = 'sources.severity IN ("unknown","low","medium","high","critical")'
HASH_MD5 = "0cc175b9c0f1b6a831c399e269772661"
HASH_SHA = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"


@pytest.fixture(scope="module")
def setup(pipeline: Pipeline) -> dict[str, Any]:
    api = httpx.Client(
        base_url=pipeline.api_url, headers={"Authorization": f"Bearer {token(pipeline.api_url)}"}, timeout=30
    )
    tenant = httpx.Client(base_url=pipeline.tenant_url, timeout=30)
    tenant.post("/_sim/reset").raise_for_status()
    tenant.post("/_sim/filehashlists", json={"name": "e2e-hashes"}).raise_for_status()
    r = api.post(
        "/api/tenants",
        json={
            "name": "e2e-tenant",
            "tenantName": pipeline.tenant_url,
            "v1Token": "fake-v1-token",
            "v2Token": "fake-v2-token",
        },
    )
    assert r.status_code == 201, r.text
    for cfg in (
        {"name": "e2e-src", "plugin": "api_source", "ageAfterDays": 0},
        {"name": "e2e-ns", "plugin": "netskope", "tenant": "e2e-tenant", "parameters": {"enablePolling": False}},
    ):
        assert api.post("/api/cte/configurations", json=cfg).status_code == 201
    assert (
        api.post(
            "/api/cte/business_rules", json={"name": "Every Severity e2e", "filters": {"query": EVERY_SEVERITY}}
        ).status_code
        == 201
    )
    url_sharing = api.post(
        "/api/cte/sharing",
        json={
            "sourceConfiguration": "e2e-src",
            "businessRule": "Every Severity e2e",
            "destinationConfiguration": "e2e-ns",
            "action": "url",
            "parameters": {"list": "create", "name": "e2e-urls"},
        },
    )
    assert url_sharing.status_code == 201, url_sharing.text
    file_sharing = api.post(
        "/api/cte/sharing",
        json={
            "sourceConfiguration": "e2e-src",
            "businessRule": "Every Severity e2e",
            "destinationConfiguration": "e2e-ns",
            "action": "file",
            "parameters": {"file_list": "e2e-hashes"},
        },
    )
    assert file_sharing.status_code == 201, file_sharing.text
    return {"api": api, "tenant": tenant, "url_sharing": url_sharing.json(), "file_sharing": file_sharing.json()}


def deployed_urls(tenant: httpx.Client) -> set[str]:
    state = tenant.get("/_sim/state").json()
    return set(state["urllists"].get("e2e-urls", {}).get("deployed", []))


def hashes(tenant: httpx.Client) -> set[str]:
    return set(tenant.get("/_sim/state").json()["filehashlists"].get("e2e-hashes", []))


def post(api: httpx.Client, items: list[dict[str, Any]]) -> None:
    r = api.post("/api/cte/indicators/", params={"wait": "true"}, json=[{"source": "e2e-src", **i} for i in items])
    assert r.status_code == 201, r.text


def test_indicators_reach_the_lists_and_changes_converge(setup: dict[str, Any]) -> None:
    api, tenant = setup["api"], setup["tenant"]
    post(
        api,
        [
            {"value": "https://phish.example/login", "type": "url", "severity": "high"},
            {"value": "bad-domain.example", "type": "domain", "severity": "low"},
            {"value": "203.0.113.7", "type": "ipv4", "severity": "critical"},
            {"value": HASH_MD5, "type": "md5", "severity": "medium"},
            {"value": HASH_SHA, "type": "sha256", "severity": "unknown"},
            {"value": "test-only.example", "type": "domain", "test": True},
        ],
    )
    expected_urls = {"phish.example/login", "bad-domain.example", "203.0.113.7"}

    def urls_in_list() -> None:
        assert (
            deployed_urls(tenant) >= {"https://phish.example/login", "bad-domain.example", "203.0.113.7"}
            or deployed_urls(tenant) >= expected_urls
        )
        assert "test-only.example" not in deployed_urls(tenant)

    eventually(urls_in_list)
    eventually(lambda: _eq(hashes(tenant), {HASH_MD5, HASH_SHA}))

    # Narrow the rule: only high and critical stay.
    r = api.patch(
        "/api/cte/business_rules/Every Severity e2e",
        json={"filters": {"query": 'sources.severity IN ("high","critical")'}},
    )
    assert r.status_code == 200, r.text
    eventually(lambda: _eq(_urls(deployed_urls(tenant)), {"phish.example/login", "203.0.113.7"}))
    eventually(lambda: _eq(hashes(tenant), {"f" * 64}))  # an empty hash list holds the default placeholder

    # An allow-list entry takes an indicator out of every list.
    assert api.post("/api/cte/allow_list", json={"kind": "cidr", "pattern": "203.0.113.0/24"}).status_code == 201
    eventually(lambda: _eq(_urls(deployed_urls(tenant)), {"phish.example/login"}))

    # Retraction, un-retraction and deletion.
    api.patch(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json={"value": "https://phish.example/login", "source": "e2e-src", "retracted": True},
    )
    eventually(lambda: _eq(_urls(deployed_urls(tenant)), set()))
    post(api, [{"value": "https://phish.example/login", "type": "url", "severity": "high"}])
    eventually(lambda: _eq(_urls(deployed_urls(tenant)), {"phish.example/login"}))
    api.request(
        "DELETE", "/api/cte/indicators/bulk", params={"wait": "true"}, json={"values": ["https://phish.example/login"]}
    )
    eventually(lambda: _eq(_urls(deployed_urls(tenant)), set()))


def _urls(values: set[str]) -> set[str]:
    """The list's entries without the scheme and the default placeholder, for comparison."""
    return {v.split("://", 1)[-1] for v in values if v != "cedefaultpush.io"}


def _eq(actual: set[str], expected: set[str]) -> None:
    assert actual == expected, f"{sorted(actual)} != {sorted(expected)}"


def test_dry_run_and_rule_test_agree_with_the_list(setup: dict[str, Any]) -> None:
    api = setup["api"]
    sid = setup["url_sharing"]["id"]
    dry = api.get(f"/api/cte/sharing/{sid}/dry_run")
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert body["wouldAddCount"] == 0
    assert body["wouldRemoveCount"] == 0
    assert json.dumps(body)
