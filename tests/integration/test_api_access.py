"""Access rules for every endpoint, enumerated from the OpenAPI description so none can slip through:
no token, a forged token, an expired token, and a token without the endpoint's scope are all refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import JWT_SECRET, Running
from tests.integration.test_api_first_path import token

PUBLIC = {("post", "/api/auth")}
READ_SCOPES = {"cte_read", "settings_read"}


def operations(api_url: str) -> list[tuple[str, str]]:
    spec = httpx.get(f"{api_url}/api/openapi.json").json()
    found = [
        (method, path.replace("{name}", "x"))
        for path, ops in spec["paths"].items()
        for method in ops
        if (method, path) not in PUBLIC
    ]
    assert len(found) >= 20
    return found


def call(api_url: str, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body: Any = [] if path.endswith("/indicators/") and method == "post" else {}
    return httpx.request(method.upper(), f"{api_url}{path}", headers=headers, json=body)


@pytest.fixture(scope="module")
def ops(services: Running) -> list[tuple[str, str]]:
    return operations(services.api_url)


def test_every_endpoint_refuses_a_missing_token(services: Running, ops: list[tuple[str, str]]) -> None:
    for method, path in ops:
        r = call(services.api_url, method, path, {})
        assert r.status_code == 401, (method, path, r.status_code, r.text)


def test_every_endpoint_refuses_forged_and_expired_tokens(services: Running, ops: list[tuple[str, str]]) -> None:
    now = datetime.now(UTC)
    claims = {"sub": "test-bootstrap-client", "scopes": ["cte_read", "cte_write", "settings_read", "settings_write"]}
    forged = jwt.encode({**claims, "exp": now + timedelta(hours=1)}, "not-the-key-" + "y" * 32, algorithm="HS256")
    expired = jwt.encode({**claims, "exp": now - timedelta(seconds=5)}, JWT_SECRET, algorithm="HS256")
    unsigned = jwt.encode({**claims, "exp": now + timedelta(hours=1)}, None, algorithm="none")
    for bad in (forged, expired, unsigned):
        for method, path in ops:
            r = call(services.api_url, method, path, {"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json() == {"detail": "Could not validate credentials."}


def test_every_endpoint_refuses_a_token_without_its_scope(services: Running, ops: list[tuple[str, str]]) -> None:
    cte_read = {"Authorization": f"Bearer {token(services.api_url, 'cte_read')}"}
    settings_read = {"Authorization": f"Bearer {token(services.api_url, 'settings_read')}"}
    for method, path in ops:
        settings = path.startswith(("/api/tenants", "/api/users", "/api/settings", "/api/roles", "/api/audit"))
        if method == "get":
            # A read needs its family's read scope: the other family's is refused.
            r = call(services.api_url, method, path, cte_read if settings else settings_read)
        else:
            r = call(services.api_url, method, path, settings_read if settings else cte_read)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert r.json() == {"detail": "Not enough permissions."}
