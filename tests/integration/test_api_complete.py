"""The complete Cloud Exchange API against the real stack: the seed's worked examples as written,
every endpoint, the reference's error paths, and the access rules."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import BOOTSTRAP_ID, Running
from tests.integration.test_api_first_path import token
from tests.support.waiting import eventually

SHA = "b53f3c0cd32d7f20849850768da6431e5f876b7bfa61db0aa0700b02873393fa"


@pytest.fixture(scope="module")
def api(services: Running) -> httpx.Client:
    return httpx.Client(
        base_url=services.api_url, headers={"Authorization": f"Bearer {token(services.api_url)}"}, timeout=30
    )


def indicator(api: httpx.Client, value: str) -> dict[str, Any]:
    found = api.get("/api/cte/indicators/", params={"filters": json.dumps({"value": value})}).json()
    assert len(found) == 1, found
    return dict(found[0])


def test_seed_worked_examples_run_as_written(api: httpx.Client) -> None:
    # Settings > Plugins: the API Source configuration "DW".
    r = api.post("/api/cte/configurations", json={"name": "DW", "plugin": "api_source", "ageAfterDays": 90})
    assert r.status_code in (201, 409)
    # Tags created ahead of time, as the seed says.
    for name in ("test_tag", "test_tag2", "abc"):
        assert api.post("/api/cte/tags", json={"name": name, "color": "#336699"}).status_code in (200, 422)
    # POST the URL www.dubya.com to source DW with both tags.
    r = api.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json=[
            {
                "value": "www.dubya.com",
                "type": "url",
                "source": "DW",
                "reputation": 5,
                "tags": ["test_tag", "test_tag2"],
            }
        ],
    )
    assert r.status_code == 201, r.text
    assert r.json()[0]["sources"][0]["reputation"] == 5
    # PATCH its reputation from 5 to 7.
    r = api.patch(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json={"value": "www.dubya.com", "type": "url", "source": "DW", "reputation": 7},
    )
    assert r.status_code == 201, r.text
    assert r.json()["sources"][0]["reputation"] == 7
    assert set(r.json()["sources"][0]["tags"]) == {"test_tag", "test_tag2"}  # no tags added or lost
    # PATCH bulk removing the tag "abc" from the sha256 indicator.
    api.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json=[{"value": SHA, "type": "sha256", "source": "DW", "tags": ["abc"]}],
    )
    assert indicator(api, SHA)["sources"][0]["tags"] == ["abc"]
    r = api.patch(
        "/api/cte/indicators/bulk",
        params={"wait": "true"},
        json={"locator": {"values": [SHA]}, "tags": {"remove": ["abc"]}},
    )
    assert r.status_code == 201
    assert r.json() == {"updated": 1}
    assert indicator(api, SHA)["sources"][0]["tags"] == []


def test_patch_errors_and_retraction(api: httpx.Client) -> None:
    api.post("/api/cte/configurations", json={"name": "DW", "plugin": "api_source"})
    missing = api.patch("/api/cte/indicators/", json={"value": "nowhere.example", "type": "domain", "source": "DW"})
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Indicator with value='nowhere.example' does not exist."}
    api.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json=[{"value": "retract.example", "type": "domain", "source": "DW"}],
    )
    bad_source = api.patch(
        "/api/cte/indicators/", json={"value": "retract.example", "type": "domain", "source": "Nope"}
    )
    assert bad_source.status_code == 400
    r = api.patch(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json={"value": "RETRACT.example", "source": "DW", "retracted": True},
    )
    assert r.status_code == 201
    assert r.json() is True
    assert indicator(api, "retract.example")["sources"][0]["retracted"] is True
    # A new sighting from the source withdraws its retraction (reference behaviour).
    api.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json=[{"value": "retract.example", "type": "domain", "source": "DW"}],
    )
    assert indicator(api, "retract.example")["sources"][0]["retracted"] is False
    unknown = api.patch("/api/cte/indicators/", json={"value": "retract.example", "source": "Other", "retracted": True})
    assert unknown.status_code == 404


def test_bulk_tags_by_query_and_by_source(api: httpx.Client) -> None:
    for name in ("cfg-a", "cfg-b"):
        api.post("/api/cte/configurations", json={"name": name, "plugin": "api_source"})
    api.post("/api/cte/tags", json={"name": "bulk-tag"})
    body = [
        {"value": f"bulk-{n}.example", "type": "domain", "source": src, "severity": "high" if n % 2 else "low"}
        for n in range(6)
        for src in ("cfg-a", "cfg-b")
    ]
    api.post("/api/cte/indicators/", params={"wait": "true"}, json=body)
    query = json.dumps({"value": {"$regex": "bulk-"}, "sources": {"$elemMatch": {"severity": {"$in": ["high"]}}}})
    r = api.patch(
        "/api/cte/indicators/bulk",
        params={"wait": "true"},
        json={"locator": {"query": query}, "tags": {"add": ["bulk-tag"]}},
    )
    assert r.json() == {"updated": 3}
    tagged = api.get(
        "/api/cte/indicators/",
        params={"filters": json.dumps({"sources": {"$elemMatch": {"tags": {"$in": ["bulk-tag"]}}}})},
    ).json()
    assert sorted(i["value"] for i in tagged) == ["bulk-1.example", "bulk-3.example", "bulk-5.example"]
    # With a values locator and a source, only that source's entry changes.
    r = api.patch(
        "/api/cte/indicators/bulk",
        params={"wait": "true"},
        json={"locator": {"values": ["bulk-1.example"], "source": "cfg-a"}, "tags": {"remove": ["bulk-tag"]}},
    )
    assert r.json() == {"updated": 1}
    entries = {s["source"]: s["tags"] for s in indicator(api, "bulk-1.example")["sources"]}
    assert entries == {"cfg-a": [], "cfg-b": ["bulk-tag"]}
    unknown_tag = api.patch(
        "/api/cte/indicators/bulk", json={"locator": {"values": ["x"]}, "tags": {"add": ["no-such-tag"]}}
    )
    assert unknown_tag.status_code == 422
    assert unknown_tag.json() == {"detail": "Tag 'no-such-tag' does not exist."}


def test_bulk_delete_by_values_and_by_query(api: httpx.Client) -> None:
    api.post("/api/cte/configurations", json={"name": "DW", "plugin": "api_source"})
    body = [{"value": f"del-{n}.example", "type": "domain", "source": "DW"} for n in range(5)]
    api.post("/api/cte/indicators/", params={"wait": "true"}, json=body)
    r = api.request(
        "DELETE",
        "/api/cte/indicators/bulk",
        params={"wait": "true"},
        json={"values": ["DEL-0.example", "del-1.example"]},
    )
    assert r.status_code == 201
    assert r.json() == {"deleted": 2}
    r = api.request(
        "DELETE",
        "/api/cte/indicators/bulk",
        params={"wait": "true"},
        json={"query": json.dumps({"value": {"$regex": "del-"}})},
    )
    assert r.json() == {"deleted": 3}
    assert api.get("/api/cte/indicators/", params={"filters": json.dumps({"value": {"$regex": "del-"}})}).json() == []
    both = api.request("DELETE", "/api/cte/indicators/bulk", json={"values": ["a"], "query": "{}"})
    assert both.status_code == 422


def test_tags_applied_on_and_delete(api: httpx.Client) -> None:
    api.post("/api/cte/configurations", json={"name": "DW", "plugin": "api_source"})
    assert api.post("/api/cte/tags", json={"name": "applied"}).status_code == 200
    assert api.post("/api/cte/tags", json={"name": "applied"}).status_code == 422
    assert api.post("/api/cte/tags", json={"name": "x" * 501}).status_code == 422
    api.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json=[
            {"value": "tagged-1.example", "type": "domain", "source": "DW", "tags": ["applied"]},
            {"value": "tagged-2.example", "type": "domain", "source": "DW", "tags": ["applied"]},
            {"value": "tagged-3.example", "type": "domain", "source": "DW"},
        ],
    )

    def applied(filters: dict[str, Any]) -> str:
        tags = api.get("/api/cte/tags", params={"filters": json.dumps(filters)}).json()
        return str(next(t for t in tags if t["name"] == "applied")["appliedOn"])

    assert applied({"value": {"$in": ["tagged-1.example", "tagged-2.example"]}}) == "all"
    assert applied({"value": {"$regex": "tagged-"}}) == "some"
    assert applied({"value": "tagged-3.example"}) == "none"
    assert api.request("DELETE", "/api/cte/tags", json={"name": "applied"}).status_code == 200

    def gone() -> None:
        assert indicator(api, "tagged-1.example")["sources"][0]["tags"] == []

    eventually(gone)
    assert api.request("DELETE", "/api/cte/tags", json={"name": "applied"}).status_code == 422


def test_dashboards(api: httpx.Client) -> None:
    api.post("/api/cte/configurations", json={"name": "dash", "plugin": "api_source"})
    api.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json=[
            {"value": "1.1.1.1", "type": "ipv4", "source": "dash"},
            {"value": "2.2.2.2", "type": "ipv4", "source": "dash"},
            {"value": "d.example", "type": "domain", "source": "dash"},
        ],
    )
    by_type = api.get(
        "/api/cte/dashboards/",
        params={"group_by": "type", "filters": json.dumps({"sources": {"$elemMatch": {"source": "dash"}}})},
    ).json()
    assert by_type == [{"_id": {"type": "ipv4"}, "count": 2}, {"_id": {"type": "domain"}, "count": 1}]
    by_two = api.get("/api/cte/dashboards/", params=[("group_by", "type"), ("group_by", "sources.source")]).json()
    assert {"_id": {"type": "ipv4", "source": "dash"}, "count": 2} in by_two
    hits = api.get(
        "/api/cte/dashboards/", params={"group_by": "value", "filters": json.dumps({"value": "1.1.1.1"})}
    ).json()
    assert hits == [{"_id": {"value": "1.1.1.1"}, "count": 1}]  # counts externalHits by default with value
    assert api.get("/api/cte/dashboards/", params={"group_by": "colour"}).status_code == 400
    pull = api.get("/api/cte/dashboard/pull").json()
    assert pull["ipv4"]["dash"] == {"retractedCount": 0, "unretractedCount": 2, "allCount": 2}


def test_configuration_update_and_delete_keep_data_false(api: httpx.Client, services: Running) -> None:
    api.post("/api/cte/configurations", json={"name": "gone-src", "plugin": "api_source"})
    api.post("/api/cte/configurations", json={"name": "stays-src", "plugin": "api_source"})
    r = api.patch("/api/cte/configurations/gone-src", json={"reputation": 8, "ageAfterDays": 3})
    assert r.status_code == 200
    assert (r.json()["reputation"], r.json()["ageAfterDays"]) == (8, 3)
    assert api.patch("/api/cte/configurations/gone-src", json={"plugin": "netskope"}).status_code == 422
    assert api.patch("/api/cte/configurations/nope", json={"active": False}).status_code == 404
    api.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json=[
            {"value": "only-gone.example", "type": "domain", "source": "gone-src", "reputation": 2},
            {"value": "shared.example", "type": "domain", "source": "gone-src"},
            {"value": "shared.example", "type": "domain", "source": "stays-src"},
        ],
    )
    assert indicator(api, "only-gone.example")["sources"][0]["reputation"] == 8  # Override Reputation applied
    r = api.delete("/api/cte/configurations/gone-src", params={"keepData": "false"})
    assert r.status_code == 200
    assert r.json()["indicatorsRemoved"] == 2

    def removed() -> None:
        assert (
            api.get("/api/cte/indicators/", params={"filters": json.dumps({"value": "only-gone.example"})}).json() == []
        )
        assert [s["source"] for s in indicator(api, "shared.example")["sources"]] == ["stays-src"]

    eventually(removed)
    assert api.get("/api/cte/configurations/gone-src").status_code == 404


async def test_tenants_store_tokens_encrypted_and_never_return_them(api: httpx.Client, db: asyncpg.Pool[Any]) -> None:
    body = {"name": "acme", "tenantName": "acme", "v1Token": "v1-secret-value", "v2Token": "v2-secret-value"}
    r = api.post("/api/tenants", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["url"] == "https://acme.goskope.com"
    assert r.json()["hasV1Token"] is True
    assert "secret-value" not in r.text
    assert api.post("/api/tenants", json=body).status_code == 409
    assert api.post("/api/tenants", json={**body, "name": "x", "tenantName": "acme.goskope.com"}).status_code == 422
    for response in (api.get("/api/tenants"), api.get("/api/tenants/acme")):
        assert "secret-value" not in response.text
    stored = await db.fetchrow("SELECT v1_token_encrypted, v2_token_encrypted FROM tenants WHERE name = 'acme'")
    assert stored is not None
    assert stored["v1_token_encrypted"]
    assert "secret-value" not in json.dumps(dict(stored))
    r = api.patch("/api/tenants/acme", json={"tenantName": "http://127.0.0.1:8900"})
    assert r.json()["url"] == "http://127.0.0.1:8900"
    cfg = {"name": "ns", "plugin": "netskope", "tenant": "acme", "parameters": {"threatDataTypes": "Malware"}}
    assert api.post("/api/cte/configurations", json=cfg).status_code == 201
    assert (
        api.post(
            "/api/cte/configurations", json={**cfg, "name": "ns2", "parameters": {"threatDataTypes": "Files"}}
        ).status_code
        == 422
    )
    assert api.post("/api/cte/configurations", json={**cfg, "name": "ns3", "tenant": "nope"}).status_code == 422
    assert api.delete("/api/tenants/acme").status_code == 400  # in use
    api.delete("/api/cte/configurations/ns")
    assert api.delete("/api/tenants/acme").status_code == 200
    assert api.get("/api/tenants/acme").status_code == 404


def test_api_tokens_lifecycle(api: httpx.Client, services: Running) -> None:
    url = services.api_url
    r = api.post("/api/users/tokens", json={"description": "feed robot", "expireAfter": 60, "scopes": ["cte_read"]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert len(created["client_secret"]) == 64
    listed = api.get("/api/users/tokens").json()
    assert created["client_id"] in [t["client_id"] for t in listed]
    assert all("client_secret" not in t for t in listed)
    form = {
        "grant_type": "client_credentials",
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
    }
    robot = httpx.post(f"{url}/api/auth", data=form).json()
    assert robot["scopes"] == ["cte_read"]
    headers = {"Authorization": f"Bearer {robot['access_token']}"}
    assert httpx.get(f"{url}/api/cte/indicators/", headers=headers).status_code == 200
    assert httpx.post(f"{url}/api/cte/indicators/", headers=headers, json=[]).status_code == 403
    assert httpx.get(f"{url}/api/users/tokens", headers=headers).status_code == 403
    assert api.request("DELETE", "/api/users/tokens", json={"client_id": created["client_id"]}).status_code == 200
    assert httpx.post(f"{url}/api/auth", data=form).status_code == 401

    def refused() -> None:  # an issued access token stops working within seconds of the revocation
        assert httpx.get(f"{url}/api/cte/indicators/", headers=headers).status_code == 401

    eventually(refused, timeout=10)


def test_repeated_failures_lock_the_client(api: httpx.Client, services: Running) -> None:
    created = api.post("/api/users/tokens", json={"description": "to lock"}).json()
    bad = {"grant_type": "client_credentials", "client_id": created["client_id"], "client_secret": "wrong"}
    for _ in range(5):
        assert httpx.post(f"{services.api_url}/api/auth", data=bad).status_code == 401
    good = {**bad, "client_secret": created["client_secret"]}
    locked = httpx.post(f"{services.api_url}/api/auth", data=good)
    assert locked.status_code == 401
    assert "locked" in locked.json()["detail"]
    assert int(locked.headers["Retry-After"]) > 0
    # Another client is not affected.
    assert token(services.api_url)


def test_openapi_groups_and_docs(services: Running) -> None:
    spec = httpx.get(f"{services.api_url}/api/openapi.json").json()
    tags = {t for path in spec["paths"].values() for op in path.values() for t in op.get("tags", [])}
    assert {"Indicators", "Tags", "Dashboards", "Configurations", "Netskope Tenants", "API Tokens"} <= tags
    assert httpx.get(f"{services.api_url}/api/docs").status_code == 200
    assert BOOTSTRAP_ID  # the bootstrap client exists for every test module
