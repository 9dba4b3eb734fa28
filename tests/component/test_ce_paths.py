"""The reference's 6.x paths that name what they change in the body, or in the query, answer as ours do."""

from __future__ import annotations

from tests.support.component import System

EVERY_SEVERITY = 'sources.severity IN ("unknown","low","medium","high","critical")'


async def test_a_configuration_is_deleted_by_name_in_the_body(system: System) -> None:
    await system.configure({"name": "ce-delete"})
    await system.post_indicators([{"value": "ce-delete.example", "type": "domain", "source": "ce-delete"}])
    r = await system.api.request("DELETE", "/api/cte/configuration", json={"name": "ce-delete", "keepData": False})
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": "ce-delete", "indicatorsRemoved": 1}
    await system.apply_pending()
    assert await system.indicator("ce-delete.example") is None
    assert (await system.api.get("/api/cte/configurations/ce-delete")).status_code == 404
    missing = await system.api.request("DELETE", "/api/cte/configuration", json={"name": "ce-delete"})
    assert missing.status_code == 404


async def test_a_business_rule_is_changed_and_deleted_by_name_in_the_body(system: System) -> None:
    body = {"name": "ce-rule", "filters": {"query": EVERY_SEVERITY}}
    assert (await system.api.post("/api/cte/business_rules", json=body)).status_code == 201
    r = await system.api.patch(
        "/api/cte/business_rule", json={"name": "ce-rule", "filters": {"query": 'sources.severity = "high"'}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["filters"]["query"] == 'sources.severity = "high"'
    assert r.json() == (await system.api.get("/api/cte/business_rules/ce-rule")).json()
    bad = await system.api.patch("/api/cte/business_rule", json={"name": "ce-rule", "muted": True})
    assert bad.status_code == 422  # muting needs unmuteAt, as on our path
    assert (await system.api.patch("/api/cte/business_rule", json={"name": "nope"})).status_code == 404
    assert (await system.api.request("DELETE", "/api/cte/business_rule", json={"name": "ce-rule"})).status_code == 200
    assert (await system.api.get("/api/cte/business_rules/ce-rule")).status_code == 404


async def test_a_rule_is_tested_by_name_in_the_query(system: System) -> None:
    await system.configure({"name": "ce-test-src"})
    body = {"name": "ce-tested", "filters": {"query": EVERY_SEVERITY}}
    assert (await system.api.post("/api/cte/business_rules", json=body)).status_code == 201
    await system.post_indicators(
        [
            {"value": "ce-tested.example", "type": "domain", "source": "ce-test-src", "severity": "high"},
            {"value": "9e107d9d372bb6826bd81d3542a419d6", "type": "md5", "source": "ce-test-src"},
        ]
    )
    params = {"rule": "ce-tested", "days": 30, "sourceConfiguration": "ce-test-src"}
    by_query = await system.api.get("/api/cte/business_rules/test", params=params)
    assert by_query.status_code == 200, by_query.text
    ours = await system.api.get("/api/cte/business_rules/ce-tested/test", params={"days": 30, "source": "ce-test-src"})
    assert by_query.json() == ours.json()
    assert (by_query.json()["url_count"], by_query.json()["hash_count"]) == (1, 1)
    # A rule may be named "test": without ?rule= the path is that rule's.
    assert (await system.api.get("/api/cte/business_rules/test")).status_code == 404
    named = {"name": "test", "filters": {"query": EVERY_SEVERITY}}
    assert (await system.api.post("/api/cte/business_rules", json=named)).status_code == 201
    assert (await system.api.get("/api/cte/business_rules/test")).json()["name"] == "test"


async def test_configurations_on_the_plugins_path_with_the_reference_plugin_ids(system: System) -> None:
    r = await system.api.post("/api/cte/plugins/configurations/api_sources", json={"name": "ce-src", "reputation": 3})
    assert r.status_code == 201, r.text
    assert (r.json()["plugin"], r.json()["reputation"]) == ("api_source", 3)
    # The reference's id is accepted on our path too.
    ours = await system.api.post("/api/cte/configurations", json={"name": "ce-src-2", "plugin": "api_sources"})
    assert ours.status_code == 201, ours.text
    assert ours.json()["plugin"] == "api_source"
    assert (await system.api.post("/api/cte/plugins/configurations/nope", json={"name": "x"})).status_code == 422
    netskope = await system.api.post("/api/cte/plugins/configurations/netskope", json={"name": "ce-ns"})
    assert netskope.status_code == 422  # a netskope configuration needs a tenant, whichever path
    listed = (await system.api.get("/api/cte/plugins/configurations")).json()
    assert listed == (await system.api.get("/api/cte/configurations")).json()
    assert "ce-src" in {c["name"] for c in listed}
    patched = await system.api.patch("/api/cte/plugins/configurations", json={"name": "ce-src", "reputation": 8})
    assert patched.status_code == 200, patched.text
    assert patched.json() == (await system.api.get("/api/cte/configurations/ce-src")).json()
    assert patched.json()["reputation"] == 8
    missing = await system.api.patch("/api/cte/plugins/configurations", json={"name": "nope", "reputation": 8})
    assert missing.status_code == 404


async def test_the_sharing_dashboard_counts_what_a_rule_selects_and_shares(system: System) -> None:
    await system.configure({"name": "dash-src"})
    destination = await system.netskope_destination("dash-tenant")
    rule = {"name": "dash-rule", "filters": {"query": 'sources.severity IN ("high","critical")'}}
    assert (await system.api.post("/api/cte/business_rules", json=rule)).status_code == 201
    await system.share(
        {
            "sourceConfiguration": "dash-src",
            "businessRule": "dash-rule",
            "destinationConfiguration": destination,
            "action": "url",
            "parameters": {"list": "create", "name": "dash-urls"},
        }
    )
    assert (
        await system.api.post("/api/cte/allow_list", json={"kind": "exact", "pattern": "ok.dash.example"})
    ).status_code == 201
    await system.post_indicators(
        [
            {"value": "bad.dash.example", "type": "domain", "source": "dash-src", "severity": "high"},
            {"value": "ok.dash.example", "type": "domain", "source": "dash-src", "severity": "critical"},
            {"value": "low.dash.example", "type": "domain", "source": "dash-src", "severity": "low"},
            {
                "value": "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
                "type": "sha256",
                "source": "dash-src",
                "severity": "high",
            },
        ]
    )
    params = {"rule": "dash-rule", "sourceConfiguration": "dash-src", "destinationConfiguration": destination}
    r = await system.api.get("/api/cte/dashboard/sharing", params=params)
    assert r.status_code == 200, r.text
    # The allow-listed domain is selected but not shared; the hash has no file hash list to go to.
    assert r.json() == {
        "domain": {"filteredCount": 2, "sharedCount": 1, "misMatchCount": 1},
        "sha256": {"filteredCount": 1, "sharedCount": 0, "misMatchCount": 1},
    }
    missing = await system.api.get("/api/cte/dashboard/sharing", params={**params, "rule": "nope"})
    assert missing.status_code == 404
    unknown = await system.api.get("/api/cte/dashboard/sharing", params={**params, "sourceConfiguration": "nope"})
    assert unknown.status_code == 422
