"""Users, passwords, roles, API tokens owned by users, lockout and the audit log, through the API in process
on the real PostgreSQL and Kafka.

The module runs its own app (not the shared ``system``): it needs the bootstrap administrator, a small
per-address lockout and clients that sign in from several addresses. A user created through the API
signs in with a password and is tested against every operation of the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cte_common.db import Pool, create_pool
from ingest_api.main import create_app
from ingest_api.settings import Settings
from tests.conftest import BOOTSTRAP_ID, BOOTSTRAP_SECRET, JWT_SECRET, SECRETS_KEY, Env

ADMIN = "admin"
ADMIN_PASSWORD = "bootstrap-" + secrets.token_hex(8)
ADDRESS_LIMIT = 6
NOT_ENOUGH = {"detail": "Not enough permissions."}


def settings(env: Env) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_bootstrap=env.stack.kafka_bootstrap,
        database_url=env.database_url,
        topic_prefix=env.topic_prefix,
        secrets_key=SECRETS_KEY,  # type: ignore[arg-type]
        jwt_secret=JWT_SECRET,  # type: ignore[arg-type]
        bootstrap_client_id=BOOTSTRAP_ID,
        bootstrap_client_secret=BOOTSTRAP_SECRET,  # type: ignore[arg-type]
        bootstrap_admin_username=ADMIN,
        bootstrap_admin_password=ADMIN_PASSWORD,  # type: ignore[arg-type]
        signin_address_max_failures=ADDRESS_LIMIT,
        startup_timeout_seconds=30,
    )


@asynccontextmanager
async def running(env: Env) -> AsyncIterator[FastAPI]:
    app = create_app(settings(env))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="module")
async def app(env: Env) -> AsyncIterator[FastAPI]:
    async with running(env) as a:
        yield a


@pytest.fixture(scope="module")
async def pool(env: Env) -> AsyncIterator[Pool]:
    p = await create_pool(settings(env))
    yield p
    await p.close()


def client(app: FastAPI, address: str = "127.0.0.1", token: str | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=transport, base_url="http://api.component", headers=headers, timeout=30)


async def sign_in(
    app: FastAPI, username: str, password: str, address: str = "127.0.0.1", **form: str
) -> httpx.Response:
    async with client(app, address) as c:
        return await c.post(
            "/api/auth", data={"grant_type": "password", "username": username, "password": password, **form}
        )


async def signed_in(app: FastAPI, username: str, password: str) -> httpx.AsyncClient:
    r = await sign_in(app, username, password)
    assert r.status_code == 200, r.text
    return client(app, token=r.json()["access_token"])


async def admin(app: FastAPI) -> httpx.AsyncClient:
    """The bootstrap administrator, past the first login (the password changed once, in the first test)."""
    return await signed_in(app, ADMIN, ADMIN_NEW_PASSWORD)


ADMIN_NEW_PASSWORD = "a-long-chief-passphrase-" + secrets.token_hex(4)


async def new_user(app: FastAPI, username: str, role: str) -> tuple[httpx.AsyncClient, str]:
    """A user created by the administrator, signed in past the first login; the client and password."""
    first, password = "first-pass-" + secrets.token_hex(6), "own-passphrase-" + secrets.token_hex(6)
    async with await admin(app) as a:
        r = await a.post("/api/users", json={"username": username, "password": first, "role": role})
        assert r.status_code == 201, r.text
        assert r.json()["firstLogin"] is True
    async with await signed_in(app, username, first) as u:
        r = await u.post("/api/users/me/password", json={"currentPassword": first, "newPassword": password})
        assert r.status_code == 200, r.text
    return await signed_in(app, username, password), password


async def test_the_bootstrap_administrator_must_change_the_password_first(app: FastAPI) -> None:
    r = await sign_in(app, ADMIN, ADMIN_PASSWORD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["firstLogin"] is True
    assert body["scopes"] == ["me", "api", "cte_read", "cte_write", "settings_read", "settings_write"]
    async with client(app, token=body["access_token"]) as first:
        # Until the password changes, only the user's own profile and the change itself.
        refused = await first.get("/api/cte/indicators/")
        assert refused.status_code == 403
        assert "password must be changed" in refused.json()["detail"]
        assert (await first.get("/api/users")).status_code == 403
        assert (await first.post("/api/users/tokens", json={})).status_code == 403
        me = await first.get("/api/users/me")
        assert me.status_code == 200
        assert (me.json()["username"], me.json()["role"], me.json()["firstLogin"]) == (ADMIN, "Admin", True)
        # The policy: long enough, several characters, not the username; the current password is checked.
        for weak, why in (("short-1", "at least 12 characters"), ("aaaaaaaaaaaaaaaa", "different characters")):
            r = await first.post(
                "/api/users/me/password", json={"currentPassword": ADMIN_PASSWORD, "newPassword": weak}
            )
            assert r.status_code == 422, r.text
            assert why in r.text, r.text
        r = await first.post(
            "/api/users/me/password", json={"currentPassword": ADMIN_PASSWORD, "newPassword": "my-admin-password-xyz"}
        )
        assert r.status_code == 422
        assert "username" in r.text
        r = await first.post(
            "/api/users/me/password", json={"currentPassword": "wrong-password-1", "newPassword": ADMIN_NEW_PASSWORD}
        )
        assert r.status_code == 422
        assert "currentPassword" in r.text
        r = await first.post(
            "/api/users/me/password", json={"currentPassword": ADMIN_PASSWORD, "newPassword": ADMIN_NEW_PASSWORD}
        )
        assert r.status_code == 200, r.text
        assert r.json()["firstLogin"] is False
        # The same token now does what the role allows.
        assert (await first.get("/api/cte/indicators/")).status_code == 200
    assert (await sign_in(app, ADMIN, ADMIN_PASSWORD)).status_code == 401
    again = await sign_in(app, ADMIN, ADMIN_NEW_PASSWORD)
    assert again.status_code == 200
    assert (again.json()["firstLogin"], again.json()["passwordPolicyViolation"]) == (False, False)


async def test_the_bootstrap_administrator_is_made_once(app: FastAPI, env: Env) -> None:
    """A second replica starting on the same database makes no second administrator, nor a new password."""
    async with running(env) as second, await admin(second) as a:
        users = (await a.get("/api/users")).json()
        assert [u["username"] for u in users].count(ADMIN) == 1
        assert (await sign_in(second, ADMIN, ADMIN_PASSWORD)).status_code == 401


async def test_client_credentials_by_http_basic(app: FastAPI) -> None:
    async with await admin(app) as a:
        r = await a.post("/api/users/tokens", json={"description": "basic", "scopes": ["cte_read"]})
        assert r.status_code == 201, r.text
        made = r.json()
    assert made["owner"] == ADMIN
    basic = base64.b64encode(f"{made['client_id']}:{made['client_secret']}".encode()).decode()
    async with client(app) as c:
        ok = await c.post(
            "/api/auth", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["scopes"] == ["cte_read"]
        wrong = base64.b64encode(f"{made['client_id']}:not-the-secret".encode()).decode()
        r = await c.post(
            "/api/auth", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {wrong}"}
        )
        assert r.status_code == 401
        assert r.json() == {"detail": "Invalid client_id/client_secret provided."}
        # The form's credentials still work, as before.
        form = {
            "grant_type": "client_credentials",
            "client_id": made["client_id"],
            "client_secret": made["client_secret"],
        }
        assert (await c.post("/api/auth", data=form)).status_code == 200
        assert (await c.post("/api/auth", data={"grant_type": "implicit"})).json() == {
            "detail": "grant_type not supported."
        }


def operations(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every protected operation of the document with the scope it needs."""
    found = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if "security" in op:
                [scope] = op["security"][0]["bearer"]
                found.append((method, re.sub(r"\{name\}", "x", re.sub(r"\{\w+_id\}", "1", path)), scope))
    return found


async def call(c: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    body: Any = [] if path.endswith("/indicators/") and method == "post" else {}
    return await c.request(method.upper(), path, json=body)


@pytest.mark.parametrize(
    ("role", "scopes"),
    [
        ("Read-only", {"me", "api", "cte_read", "settings_read"}),
        ("Feeds", {"me", "cte_read", "cte_write"}),
        ("Admin", {"me", "api", "cte_read", "cte_write", "settings_read", "settings_write"}),
    ],
)
async def test_a_user_sees_only_what_the_role_allows_on_every_endpoint(
    app: FastAPI, role: str, scopes: set[str]
) -> None:
    if role == "Feeds":
        async with await admin(app) as a:
            r = await a.post("/api/roles", json={"name": "Feeds", "scopes": sorted(scopes)})
            assert r.status_code == 201, r.text
            assert r.json()["builtin"] is False
    username = f"user-{role.lower()}"
    user, _ = await new_user(app, username, role)
    async with user:
        spec = (await user.get("/api/openapi.json")).json()
        ops = operations(spec)
        assert len(ops) >= 50
        for method, path, needed in ops:
            r = await call(user, method, path)
            if needed in scopes:
                assert r.status_code not in (401, 403), (role, method, path, r.status_code, r.text)
            else:
                assert (r.status_code, r.json()) == (403, NOT_ENOUGH), (role, method, path, r.status_code, r.text)
    # A role's scopes bound what a sign-in may ask for.
    missing = sorted({"cte_write", "settings_write"} - scopes)
    if missing:
        password = None
        async with await admin(app) as a:
            password = "reset-pass-" + secrets.token_hex(6)
            r = await a.patch(f"/api/users/{username}", json={"password": password, "firstLogin": False})
            assert r.status_code == 200, r.text
        refused = await sign_in(app, username, password, scope=missing[0])
        assert (refused.status_code, refused.json()) == (403, {"detail": "Unauthorized"})


async def test_tokens_belong_to_their_user_and_are_worth_no_more(app: FastAPI) -> None:
    async with await admin(app) as a:
        r = await a.post("/api/roles", json={"name": "Robots", "scopes": ["me", "api", "cte_read"]})
        assert r.status_code == 201, r.text
    reader, _ = await new_user(app, "token-owner", "Robots")
    async with reader:
        assert (await reader.post("/api/users/tokens", json={"scopes": ["cte_write"]})).status_code == 403
        r = await reader.post("/api/users/tokens?description=mine&expire_after=60", json={"scopes": ["cte_read"]})
        assert r.status_code == 201, r.text
        mine = r.json()
        assert (mine["owner"], mine["description"]) == ("token-owner", "mine")
        assert mine["expiresAt"] is not None
        # A user sees and revokes only the user's own tokens; settings_read sees every token.
        listed = (await reader.get("/api/users/tokens")).json()
        assert listed
        assert {t["owner"] for t in listed} == {"token-owner"}
        assert [t["scopes"] for t in listed if t["description"] == "mine"] == [["cte_read"]]
    async with await admin(app) as a:
        every = (await a.get("/api/users/tokens")).json()
        assert {"token-owner", ADMIN} <= {t["owner"] for t in every}
        others = [t["client_id"] for t in every if t["owner"] != "token-owner" and not t["revoked"]]
    async with await signed_in(app, "token-owner", await reset(app, "token-owner")) as reader:
        r = await reader.request("DELETE", "/api/users/tokens", json={"client_id": others[0]})
        assert r.status_code == 404
    form = {"grant_type": "client_credentials", "client_id": mine["client_id"], "client_secret": mine["client_secret"]}
    async with client(app) as c:
        robot = await c.post("/api/auth", data=form)
        assert robot.status_code == 200
        robot_token = robot.json()["access_token"]
    async with client(app, token=robot_token) as robot_client:
        assert (await robot_client.get("/api/cte/indicators/")).status_code == 200
        # Deleting the user revokes the user's tokens: new sign-ins and issued access tokens stop.
        async with await admin(app) as a:
            assert (await a.delete("/api/users/token-owner")).status_code == 200
        assert (await robot_client.get("/api/cte/indicators/")).status_code == 401
    async with client(app) as c:
        assert (await c.post("/api/auth", data=form)).status_code == 401


async def reset(app: FastAPI, username: str) -> str:
    """A new password set by the administrator, without a first-login change."""
    password = "reset-pass-" + secrets.token_hex(6)
    async with await admin(app) as a:
        r = await a.patch(f"/api/users/{username}", json={"password": password, "firstLogin": False})
        assert r.status_code == 200, r.text
    return password


async def test_users_and_roles_are_managed(app: FastAPI) -> None:
    async with await admin(app) as a:
        assert (
            await a.post("/api/users", json={"username": "me", "password": "x" * 20, "role": "Admin"})
        ).status_code == 422
        weak = await a.post("/api/users", json={"username": "weakling", "password": "short", "role": "Admin"})
        assert weak.status_code == 422
        assert "12 characters" in weak.text
        nope = await a.post("/api/users", json={"username": "nobody", "password": "long-enough-pass", "role": "Nope"})
        assert nope.status_code == 422
        made = await a.post("/api/users", json={"username": "ops", "password": "long-enough-pass", "role": "Read-only"})
        assert made.status_code == 201, made.text
        assert made.json()["scopes"] == ["me", "api", "cte_read", "settings_read"]
        dup = await a.post("/api/users", json={"username": "ops", "password": "long-enough-pass", "role": "Read-only"})
        assert dup.status_code == 409
        assert "password" not in json.dumps((await a.get("/api/users/ops")).json()).lower().replace(
            "passwordchangedat", ""
        )
        # Built-in roles cannot change; a role in use cannot go.
        assert (await a.patch("/api/roles/Admin", json={"scopes": ["me"]})).status_code == 409
        assert (
            await a.post("/api/roles", json={"name": "Auditors", "scopes": ["me", "settings_read"]})
        ).status_code == 201
        assert (await a.patch("/api/users/ops", json={"role": "Auditors"})).json()["scopes"] == ["me", "settings_read"]
        assert (await a.delete("/api/roles/Auditors")).status_code == 409
        assert (await a.delete("/api/users/ops")).status_code == 200
        assert (await a.delete("/api/roles/Auditors")).status_code == 200
        roles = {r["name"]: r for r in (await a.get("/api/roles")).json()}
        assert roles["Admin"]["builtin"]
        assert roles["Read-only"]["builtin"]
        # Deactivated: no sign-in.
        await a.post("/api/users", json={"username": "idle", "password": "long-enough-pass", "role": "Read-only"})
        assert (await a.patch("/api/users/idle", json={"active": False})).json()["active"] is False
    assert (await sign_in(app, "idle", "long-enough-pass")).status_code == 401


async def test_the_last_manager_cannot_be_removed(app: FastAPI, pool: Pool) -> None:
    async with pool.acquire() as conn:
        managers = await conn.fetch(
            "SELECT u.username FROM users u JOIN roles r ON r.name = u.role "
            "WHERE u.active AND 'settings_write' = ANY(r.scopes)"
        )
    async with await admin(app) as a:
        for row in managers:
            if row["username"] != ADMIN:
                assert (await a.delete(f"/api/users/{row['username']}")).status_code == 200
        for attempt in (
            a.delete(f"/api/users/{ADMIN}"),
            a.patch(f"/api/users/{ADMIN}", json={"role": "Read-only"}),
            a.patch(f"/api/users/{ADMIN}", json={"active": False}),
        ):
            r = await attempt
            assert r.status_code == 409, r.text
        assert (await a.get("/api/users/me")).json()["role"] == "Admin"


async def test_a_user_is_locked_after_failures_in_every_replica(app: FastAPI, env: Env) -> None:
    _, password = await new_user(app, "forgetful", "Read-only")
    for i in range(5):
        # From different addresses: the user's lock, not an address's.
        assert (await sign_in(app, "forgetful", "wrong-password", address=f"10.9.0.{i}")).status_code == 401
    locked = await sign_in(app, "forgetful", password, address="10.9.1.1")
    assert locked.status_code == 401
    assert "locked" in locked.json()["detail"]
    assert int(locked.headers["Retry-After"]) > 0
    # The state is in PostgreSQL: another replica refuses too.
    async with running(env) as second:
        assert (await sign_in(second, "forgetful", password, address="10.9.1.2")).status_code == 401
    # Another user is not affected.
    assert (await sign_in(app, ADMIN, ADMIN_NEW_PASSWORD, address="10.9.1.3")).status_code == 200


async def test_an_address_is_locked_after_failures(app: FastAPI) -> None:
    for i in range(ADDRESS_LIMIT):
        r = await sign_in(app, f"guess-{i}", "guessed-password", address="10.66.0.1")
        assert r.status_code == 401
        assert r.json() == {"detail": "Invalid username or password."}
    locked = await sign_in(app, ADMIN, ADMIN_NEW_PASSWORD, address="10.66.0.1")
    assert locked.status_code == 401
    assert "locked" in locked.json()["detail"]
    async with client(app, "10.66.0.1") as c:
        form = {"grant_type": "client_credentials", "client_id": BOOTSTRAP_ID, "client_secret": BOOTSTRAP_SECRET}
        assert (await c.post("/api/auth", data=form)).status_code == 401
    assert (await sign_in(app, ADMIN, ADMIN_NEW_PASSWORD, address="10.66.0.2")).status_code == 200


async def test_the_audit_log_records_sign_ins_and_changes_without_secrets(app: FastAPI, pool: Pool) -> None:
    v1, v2 = "v1-" + secrets.token_hex(12), "v2-" + secrets.token_hex(12)
    async with client(app, "10.77.0.5") as c:
        await c.post("/api/auth", data={"grant_type": "password", "username": ADMIN, "password": "wrong-one-here"})
        ok = await c.post(
            "/api/auth", data={"grant_type": "password", "username": ADMIN, "password": ADMIN_NEW_PASSWORD}
        )
        token = ok.json()["access_token"]
    async with client(app, "10.77.0.5", token) as a:
        r = await a.post(
            "/api/tenants", json={"name": "audited", "tenantName": "audited", "v1Token": v1, "v2Token": v2}
        )
        assert r.status_code == 201, r.text
        assert (await a.patch("/api/tenants/audited", json={"v2Token": v2 + "x"})).status_code == 200
        made = await a.post("/api/users/tokens", json={"description": "audited token"})
        secret = made.json()["client_secret"]
        user = await a.post(
            "/api/users", json={"username": "auditee", "password": "mellow-harbor-words-1", "role": "Read-only"}
        )
        assert user.status_code == 201
        assert (
            await a.post("/api/cte/configurations", json={"name": "aud-src", "plugin": "api_source"})
        ).status_code == 201
        assert (await a.post("/api/tenants", json={"name": "audited"})).status_code == 422
        entries = (await a.get("/api/audit", params={"limit": 100})).json()
        # Paging: newest first, skip and limit.
        page = (await a.get("/api/audit", params={"skip": 1, "limit": 2})).json()
        assert [e["id"] for e in page] == [e["id"] for e in entries[1:3]]
        assert entries == sorted(entries, key=lambda e: e["id"], reverse=True)
        failures = (await a.get("/api/audit", params={"outcome": "failure", "actor": f"user:{ADMIN}"})).json()
        tenants = (await a.get("/api/audit", params={"resource": "/api/tenants"})).json()
        system = (await a.get("/api/audit", params={"actor": "system"})).json()
    by_resource = {(e["action"], e["resource"], e["target"], e["outcome"]) for e in entries}
    assert ("sign-in", "/api/auth", ADMIN, "success") in by_resource
    assert ("sign-in", "/api/auth", ADMIN, "failure") in by_resource
    assert ("POST", "/api/tenants", "audited", "success") in by_resource
    assert ("PATCH", "/api/tenants/{name}", "audited", "success") in by_resource
    assert ("POST", "/api/users/tokens", None, "success") in by_resource
    assert ("POST", "/api/users", "auditee", "success") in by_resource
    assert ("POST", "/api/cte/configurations", "aud-src", "success") in by_resource
    assert ("POST", "/api/tenants", "audited", "failure") in by_resource
    [bootstrap] = system
    assert (bootstrap["action"], bootstrap["resource"], bootstrap["target"], bootstrap["address"]) == (
        "POST",
        "/api/users",
        ADMIN,
        None,
    )
    mine = [e for e in entries if e["address"] == "10.77.0.5"]
    assert mine
    assert all(e["actor"] == f"user:{ADMIN}" for e in mine)
    assert failures
    assert all(e["outcome"] == "failure" for e in failures)
    assert tenants
    assert all(e["resource"].startswith("/api/tenants") for e in tenants)
    created = next(e for e in entries if e["resource"] == "/api/tenants" and e["outcome"] == "success")
    assert json.loads(created["details"])["body"]["v1Token"] == "[redacted]"
    # No secret anywhere in the table: tenant tokens, passwords, the token's secret.
    async with pool.acquire() as conn:
        for text in (v1, v2, secret, ADMIN_NEW_PASSWORD, "wrong-one-here", "mellow-harbor-words-1", ADMIN_PASSWORD):
            assert await conn.fetchval("SELECT count(*) FROM audit_log t WHERE strpos(t::text, $1) > 0", text) == 0
    # Indicator writes are not audited (their history is the topic).
    assert not [e for e in entries if e["resource"].startswith("/api/cte/indicators")]


async def test_api_docs_load_with_no_network(app: FastAPI) -> None:
    """The page references only assets the API serves itself, and serves them."""
    async with client(app) as c:
        page = await c.get("/api/docs")
        assert page.status_code == 200
        html = page.text
        assert "SwaggerUIBundle" in html
        assert not re.search(r"https?://", html), "the page names an outside address"
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"url: '([^']+)'", html)
        assert len(urls) >= 4
        for url in urls:
            assert url.startswith("/api/"), url
            r = await c.get(url)
            assert r.status_code == 200, url
            assert len(r.content) > 100, url
        assert (
            (await c.get("/api/docs/assets/swagger-ui-bundle.js"))
            .headers["content-type"]
            .startswith(("application/javascript", "text/javascript"))
        )
        assert (await c.get("/api/docs/oauth2-redirect")).status_code == 200
        # The Authorize button: the password flow against /api/auth, and a bearer token.
        schemes = (await c.get("/api/openapi.json")).json()["components"]["securitySchemes"]
        assert schemes["oauth2"]["flows"]["password"]["tokenUrl"] == "/api/auth"
        assert schemes["bearer"]["scheme"] == "bearer"
        # What the password flow sends (form, space-separated scopes) gives a token.
        form = {"grant_type": "password", "username": ADMIN, "password": ADMIN_NEW_PASSWORD, "scope": "me cte_read"}
        r = await c.post("/api/auth", data=form)
        assert r.status_code == 200
        assert r.json()["scopes"] == ["me", "cte_read"]


async def test_a_user_made_again_under_the_same_name_does_not_inherit_old_tokens(app: FastAPI) -> None:
    old, _ = await new_user(app, "twice", "Read-only")
    async with old:
        assert (await old.get("/api/cte/indicators/")).status_code == 200
        async with await admin(app) as a:
            assert (await a.delete("/api/users/twice")).status_code == 200
        assert (await old.get("/api/cte/indicators/")).status_code == 401
        # The same name again, a second later at least (tokens carry their issue time in seconds).
        await asyncio.sleep(1.1)
        async with await admin(app) as a:
            again = {"username": "twice", "password": "another-pass-word", "role": "Admin", "firstLogin": False}
            assert (await a.post("/api/users", json=again)).status_code == 201
        assert (await old.get("/api/cte/indicators/")).status_code == 401
    async with await signed_in(app, "twice", "another-pass-word") as new:
        assert (await new.get("/api/tenants")).status_code == 200
