"""The first real path: token, API Source configuration, POST of indicators, GET from the read model."""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import BOOTSTRAP_ID, BOOTSTRAP_SECRET, Running


def token(api_url: str, scope: str | None = None) -> str:
    form = {"grant_type": "client_credentials", "client_id": BOOTSTRAP_ID, "client_secret": BOOTSTRAP_SECRET}
    if scope:
        form["scope"] = scope
    r = httpx.post(f"{api_url}/api/auth", data=form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    return str(body["access_token"])


@pytest.fixture(scope="module")
def client(services: Running) -> httpx.Client:
    c = httpx.Client(base_url=services.api_url, headers={"Authorization": f"Bearer {token(services.api_url)}"})
    r = c.post("/api/cte/configurations", json={"name": "DW", "plugin": "api_source", "ageAfterDays": 30})
    assert r.status_code in (201, 409), r.text
    return c


def wait_for(client: httpx.Client, value: str, timeout: float = 2.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get("/api/cte/indicators/", params={"filters": json.dumps({"value": value})}).json()
        for item in found:
            if item["value"] == value:
                return dict(item)
        time.sleep(0.02)
    raise AssertionError(f"{value} not visible within {timeout} s")


def test_auth_rejects_wrong_secret_and_grant(services: Running) -> None:
    bad = httpx.post(
        f"{services.api_url}/api/auth",
        data={"grant_type": "client_credentials", "client_id": BOOTSTRAP_ID, "client_secret": "nope"},
    )
    assert bad.status_code == 401
    assert bad.json() == {"detail": "Invalid client_id/client_secret provided."}
    grant = httpx.post(f"{services.api_url}/api/auth", data={"grant_type": "implicit", "client_id": BOOTSTRAP_ID})
    assert grant.status_code == 422
    assert grant.json() == {"detail": "grant_type not supported."}
    # The password grant is a user's: a client's credentials are no username and password.
    password = httpx.post(f"{services.api_url}/api/auth", data={"grant_type": "password", "client_id": BOOTSTRAP_ID})
    assert password.status_code == 401
    assert password.json() == {"detail": "Invalid username or password."}


def test_endpoints_refuse_missing_forged_and_read_only_tokens(services: Running, client: httpx.Client) -> None:
    url = services.api_url
    assert httpx.get(f"{url}/api/cte/indicators/").status_code == 401
    forged = httpx.get(f"{url}/api/cte/indicators/", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401
    assert forged.json() == {"detail": "Could not validate credentials."}
    read_only = {"Authorization": f"Bearer {token(url, 'cte_read')}"}
    assert httpx.get(f"{url}/api/cte/indicators/", headers=read_only).status_code == 200
    denied = httpx.post(f"{url}/api/cte/indicators/", headers=read_only, json=[])
    assert denied.status_code == 403
    assert denied.json() == {"detail": "Not enough permissions."}


def test_posted_indicator_is_readable_within_two_seconds(client: httpx.Client) -> None:
    body = [
        {
            "value": "HTTPS://WWW.Dubya.com:443/First-Path",
            "type": "url",
            "source": "DW",
            "reputation": 5,
            "severity": "high",
            "tags": ["test_tag", "test_tag2"],
            "comments": "from the seed",
        }
    ]
    r = client.post("/api/cte/indicators/", json=body)
    assert r.status_code == 201, r.text
    assert r.json()[0]["value"] == "https://www.dubya.com/First-Path"  # the canonical form is the identity
    item = wait_for(client, "https://www.dubya.com/First-Path")
    assert item["type"] == "url"
    assert item["active"] is True
    assert item["externalHits"] == 1
    [source] = item["sources"]
    assert source["source"] == "DW"
    assert source["reputation"] == 5
    assert source["severity"] == "high"
    assert source["tags"] == ["test_tag", "test_tag2"]
    assert source["comments"] == "from the seed"
    assert item["expiresAt"] is not None  # the configuration's 30-day aging applied


def test_wait_true_answers_with_the_stored_indicator(client: httpx.Client) -> None:
    sha = "B53F3C0CD32D7F20849850768DA6431E5F876B7BFA61DB0AA0700B02873393FA"
    r = client.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json=[{"value": sha, "type": "sha256", "source": "DW"}],
    )
    assert r.status_code == 201, r.text
    [stored] = r.json()
    assert stored["value"] == sha.lower()
    assert stored["sources"][0]["source"] == "DW"


async def test_a_batch_with_bad_items_is_refused_whole_with_every_reason(
    client: httpx.Client, db: asyncpg.Pool[Any]
) -> None:
    before = await db.fetchval("SELECT count(*) FROM indicators")
    body = [
        {"value": "good-one.example", "type": "domain", "source": "DW"},
        {"value": "d41d8cd98f00b204e9800998ecf8427", "type": "md5", "source": "DW"},  # 31 characters
        {"value": "evil.example", "type": "domain", "source": "NoSuchSource"},
        {"value": "10.0.0.1", "type": "ipv4", "source": "DW", "reputation": 11},
        "not an object",
    ]
    r = client.post("/api/cte/indicators/", json=body)
    assert r.status_code == 422
    problems = {(e["index"], e["field"]) for e in r.json()["detail"]}
    assert problems == {(1, "value"), (2, "source"), (3, "reputation"), (4, None)}
    md5 = next(e for e in r.json()["detail"] if e["index"] == 1)
    assert "32 hexadecimal characters, got 31" in md5["msg"]
    malformed = client.post("/api/cte/indicators/", content=b"[{", headers={"content-type": "application/json"})
    assert malformed.status_code == 422
    time.sleep(0.5)
    assert await db.fetchval("SELECT count(*) FROM indicators") == before
    assert await db.fetchval("SELECT count(*) FROM indicators WHERE value = 'good-one.example'") == 0


def test_get_limits_and_aggregate(client: httpx.Client) -> None:
    assert client.get("/api/cte/indicators/", params={"limit": 101}).status_code == 400
    count = client.get("/api/cte/indicators/", params={"aggregate": "true"}).json()["count"]
    assert count >= 1
    page = client.get("/api/cte/indicators/", params={"sort": "sources.lastSeen", "ascending": "false"})
    assert page.status_code == 200
    seen = [i["lastSeen"] for i in page.json()]
    assert seen == sorted(seen, reverse=True)


def test_configuration_round_trip_and_errors(client: httpx.Client) -> None:
    assert client.get("/api/cte/configurations/DW").json()["plugin"] == "api_source"
    assert client.get("/api/cte/configurations/missing").status_code == 404
    dup = client.post("/api/cte/configurations", json={"name": "DW", "plugin": "api_source"})
    assert dup.status_code == 409
    bad = client.post("/api/cte/configurations", json={"name": "x", "plugin": "api_source", "reputation": 11})
    assert bad.status_code == 422
    assert "DW" in [c["name"] for c in client.get("/api/cte/configurations").json()]


def test_filters_select_and_hostile_filters_change_nothing(client: httpx.Client) -> None:
    wait_for(client, "https://www.dubya.com/First-Path")
    urls = client.get("/api/cte/indicators/", params={"filters": json.dumps({"type": "url"}), "limit": 100})
    assert urls.status_code == 200
    assert urls.json()
    assert {i["type"] for i in urls.json()} == {"url"}
    found = client.get("/api/cte/indicators/", params={"filters": json.dumps({"value": {"$regex": "FIRST-path"}})})
    assert [i["value"] for i in found.json()] == ["https://www.dubya.com/First-Path"]
    per_source = {"sources": {"$elemMatch": {"source": "DW", "severity": {"$in": ["high"]}}}}
    assert "https://www.dubya.com/First-Path" in [
        i["value"] for i in client.get("/api/cte/indicators/", params={"filters": json.dumps(per_source)}).json()
    ]
    before = client.get("/api/cte/indicators/", params={"aggregate": "true"}).json()["count"]
    hostile = client.get(
        "/api/cte/indicators/", params={"filters": json.dumps({"value": "x'); DROP TABLE indicators; --"})}
    )
    assert hostile.status_code == 200
    assert hostile.json() == []
    for bad in ('{"$where": "1 = 1"}', '{"value": {"$function": "x"}}', "{not json", '{"type": ["url"]}'):
        r = client.get("/api/cte/indicators/", params={"filters": bad})
        assert r.status_code == 400, bad
        assert r.json()["detail"].startswith("Invalid"), r.json()
    assert client.get("/api/cte/indicators/", params={"aggregate": "true"}).json()["count"] == before


def test_requests_carry_a_request_id_into_the_logs(services: Running, client: httpx.Client) -> None:
    r = client.get("/api/cte/indicators/", headers={"X-Request-ID": "trace-me-123"}, params={"filters": "{bad"})
    assert r.headers["X-Request-ID"] == "trace-me-123"
    assert len(client.get("/api/cte/indicators/").headers["X-Request-ID"]) == 32  # one is made when none is given
    client.post("/api/cte/indicators/", headers={"X-Request-ID": "trace-me-456"}, json=[{"value": "x"}])
    lines = [json.loads(line) for line in services.api.log_path.read_text().splitlines() if line.startswith("{")]
    assert all(line.get("service") == "ingest-api" for line in lines)
    assert any(line.get("request_id") == "trace-me-456" and "refused" in line["message"] for line in lines)
