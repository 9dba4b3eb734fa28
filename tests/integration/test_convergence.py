"""Destinations converge: after a randomised workload (adds, merges, severity changes, deletes, a rule
change, an allow-list entry) with 30% of the tenant's answers failing (429 with Retry-After, 500,
timeouts), every list's deployed content equals an independent computation of what it should hold,
within its cap, without duplicates."""

from __future__ import annotations

import hashlib
import json
import random
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import Pipeline
from tests.integration.test_api_first_path import token
from tests.support.waiting import eventually

SOURCE, NS, RULE = "conv-src", "conv-ns", "conv-rule"
URL_LIST, HASH_LIST = "conv-urls", "conv-hashes"
CAP_MB = 0.0004  # about 419 bytes: some twenty entries, so the cap really cuts
URLISH = {"domain", "ipv4", "url"}


def cost(value: str) -> int:
    return len(json.dumps(value)) + 3


def expected_list(
    indicators: list[dict[str, Any]],
    severities: set[str],
    kinds: set[str],
    allowed_suffix: str | None,
    cap_bytes: int | None,
) -> list[str]:
    """What the list should hold, computed here from the read model without the project's decision code."""
    chosen = []
    for ind in indicators:
        entry = next((s for s in ind["sources"] if s["source"] == SOURCE), None)
        if entry is None or entry["retracted"] or not ind["active"] or ind["test"] or ind["type"] not in kinds:
            continue
        if not any(s["severity"] in severities for s in ind["sources"]):
            continue
        host = ind["value"].split("://", 1)[-1].split("/", 1)[0]
        if allowed_suffix and (host == allowed_suffix or host.endswith("." + allowed_suffix)):
            continue
        chosen.append((-datetime.fromisoformat(entry["lastSeen"]).timestamp(), ind["value"]))
    chosen.sort()
    out, used = [], 1
    for _, value in chosen:
        # A URL list holds the entry without its scheme, and the cap counts the entry as pushed.
        entry = value.split("://", 1)[-1] if value.startswith("https://") else value
        if cap_bytes is not None and used + cost(entry) > cap_bytes:
            break
        used += cost(entry)
        out.append(entry)
    return out


def all_indicators(api: httpx.Client) -> list[dict[str, Any]]:
    found, skip = [], 0
    filters = json.dumps({"sources": {"$elemMatch": {"source": SOURCE}}})
    while True:
        page = api.get("/api/cte/indicators/", params={"filters": filters, "skip": skip, "limit": 100}).json()
        found += page
        if len(page) < 100:
            return found
        skip += 100


@pytest.mark.timeout(240)
def test_lists_converge_under_tenant_faults(pipeline: Pipeline) -> None:
    rng = random.Random(20261127)
    api = httpx.Client(
        base_url=pipeline.api_url, headers={"Authorization": f"Bearer {token(pipeline.api_url)}"}, timeout=60
    )
    tenant = httpx.Client(base_url=pipeline.tenant_url, timeout=30)
    tenant.post("/_sim/filehashlists", json={"name": HASH_LIST}).raise_for_status()
    assert (
        api.post(
            "/api/tenants",
            json={
                "name": "conv-tenant",
                "tenantName": pipeline.tenant_url,
                "v1Token": "fake-v1-token",
                "v2Token": "fake-v2-token",
            },
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/api/cte/configurations", json={"name": SOURCE, "plugin": "api_source", "ageAfterDays": 0}
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/api/cte/configurations", json={"name": NS, "plugin": "netskope", "tenant": "conv-tenant"}
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/api/cte/business_rules",
            json={"name": RULE, "filters": {"query": 'sources.severity IN ("high","critical")'}},
        ).status_code
        == 201
    )
    for action, params in (
        ("url", {"list": "create", "name": URL_LIST, "max_url_list_cap": CAP_MB}),
        ("file", {"file_list": HASH_LIST}),
    ):
        r = api.post(
            "/api/cte/sharing",
            json={
                "sourceConfiguration": SOURCE,
                "businessRule": RULE,
                "destinationConfiguration": NS,
                "action": action,
                "parameters": params,
            },
        )
        assert r.status_code == 201, r.text

    tenant.put(
        "/_sim/faults", json={"rate_429": 0.1, "rate_500": 0.1, "rate_timeout": 0.1, "retry_after": 1, "seed": 7}
    ).raise_for_status()
    values = [f"host{n}.conv.example" for n in range(40)] + [f"https://site{n}.conv.example/p" for n in range(20)]
    values += [f"198.51.100.{n}" for n in range(1, 30)] + [
        hashlib.sha256(f"conv{n}".encode()).hexdigest() for n in range(25)
    ]
    kinds = {
        v: "url"
        if v.startswith("https")
        else "ipv4"
        if v[0].isdigit() and "." in v and len(v) < 16
        else "sha256"
        if len(v) == 64
        else "domain"
        for v in values
    }
    for round_ in range(8):
        batch = rng.sample(values, 30)
        items = [
            {
                "value": v,
                "type": kinds[v],
                "source": SOURCE,
                "severity": rng.choice(["low", "medium", "high", "critical"]),
            }
            for v in batch
        ]
        assert api.post("/api/cte/indicators/", json=items).status_code == 201
        if round_ == 3:
            doomed = rng.sample(values, 6)
            api.request("DELETE", "/api/cte/indicators/bulk", json={"values": doomed})
        if round_ == 5:
            r = api.patch(
                f"/api/cte/business_rules/{RULE}",
                json={"filters": {"query": 'sources.severity IN ("medium","high","critical")'}},
            )
            assert r.status_code == 200, r.text
            assert (
                api.post("/api/cte/allow_list", json={"kind": "suffix", "pattern": "host1.conv.example"}).status_code
                == 201
            )
        time.sleep(0.3)

    # The read model is final once the rule-engine caught up: a last write with wait=true proves it.
    api.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json=[{"value": "sync.conv.example", "type": "domain", "source": SOURCE, "severity": "low"}],
    )
    severities = {"medium", "high", "critical"}

    def converged() -> None:
        indicators = all_indicators(api)
        state = tenant.get("/_sim/state").json()
        urls = state["urllists"].get(URL_LIST, {"deployed": [], "pending": []})
        want_urls = expected_list(indicators, severities, URLISH, "host1.conv.example", int(CAP_MB * 1024 * 1024))
        assert len(urls["deployed"]) == len(set(urls["deployed"])), "duplicates in the URL list"
        assert urls["deployed"] == urls["pending"], "undeployed changes"
        assert set(urls["deployed"]) == set(want_urls) or (not want_urls and urls["deployed"] == ["cedefaultpush.io"])
        uncapped = expected_list(indicators, severities, URLISH, "host1.conv.example", None)
        assert 5 <= len(want_urls) < len(uncapped), "the workload must fill the list past its cap"
        # The API derives from the sink's list state: what the cap leaves out is tagged Unshared and
        # shared with nobody; what the list holds is not tagged, and is shared with the destination.
        left_out = set(uncapped) - set(want_urls)
        for ind in indicators:
            entry = ind["value"].split("://", 1)[-1] if ind["value"].startswith("https://") else ind["value"]
            tagged = any("Unshared" in s["tags"] for s in ind["sources"])
            if entry in left_out:
                assert tagged, f"{ind['value']} was left out by the cap but is not tagged Unshared"
                assert "Unshared" in ind["tags"]
                assert NS not in ind["sharedWith"], f"{ind['value']} was left out but is shared with {NS}"
            elif entry in urls["deployed"]:
                assert not tagged, f"{ind['value']} is in the list but still tagged Unshared"
                assert NS in ind["sharedWith"], f"{ind['value']} is in the list but not shared with {NS}"
        want_hashes = expected_list(indicators, severities, {"sha256"}, None, None)
        assert want_hashes
        held = state["filehashlists"][HASH_LIST]
        assert len(held) == len(set(held))
        assert set(held) == set(want_hashes)

    try:
        eventually(converged, timeout=150)
    finally:
        tenant.put("/_sim/faults", json={})
    requests = tenant.get("/_sim/requests").json()
    statuses = [r["status"] for r in (requests if isinstance(requests, list) else requests.get("requests", []))]
    assert 429 in statuses
    assert 500 in statuses
