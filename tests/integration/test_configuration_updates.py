"""An update of a configuration that gives null: null clears what may be empty (the tenant, the aging
criteria, the parameters) and leaves a field that cannot be empty as it is, as the other updates do."""

from __future__ import annotations

import secrets

import httpx

from tests.integration.test_api_complete import api  # noqa: F401  (the authorized client fixture)


def test_null_leaves_what_cannot_be_empty_and_clears_the_rest(api: httpx.Client) -> None:  # noqa: F811
    name = "nulls-" + secrets.token_hex(3)
    aging = {"value": 5, "unit": "minutes"}
    r = api.post(
        "/api/cte/configurations",
        json={"name": name, "plugin": "api_source", "reputation": 3, "agingCriteria": aging},
    )
    assert r.status_code == 201, r.text
    nulls = {"active": None, "reputation": None, "sslValidation": None, "tagsAggregateStrategy": None}
    r = api.patch(f"/api/cte/configurations/{name}", json={**nulls, "agingCriteria": None})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["active"], got["reputation"], got["sslValidation"]) == (True, 3, True)
    assert (got["tagsAggregateStrategy"], got["agingCriteria"]) == ("append", None)
    assert api.get(f"/api/cte/configurations/{name}").json() == got
