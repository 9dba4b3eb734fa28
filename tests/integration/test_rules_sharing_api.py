"""Business rules, the allow-list and sharing configurations through the API, against the real stack:
the seed's "Every Severity" rule in both forms, every validation error, the rule test and the dry run."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from cte_common.sharing import MIB, cost_bytes
from tests.conftest import Running
from tests.integration.test_api_first_path import token

U = secrets.token_hex(3)  # other modules share the database: every name here is unique to this run
SOURCE = f"rs-src-{U}"
TENANT = f"rs-tenant-{U}"
NETSKOPE = f"rs-ns-{U}"
SEVERITIES = ["unknown", "low", "medium", "high", "critical"]
EVERY_SEVERITY_TEXT = 'sources.severity IN ("unknown","low","medium","high","critical")'
EVERY_SEVERITY_MONGO = {"sources": {"$elemMatch": {"severity": {"$in": SEVERITIES}}}}
SHA = "a" * 63 + "1"


@pytest.fixture(scope="module")
def api(services: Running) -> httpx.Client:
    client = httpx.Client(
        base_url=services.api_url, headers={"Authorization": f"Bearer {token(services.api_url)}"}, timeout=30
    )
    r = client.post("/api/cte/configurations", json={"name": SOURCE, "plugin": "api_source"})
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/tenants",
        json={
            "name": TENANT,
            "tenantName": "http://127.0.0.1:8900",
            "v1Token": "fake-v1-token",
            "v2Token": "fake-v2-token",
        },
    )
    assert r.status_code == 201, r.text
    r = client.post("/api/cte/configurations", json={"name": NETSKOPE, "plugin": "netskope", "tenant": TENANT})
    assert r.status_code == 201, r.text
    return client


def source(api: httpx.Client, name: str) -> str:
    r = api.post("/api/cte/configurations", json={"name": name, "plugin": "api_source"})
    assert r.status_code == 201, r.text
    return name


def tag(api: httpx.Client, name: str) -> str:
    assert api.post("/api/cte/tags", json={"name": name}).status_code == 200
    return name


def post(api: httpx.Client, items: list[dict[str, Any]]) -> list[str]:
    r = api.post("/api/cte/indicators/", params={"wait": "true"}, json=items)
    assert r.status_code == 201, r.text
    return [i["value"] for i in r.json()]


def rule(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/api/cte/business_rules", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def refused(r: httpx.Response, status: int, text: str) -> None:
    assert r.status_code == status, r.text
    assert text in json.dumps(r.json()["detail"]), r.json()


def sharing_body(rule_name: str, list_name: str, **kw: Any) -> dict[str, Any]:
    return {
        "sourceConfiguration": SOURCE,
        "businessRule": rule_name,
        "destinationConfiguration": NETSKOPE,
        "action": "url",
        "parameters": {"list": list_name},
        **kw,
    }


# Business rules


async def test_every_severity_in_both_forms_stores_the_same_filter(api: httpx.Client, db: asyncpg.Pool[Any]) -> None:
    text = rule(api, {"name": f"Every Severity text {U}", "filters": {"query": EVERY_SEVERITY_TEXT}})
    mongo = rule(api, {"name": f"Every Severity mongo {U}", "filters": {"mongo": json.dumps(EVERY_SEVERITY_MONGO)}})
    as_object = rule(api, {"name": f"Every Severity object {U}", "filters": {"mongo": EVERY_SEVERITY_MONGO}})
    assert text["filters"]["query"] == EVERY_SEVERITY_TEXT
    assert json.loads(text["filters"]["mongo"]) == EVERY_SEVERITY_MONGO
    assert mongo["filters"] == as_object["filters"]
    assert json.loads(mongo["filters"]["mongo"]) == EVERY_SEVERITY_MONGO
    assert mongo["filters"]["query"] == 'sources.severity IN ("unknown", "low", "medium", "high", "critical")'
    assert mongo["muted"] is False
    assert mongo["exceptions"] == []
    rows = await db.fetch(
        "SELECT name, filter FROM business_rules WHERE name = ANY($1::text[])",
        [text["name"], mongo["name"], as_object["name"]],
    )
    assert len(rows) == 3
    assert {json.dumps(json.loads(r["filter"]), sort_keys=True) for r in rows} == {
        json.dumps(EVERY_SEVERITY_MONGO, sort_keys=True)
    }
    got = api.get(f"/api/cte/business_rules/{mongo['name']}").json()
    assert got == mongo
    names = [r["name"] for r in api.get("/api/cte/business_rules").json()]
    assert {"All", text["name"], mongo["name"]} <= set(names)
    default = next(r for r in api.get("/api/cte/business_rules").json() if r["name"] == "All")
    assert default["filters"] == {"query": "", "mongo": "{}"}


def test_rule_validation_errors(api: httpx.Client) -> None:
    name = f"invalid {U}"
    r = api.post("/api/cte/business_rules", json={"name": name, "filters": {"query": 'colour = "red"'}})
    refused(r, 422, "filters.query: position 0: unknown field 'colour'")
    r = api.post("/api/cte/business_rules", json={"name": name, "filters": {"mongo": '{"$where": "1"}'}})
    refused(r, 422, "filters.mongo.$where: unknown operator")
    r = api.post("/api/cte/business_rules", json={"name": name, "filters": {"mongo": "{not json"}})
    refused(r, 422, "filters.mongo: invalid JSON")
    r = api.post("/api/cte/business_rules", json={"name": name, "filters": {"query": "", "mongo": {}}})
    refused(r, 422, "give exactly one of query and mongo")
    r = api.post(
        "/api/cte/business_rules",
        json={"name": name, "filters": {"query": ""}, "muted": True, "unmuteAt": "2099-01-01T00:00:00Z"},
    )
    refused(r, 422, "muted: a rule cannot be created muted")
    r = api.post(
        "/api/cte/business_rules",
        json={"name": name, "filters": {"query": ""}, "exceptions": [{"name": "e", "tags": [f"ghost-{U}"]}]},
    )
    refused(r, 422, f"Tag 'ghost-{U}' does not exist.")
    r = api.post(
        "/api/cte/business_rules",
        json={
            "name": name,
            "filters": {"query": ""},
            "exceptions": [{"name": "e", "tags": ["a"], "filters": {"query": 'type = "url"'}}],
        },
    )
    refused(r, 422, "exactly one of filters and tags")
    r = api.post(
        "/api/cte/business_rules",
        json={"name": name, "filters": {"query": ""}, "exceptions": [{"name": "e", "filters": {"query": "type ="}}]},
    )
    refused(r, 422, "exceptions[0].filters.query: position 6")
    refused(api.post("/api/cte/business_rules", json={"name": "a/b", "filters": {"query": ""}}), 422, "'/'")
    rule(api, {"name": name, "filters": {"query": ""}})
    r = api.post("/api/cte/business_rules", json={"name": name, "filters": {"query": ""}})
    refused(r, 409, f"Business rule with name='{name}' already exists.")
    refused(api.delete("/api/cte/business_rules/All"), 400, "The default rule 'All' cannot be deleted.")
    refused(api.get(f"/api/cte/business_rules/nope-{U}"), 404, f"Business rule with name='nope-{U}' does not exist.")
    refused(api.delete(f"/api/cte/business_rules/nope-{U}"), 404, "does not exist")
    r = api.patch(f"/api/cte/business_rules/{name}", json={"filters": {"query": "value Like"}})
    refused(r, 422, "filters.query: position")
    refused(api.patch(f"/api/cte/business_rules/{name}", json={"name": "renamed"}), 422, "Extra inputs")
    # Edits replace the field given; the rest stays.
    r = api.patch(
        f"/api/cte/business_rules/{name}",
        json={"filters": {"query": 'type = "url"'}, "exceptions": [{"name": "x", "filters": {"query": 'value = "a"'}}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["filters"] == {"query": 'type = "url"', "mongo": json.dumps({"type": "url"})}
    assert r.json()["exceptions"] == [{"name": "x", "filters": {"query": 'value = "a"', "mongo": '{"value": "a"}'}}]
    assert api.delete(f"/api/cte/business_rules/{name}").status_code == 200
    assert api.get(f"/api/cte/business_rules/{name}").status_code == 404


def test_mute_and_unmute(api: httpx.Client) -> None:
    name = f"mutable {U}"
    rule(api, {"name": name, "filters": {"query": 'type = "url"'}})
    url = f"/api/cte/business_rules/{name}"
    refused(api.patch(url, json={"muted": True}), 422, "unmuteAt: muting a rule needs an unmuteAt in the future")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    refused(api.patch(url, json={"muted": True, "unmuteAt": past}), 422, "unmuteAt")
    future = datetime.now(UTC) + timedelta(days=1)
    r = api.patch(url, json={"muted": True, "unmuteAt": future.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["muted"] is True
    assert datetime.fromisoformat(r.json()["unmuteAt"]) == future
    assert api.get(url).json()["muted"] is True
    # Other edits keep the mute.
    r = api.patch(url, json={"filters": {"query": 'type = "domain"'}})
    assert (r.json()["muted"], r.json()["filters"]["query"]) == (True, 'type = "domain"')
    r = api.patch(url, json={"muted": False})
    assert (r.json()["muted"], r.json()["unmuteAt"]) == (False, None)


def test_clone(api: httpx.Client) -> None:
    benign = tag(api, f"clone-benign-{U}")
    original = rule(
        api,
        {
            "name": f"to clone {U}",
            "filters": {"query": 'sources.severity IN ("high", "critical")'},
            "exceptions": [{"name": "benign", "tags": [benign]}],
        },
    )
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    api.patch(f"/api/cte/business_rules/{original['name']}", json={"muted": True, "unmuteAt": future})
    r = api.post(f"/api/cte/business_rules/{original['name']}/clone", json={"name": f"clone {U}"})
    assert r.status_code == 201, r.text
    clone = r.json()
    assert clone["name"] == f"clone {U}"
    assert (clone["filters"], clone["exceptions"]) == (original["filters"], original["exceptions"])
    assert clone["muted"] is False  # a rule cannot be created muted, a clone neither
    again = api.post(f"/api/cte/business_rules/{original['name']}/clone", json={"name": f"clone {U}"})
    refused(again, 409, "already exists")
    refused(api.post(f"/api/cte/business_rules/nope-{U}/clone", json={"name": f"x {U}"}), 404, "does not exist")


def test_a_tag_used_by_a_rule_cannot_be_deleted(api: httpx.Client) -> None:
    in_filter, in_exception, in_exception_filter, free = (
        tag(api, f"{kind}-{U}") for kind in ("in-filter", "in-exception", "in-exception-filter", "free")
    )
    name = f"tagged {U}"
    rule(
        api,
        {
            "name": name,
            "filters": {"query": f'sources.tags IN ("{in_filter}")'},
            "exceptions": [
                {"name": "by tag", "tags": [in_exception]},
                {
                    "name": "by query",
                    "filters": {"mongo": {"sources": {"$elemMatch": {"tags": {"$in": [in_exception_filter]}}}}},
                },
            ],
        },
    )
    for used in (in_filter, in_exception, in_exception_filter):
        r = api.request("DELETE", "/api/cte/tags", json={"name": used})
        refused(r, 400, f"{used} is in use by one of the CTE business rules.")
    assert api.request("DELETE", "/api/cte/tags", json={"name": free}).status_code == 200
    names = {t["name"] for t in api.get("/api/cte/tags").json()}
    assert {in_filter, in_exception, in_exception_filter} <= names  # the refused deletions changed nothing
    assert api.delete(f"/api/cte/business_rules/{name}").status_code == 200
    for used in (in_filter, in_exception, in_exception_filter):
        assert api.request("DELETE", "/api/cte/tags", json={"name": used}).status_code == 200


# Allow-list


async def test_allow_list_crud_and_validation(api: httpx.Client, db: asyncpg.Pool[Any]) -> None:
    r = api.post("/api/cte/allow_list", json={"kind": "exact", "pattern": f"WWW.Allowed-{U}.COM.", "comment": "ours"})
    assert r.status_code == 201, r.text
    exact = r.json()
    assert (exact["kind"], exact["pattern"], exact["comment"]) == ("exact", f"www.allowed-{U}.com", "ours")
    assert (exact["hits"], exact["lastHitAt"]) == (0, None)
    again = api.post("/api/cte/allow_list", json={"kind": "exact", "pattern": f"www.allowed-{U}.com"})
    refused(again, 409, "already exists")
    suffix = api.post("/api/cte/allow_list", json={"kind": "suffix", "pattern": f"*.Corp-{U}.example"}).json()
    assert suffix["pattern"] == f"corp-{U}.example"
    cidr = api.post("/api/cte/allow_list", json={"kind": "cidr", "pattern": "198.18.7.9/24"}).json()
    assert cidr["pattern"] == "198.18.7.0/24"
    regex = api.post("/api/cte/allow_list", json={"kind": "regex", "pattern": f"^cdn[0-9]+-{U}\\."}).json()
    refused(api.post("/api/cte/allow_list", json={"kind": "cidr", "pattern": "10.0.0.0/33"}), 422, "pattern:")
    refused(api.post("/api/cte/allow_list", json={"kind": "regex", "pattern": "(open"}), 422, "regular expression")
    refused(api.post("/api/cte/allow_list", json={"kind": "suffix", "pattern": "a b.com"}), 422, "domain suffix")
    refused(api.post("/api/cte/allow_list", json={"kind": "glob", "pattern": "*"}), 422, "kind")
    refused(api.post("/api/cte/allow_list", json={"kind": "exact", "pattern": ""}), 422, "pattern")
    # Hits come from the rule-engine's table.
    await db.execute(
        "INSERT INTO allow_list_hits (entry_id, hits, last_hit_at) VALUES ($1, 7, now())"
        " ON CONFLICT (entry_id) DO UPDATE SET hits = 7",
        cidr["id"],
    )
    listed = {e["id"]: e for e in api.get("/api/cte/allow_list").json()}
    assert {exact["id"], suffix["id"], cidr["id"], regex["id"]} <= set(listed)
    assert listed[cidr["id"]]["hits"] == 7
    assert listed[cidr["id"]]["lastHitAt"] is not None
    assert listed[exact["id"]]["hits"] == 0
    assert api.get(f"/api/cte/allow_list/{cidr['id']}").json()["hits"] == 7
    for entry in (exact, suffix, cidr, regex):
        assert api.delete(f"/api/cte/allow_list/{entry['id']}").status_code == 200
    refused(api.get(f"/api/cte/allow_list/{exact['id']}"), 404, "does not exist")
    refused(api.delete(f"/api/cte/allow_list/{exact['id']}"), 404, "does not exist")


# Sharing configurations


def test_sharing_crud_and_validation(api: httpx.Client) -> None:
    name = f"shared rule {U}"
    rule(api, {"name": name, "filters": {"query": EVERY_SEVERITY_TEXT}})
    r = api.post("/api/cte/sharing", json=sharing_body(name, f"urls-{U}"))
    assert r.status_code == 201, r.text
    url_sharing = r.json()
    assert url_sharing["listKey"] == f"{TENANT}/url/urls-{U}"
    assert url_sharing["priority"] == "lastSeen"
    assert url_sharing["parameters"] == {
        "list": f"urls-{U}",
        "name": None,
        "url_list_type": "exact",
        "max_url_list_cap": 7,
        "default_url": "cedefaultpush.io",
    }
    assert url_sharing["target"]["label"] == "Add to URL List"
    # The reference's Action object, for a file hash list.
    r = api.post(
        "/api/cte/sharing",
        json={
            "sourceConfiguration": SOURCE,
            "businessRule": name,
            "destinationConfiguration": NETSKOPE,
            "target": {"label": "Add to File Hash List", "value": "file", "parameters": {"file_list": f"hashes-{U}"}},
            "priority": "severity",
        },
    )
    assert r.status_code == 201, r.text
    file_sharing = r.json()
    assert (file_sharing["action"], file_sharing["listKey"]) == ("file", f"{TENANT}/file/hashes-{U}")
    assert file_sharing["parameters"]["max_file_hash_cap"] == 8
    ids = {s["id"] for s in api.get("/api/cte/sharing").json()}
    assert {url_sharing["id"], file_sharing["id"]} <= ids
    assert api.get(f"/api/cte/sharing/{url_sharing['id']}").json() == url_sharing

    # Every refusal names its field.
    post = lambda body: api.post("/api/cte/sharing", json=body)  # noqa: E731
    refused(post(sharing_body(name, "x", sourceConfiguration=f"nope-{U}")), 422, "sourceConfiguration:")
    refused(post(sharing_body(name, "x", destinationConfiguration=f"nope-{U}")), 422, "destinationConfiguration:")
    refused(
        post(sharing_body(name, "x", destinationConfiguration=SOURCE)),
        422,
        "destinationConfiguration: an API Source can only push; it cannot be a destination",
    )
    refused(post(sharing_body(f"nope-{U}", "x")), 422, f"businessRule: Business rule with name='nope-{U}'")
    too_big = sharing_body(name, "x", parameters={"list": "x", "max_url_list_cap": 7.5})
    refused(post(too_big), 422, "parameters.max_url_list_cap: at most 7 MB")
    too_big_file = sharing_body(name, "x", action="file", parameters={"file_list": "h", "max_file_hash_cap": 9})
    refused(post(too_big_file), 422, "parameters.max_file_hash_cap: at most 8 MB")
    refused(post(sharing_body(name, "x", parameters={"list": "create"})), 422, "parameters.name: required")
    refused(
        post(sharing_body(name, f"urls-{U}")),
        422,
        f"The same URL List, File Hash List or Private App List is already configured: the URL List 'urls-{U}' "
        f"on tenant '{TENANT}' is already the target of sharing {url_sharing['id']}.",
    )
    # "create" with the name of a list already targeted is the same list.
    same = sharing_body(name, "x", parameters={"list": "create", "name": f"urls-{U}"})
    refused(post(same), 422, "is already configured")
    same_file = sharing_body(name, "x", action="file", parameters={"file_list": f"hashes-{U}"})
    refused(post(same_file), 422, f"the File Hash List 'hashes-{U}' on tenant '{TENANT}'")
    refused(post({**sharing_body(name, "x"), "action": None}), 422, "action: required")
    refused(post({**sharing_body(name, "x"), "target": {"value": "url"}}), 422, "not both")
    refused(post(sharing_body(name, "x", priority="newest")), 422, "priority")

    # Updates: priority, parameters (a new list, checked again), rule.
    url = f"/api/cte/sharing/{url_sharing['id']}"
    r = api.patch(url, json={"priority": "reputation"})
    assert (r.status_code, r.json()["priority"]) == (200, "reputation")
    r = api.patch(url, json={"parameters": {"list": "create", "name": f"urls-2-{U}", "max_url_list_cap": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["listKey"] == f"{TENANT}/url/urls-2-{U}"
    assert r.json()["priority"] == "reputation"
    refused(api.patch(url, json={"parameters": {"list": "l", "max_url_list_cap": 8}}), 422, "at most 7 MB")
    r = api.patch(f"/api/cte/sharing/{file_sharing['id']}", json={"parameters": {"file_list": f"hashes-{U}"}})
    assert r.status_code == 200  # its own list is not "another sharing's"
    other = rule(api, {"name": f"other rule {U}", "filters": {"query": ""}})
    refused(api.patch(url, json={"businessRule": f"nope-{U}"}), 422, "businessRule:")
    assert api.patch(url, json={"businessRule": other["name"]}).json()["businessRule"] == other["name"]
    refused(api.patch("/api/cte/sharing/999999999", json={"priority": "severity"}), 404, "does not exist")

    # A rule in use cannot be deleted; the refusal names the sharings.
    r = api.delete(f"/api/cte/business_rules/{name}")
    refused(r, 400, f"{file_sharing['id']} ({SOURCE} -> {NETSKOPE})")
    for sharing in (url_sharing, file_sharing):
        assert api.delete(f"/api/cte/sharing/{sharing['id']}").status_code == 200
        refused(api.get(f"/api/cte/sharing/{sharing['id']}"), 404, "does not exist")
    assert api.delete(f"/api/cte/business_rules/{name}").status_code == 200
    # The list is free again.
    r = api.post("/api/cte/sharing", json=sharing_body(other["name"], f"urls-{U}"))
    assert r.status_code == 201, r.text
    assert api.delete(f"/api/cte/sharing/{r.json()['id']}").status_code == 200


# Rule test and dry run


def test_rule_test_counts(api: httpx.Client) -> None:
    src = source(api, f"rs-test-src-{U}")
    benign = tag(api, f"rt-benign-{U}")
    now = datetime.now(UTC)
    old = (now - timedelta(days=30)).isoformat()
    url_value, domain_value, old_value = f"rt-{U}.example/path", f"rt-{U}.example", f"old-rt-{U}.example"
    post(
        api,
        [
            {"value": url_value, "type": "url", "source": src, "severity": "high"},
            {"value": domain_value, "type": "domain", "source": src, "severity": "low"},
            {"value": SHA, "type": "sha256", "source": src, "severity": "high"},
            {"value": "b" * 32, "type": "md5", "source": src, "severity": "medium"},  # not in the rule
            {"value": f"benign-rt-{U}.example", "type": "domain", "source": src, "severity": "high", "tags": [benign]},
            {"value": f"allowed-rt-{U}.example", "type": "domain", "source": src, "severity": "high"},
            {"value": f"test-rt-{U}.example", "type": "domain", "source": src, "severity": "high", "test": True},
            {
                "value": old_value,
                "type": "domain",
                "source": src,
                "severity": "high",
                "firstSeen": old,
                "lastSeen": old,
            },
        ],
    )
    name = f"rt rule {U}"
    rule(
        api,
        {
            "name": name,
            "filters": {"query": 'sources.severity IN ("low", "high")'},
            "exceptions": [{"name": "benign", "tags": [benign]}],
        },
    )
    allowed = api.post("/api/cte/allow_list", json={"kind": "exact", "pattern": f"allowed-rt-{U}.example"}).json()
    try:
        url = f"/api/cte/business_rules/{name}/test"
        recent = api.get(url, params={"source": src, "days": 7})
        assert recent.status_code == 200, recent.text
        assert recent.json() == {
            "hash_count": 1,
            "hash_size": cost_bytes(SHA),
            "url_count": 2,
            "url_size": cost_bytes(url_value) + cost_bytes(domain_value),
        }
        all_time = api.get(url, params={"source": src}).json()
        assert all_time["url_count"] == 3
        assert all_time["url_size"] == recent.json()["url_size"] + cost_bytes(old_value)
        with_destination = api.get(url, params={"source": src, "destination": NETSKOPE}).json()
        assert with_destination == all_time
        any_source = api.get(url).json()  # other modules' indicators may match too
        assert any_source["url_count"] >= 3
        assert any_source["hash_count"] >= 1
        refused(api.get(f"/api/cte/business_rules/nope-{U}/test"), 404, "does not exist")
        refused(api.get(url, params={"source": f"nope-{U}"}), 422, "source:")
        refused(api.get(url, params={"destination": src}), 422, "destination: an API Source can only push")
        assert api.get(url, params={"days": 0}).status_code == 422
        assert api.get(url, params={"days": 366}).status_code == 422
    finally:
        api.delete(f"/api/cte/allow_list/{allowed['id']}")


async def test_dry_run(api: httpx.Client, db: asyncpg.Pool[Any]) -> None:
    src = source(api, f"rs-dry-src-{U}")
    now = datetime.now(UTC)

    def seen(hours: int) -> dict[str, str]:
        at = (now - timedelta(hours=hours)).isoformat()
        return {"firstSeen": at, "lastSeen": at}

    names = [f"dr-{k}-{U}.example" for k in ("a", "b", "c")]  # equal lengths: equal costs
    a, b, c = names
    post(
        api,
        [
            {"value": a, "type": "domain", "source": src, "severity": "high", **seen(1)},
            {"value": b, "type": "domain", "source": src, "severity": "high", **seen(2)},
            {"value": c, "type": "domain", "source": src, "severity": "high", **seen(3)},
            {"value": f"dr-allow-{U}.example", "type": "domain", "source": src, "severity": "high"},
            {"value": f"dr-except-{U}.example", "type": "domain", "source": src, "severity": "high"},
            {"value": f"dr-low-{U}.example", "type": "domain", "source": src, "severity": "low"},
            {"value": f"dr-test-{U}.example", "type": "domain", "source": src, "severity": "high", "test": True},
            {"value": f"dr-retracted-{U}.example", "type": "domain", "source": src, "severity": "high"},
            {"value": "c" * 64, "type": "sha256", "source": src, "severity": "high"},
            {"value": f"dr-elsewhere-{U}.example", "type": "domain", "source": SOURCE, "severity": "high"},
        ],
    )
    r = api.patch(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json={"value": f"dr-retracted-{U}.example", "source": src, "retracted": True},
    )
    assert r.status_code == 201, r.text
    name = f"dr rule {U}"
    rule(
        api,
        {
            "name": name,
            "filters": {"query": 'sources.severity = "high"'},
            "exceptions": [{"name": "one value", "filters": {"query": f'value = "dr-except-{U}.example"'}}],
        },
    )
    allowed = api.post("/api/cte/allow_list", json={"kind": "exact", "pattern": f"dr-allow-{U}.example"}).json()
    cost = cost_bytes(a)
    cap_mb = (1 + 2 * cost + cost // 2) / MIB  # room for two of the three
    r = api.post(
        "/api/cte/sharing",
        json={
            "sourceConfiguration": src,
            "businessRule": name,
            "destinationConfiguration": NETSKOPE,
            "action": "url",
            "parameters": {"list": f"dry-{U}", "max_url_list_cap": cap_mb},
        },
    )
    assert r.status_code == 201, r.text
    sharing = r.json()
    key = sharing["listKey"]
    # What the sink wants the list to hold now (its table; the sink does not run in these tests): b
    # already, and a value the sharing no longer selects.
    await db.execute(
        "INSERT INTO list_members (list_key, value, type, priority, cost_bytes) VALUES"
        " ($1, $2, 'domain', 1, $3), ($1, $4, 'domain', 0, 20)",
        key,
        b,
        cost,
        f"dr-gone-{U}.example",
    )
    try:
        r = api.get(f"/api/cte/sharing/{sharing['id']}/dry_run")
        assert r.status_code == 200, r.text
        out = r.json()
        assert out == {
            "selected": 2,
            "selectedBytes": 2 * cost,
            "wouldAdd": [a],
            "wouldAddCount": 1,
            "wouldRemove": [f"dr-gone-{U}.example"],
            "wouldRemoveCount": 1,
            "leftOutByCap": [c],  # the oldest sighting goes first
            "leftOutByCapCount": 1,
            "excluded": {"allow_listed": 1, "exception": 1, "retracted": 1, "rule": 1, "test": 1, "type": 1},
            "ruleMuted": False,
        }
        members = await db.fetchval("SELECT count(*) FROM list_members WHERE list_key = $1", key)
        assert members == 2  # nothing written
        refused(api.get("/api/cte/sharing/999999999/dry_run"), 404, "does not exist")
    finally:
        api.delete(f"/api/cte/allow_list/{allowed['id']}")
        api.delete(f"/api/cte/sharing/{sharing['id']}")
        await db.execute("DELETE FROM list_members WHERE list_key = $1", key)


# Re-evaluations, access, documentation


async def test_reevaluations_progress(api: httpx.Client, db: asyncpg.Pool[Any]) -> None:
    reason = f"test {U}"
    await db.execute(
        "INSERT INTO reevaluations (reason, started_at, finished_at, processed, total) VALUES ($1, now(), now(), 5, 5)",
        reason,
    )
    r = api.get("/api/cte/reevaluations", params={"limit": 1000})
    assert r.status_code == 200, r.text
    ours = next(e for e in r.json() if e["reason"] == reason)
    assert set(ours) == {"id", "reason", "requestedAt", "startedAt", "finishedAt", "processed", "total"}
    assert (ours["processed"], ours["total"]) == (5, 5)
    assert api.get("/api/cte/reevaluations", params={"limit": 0}).status_code == 422


def test_scopes_and_openapi(api: httpx.Client, services: Running) -> None:
    read_only = httpx.Client(
        base_url=services.api_url, headers={"Authorization": f"Bearer {token(services.api_url, 'cte_read')}"}
    )
    assert read_only.get("/api/cte/business_rules").status_code == 200
    assert read_only.get("/api/cte/allow_list").status_code == 200
    assert read_only.get("/api/cte/sharing").status_code == 200
    assert read_only.get("/api/cte/business_rules/All/test").status_code == 200
    denied = [
        read_only.post("/api/cte/business_rules", json={"name": f"ro {U}", "filters": {"query": ""}}),
        read_only.post("/api/cte/business_rules/All/clone", json={"name": f"ro {U}"}),
        read_only.post("/api/cte/allow_list", json={"kind": "exact", "pattern": "x.example"}),
        read_only.post("/api/cte/sharing", json=sharing_body("All", f"ro-{U}")),
        read_only.delete("/api/cte/sharing/1"),
    ]
    assert [d.status_code for d in denied] == [403] * len(denied)
    assert httpx.get(f"{services.api_url}/api/cte/business_rules").status_code == 401
    spec = httpx.get(f"{services.api_url}/api/openapi.json").json()
    tags = {t for path in spec["paths"].values() for op in path.values() for t in op.get("tags", [])}
    assert {"Business Rules", "Allow-list", "Sharing"} <= tags
