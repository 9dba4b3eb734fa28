"""A Cloud Exchange client, unchanged, against the real API and rule-engine: only the reference's shapes
(its paths, its field names, no ``wait`` parameter), the seed's worked examples and the sequences a
script runs (write then read, write then patch, write then bulk tag), with no retries and no sleeps.
Every write answers once the read model shows it, so the next request sees it."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import httpx
import pytest

from tests.conftest import BOOTSTRAP_ID, BOOTSTRAP_SECRET, Running

SHA = "b53f3c0cd32d7f20849850768da6431e5f876b7bfa61db0aa0700b02873393fa"
PATH = "/api/cte/indicators/"


@pytest.fixture(scope="module")
def ce(services: Running) -> httpx.Client:
    """A client as a CE script makes it: a token from /api/auth, then bearer requests."""
    form = {"grant_type": "client_credentials", "client_id": BOOTSTRAP_ID, "client_secret": BOOTSTRAP_SECRET}
    token = httpx.post(f"{services.api_url}/api/auth", data=form).json()["access_token"]
    c = httpx.Client(base_url=services.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    r = c.post("/api/cte/configurations", json={"name": "CE-DW", "plugin": "api_source", "ageAfterDays": 90})
    assert r.status_code in (201, 409), r.text
    for name, color in (("ce_tag", "#5A8DEE"), ("ce_tag2", "#F0A30A"), ("ce_abc", "#000000")):
        r = c.post("/api/cte/tags", json={"name": name, "color": color})
        assert r.status_code in (200, 201) or "already exists" in r.text, r.text
    return c


def _get(ce: httpx.Client, value: str) -> dict[str, Any]:
    r = ce.get(PATH, params={"filters": json.dumps({"value": value})})
    assert r.status_code == 200, r.text
    [found] = [i for i in r.json() if i["value"] == value]
    return dict(found)


def test_the_seed_worked_example_scripted(ce: httpx.Client) -> None:
    # The session's other tests may have posted the seed's value: start from none.
    assert ce.request("DELETE", f"{PATH}bulk", json={"values": ["www.dubya.com"]}).status_code == 201
    # POST the URL www.dubya.com to source DW with both tags: answered with what is stored.
    body = [
        {"value": "www.dubya.com", "type": "url", "source": "CE-DW", "reputation": 5, "tags": ["ce_tag", "ce_tag2"]}
    ]
    r = ce.post(PATH, json=body)
    assert r.status_code == 201, r.text
    [stored] = r.json()
    assert (stored["value"], stored["externalHits"], stored["tags"]) == ("www.dubya.com", 1, ["ce_tag", "ce_tag2"])
    # PATCH its reputation from 5 to 7, at once: found, and answered with the stored indicator.
    r = ce.patch(PATH, json={"value": "www.dubya.com", "type": "url", "source": "CE-DW", "reputation": 7})
    assert r.status_code == 201, r.text
    patched = r.json()
    assert (patched["sources"][0]["reputation"], patched["externalHits"]) == (7, 2)
    assert patched["sources"][0]["tags"] == ["ce_tag", "ce_tag2"]
    # PATCH bulk: remove a tag, at once: the edit finds it and the next GET shows it.
    r = ce.patch(f"{PATH}bulk", json={"locator": {"values": ["www.dubya.com"]}, "tags": {"remove": ["ce_tag"]}})
    assert (r.status_code, r.json()) == (201, {"updated": 1})
    assert _get(ce, "www.dubya.com")["sources"][0]["tags"] == ["ce_tag2"]


def test_the_seed_bulk_example_on_a_hash(ce: httpx.Client) -> None:
    r = ce.post(PATH, json=[{"value": SHA, "type": "sha256", "source": "CE-DW", "tags": ["ce_abc"]}])
    assert r.status_code == 201, r.text
    r = ce.patch(f"{PATH}bulk", json={"locator": {"values": [SHA]}, "tags": {"remove": ["ce_abc"]}})
    assert (r.status_code, r.json()) == (201, {"updated": 1})
    [entry] = [s for s in _get(ce, SHA)["sources"] if s["source"] == "CE-DW"]
    assert entry["tags"] == []


def test_write_then_read_answers_in_request_order(ce: httpx.Client) -> None:
    run = uuid4().hex[:8]
    values = [f"z{run}.example", f"a{run}.example", f"m{run}.example", f"z{run}.example"]
    r = ce.post(PATH, json=[{"value": v, "type": "domain", "source": "CE-DW"} for v in values])
    assert r.status_code == 201, r.text
    # The stored indicators, each once, in the order the request named them (not sorted).
    assert [i["value"] for i in r.json()] == values[:3]
    assert r.json()[0]["externalHits"] == 2  # named twice: two sightings, stored as one indicator
    for v in values[:3]:
        assert _get(ce, v)["sources"][0]["source"] == "CE-DW"


def test_write_then_bulk_tag_by_query(ce: httpx.Client) -> None:
    run = uuid4().hex[:8]
    values = [f"{n}.{run}.example" for n in range(5)]
    assert ce.post(PATH, json=[{"value": v, "type": "domain", "source": "CE-DW"} for v in values]).status_code == 201
    query = json.dumps({"value": {"$regex": run}})
    r = ce.patch(f"{PATH}bulk", json={"locator": {"query": query}, "tags": {"add": ["ce_tag"]}})
    assert (r.status_code, r.json()) == (201, {"updated": 5})
    for v in values:
        assert _get(ce, v)["tags"] == ["ce_tag"]
    r = ce.request("DELETE", f"{PATH}bulk", json={"values": values[:2]})
    assert (r.status_code, r.json()) == (201, {"deleted": 2})
    found = ce.get(PATH, params={"filters": query, "aggregate": "true"}).json()
    assert found == {"count": 3}


def test_a_post_sent_again_with_its_key_counts_once(ce: httpx.Client) -> None:
    value = f"{uuid4().hex[:8]}.retried.example"
    key = {"Idempotency-Key": str(uuid4())}
    body = [{"value": value, "type": "domain", "source": "CE-DW"}]
    first = ce.post(PATH, json=body, headers=key)
    again = ce.post(PATH, json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert _get(ce, value)["externalHits"] == 1


def test_the_fastest_acknowledgement_on_request(ce: httpx.Client) -> None:
    value = f"{uuid4().hex[:8]}.feed.example"
    r = ce.post(PATH, params={"wait": "false"}, json=[{"value": value, "type": "domain", "source": "CE-DW"}])
    assert r.status_code == 201, r.text
    assert r.json()[0]["value"] == value  # what was accepted, as the sighting describes it
