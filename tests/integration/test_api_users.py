"""Users through the real API process (uvicorn, its own event loop and threads for argon2): the first
administrator from the environment changes the password, creates a user who signs in with a password and
with HTTP Basic client credentials of a token of the user's, and Swagger UI with its assets is served by
the process itself over HTTP."""

from __future__ import annotations

import base64
import re
import secrets

import httpx

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Running


def sign_in(url: str, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/api/auth", data={"grant_type": "password", "username": username, "password": password})


def test_the_first_administrator_creates_a_user_who_signs_in(services: Running) -> None:
    url = services.api_url
    first = sign_in(url, ADMIN_USERNAME, ADMIN_PASSWORD)
    assert first.status_code == 200, first.text
    assert first.json()["firstLogin"] is True
    h = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert httpx.get(f"{url}/api/tenants", headers=h).status_code == 403
    chosen = "integration-chosen-" + secrets.token_hex(6)
    r = httpx.post(
        f"{url}/api/users/me/password", headers=h, json={"currentPassword": ADMIN_PASSWORD, "newPassword": chosen}
    )
    assert r.status_code == 200, r.text
    assert httpx.get(f"{url}/api/tenants", headers=h).status_code == 200

    r = httpx.post(
        f"{url}/api/users",
        headers=h,
        json={"username": "analyst", "password": "first-pass-word-9", "role": "Read-only"},
    )
    assert r.status_code == 201, r.text
    a = sign_in(url, "analyst", "first-pass-word-9").json()
    ah = {"Authorization": f"Bearer {a['access_token']}"}
    own = "own-pass-words-" + secrets.token_hex(4)
    r = httpx.post(
        f"{url}/api/users/me/password", headers=ah, json={"currentPassword": "first-pass-word-9", "newPassword": own}
    )
    assert r.status_code == 200, r.text
    assert httpx.get(f"{url}/api/cte/indicators/", headers=ah).status_code == 200
    assert httpx.post(f"{url}/api/cte/indicators/", headers=ah, json=[]).status_code == 403
    assert httpx.post(f"{url}/api/tenants", headers=ah, json={}).status_code == 403

    made = httpx.post(f"{url}/api/users/tokens", headers=ah, json={"description": "analyst script"}).json()
    assert (made["owner"], made["scopes"]) == ("analyst", ["cte_read"])
    basic = base64.b64encode(f"{made['client_id']}:{made['client_secret']}".encode()).decode()
    robot = httpx.post(
        f"{url}/api/auth", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert robot.status_code == 200, robot.text
    assert (
        httpx.get(
            f"{url}/api/cte/indicators/", headers={"Authorization": f"Bearer {robot.json()['access_token']}"}
        ).status_code
        == 200
    )

    audit = httpx.get(f"{url}/api/audit", headers=h, params={"actor": "user:analyst"}).json()
    assert {(e["action"], e["resource"], e["outcome"]) for e in audit} >= {
        ("sign-in", "/api/auth", "success"),
        ("POST", "/api/users/me/password", "success"),
        ("POST", "/api/users/tokens", "success"),
        ("POST", "/api/tenants", "failure"),
    }
    assert all(e["address"] == "127.0.0.1" for e in audit)


def test_swagger_ui_is_served_by_the_process(services: Running) -> None:
    page = httpx.get(f"{services.api_url}/api/docs")
    assert page.status_code == 200
    assert not re.search(r"https?://", page.text)
    assets = re.findall(r"""(?:src|href)=["'](/api/docs/assets/[^"']+)["']""", page.text)
    assert len(assets) == 3
    for asset in assets:
        r = httpx.get(f"{services.api_url}{asset}")
        assert r.status_code == 200, asset
        assert int(r.headers["content-length"]) > 100
