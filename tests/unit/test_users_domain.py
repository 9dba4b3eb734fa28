"""Users, sign-in and the audit log without I/O: HTTP Basic client credentials, the password policy,
scopes narrowed to what a user holds today, and what the audit log keeps of a request."""

from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from ingest_api.access.domain import basic_credentials, effective_scopes, issue_token, read_token
from ingest_api.access.schemas import ALL_SCOPES
from ingest_api.audit.domain import REDACTED, audited, details, path_template, redact, target_of
from ingest_api.users.domain import ordered_scopes, password_problems


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_basic_credentials_are_read_as_rfc_6749_says() -> None:
    assert basic_credentials(basic("abc:s3cret")) == ("abc", "s3cret")
    # Form-encoded before base64: a colon or a space in the secret arrives escaped.
    assert basic_credentials(basic("a%3Ab:with+space%3A")) == ("a:b", "with space:")
    assert basic_credentials(basic("id:")) == ("id", "")
    for bad in (
        None,
        "",
        "Bearer x",
        basic("no-colon"),
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"\xff:x").decode(),
    ):
        assert basic_credentials(bad) is None


def test_the_password_policy() -> None:
    assert password_problems("correct horse battery", "alice") == []
    assert password_problems("short-pass", "alice") == ["at least 12 characters"]
    assert password_problems("abababababababab", "bob") == ["at least 5 different characters"]
    assert password_problems("my name is ALICE, ok", "alice") == ["must not contain the username"]


@given(st.text(min_size=12, max_size=40), st.text(alphabet="abcdefgh", min_size=1, max_size=8))
def test_the_policy_refuses_any_password_holding_the_username(password: str, username: str) -> None:
    assert ("must not contain the username" in password_problems(password, username)) == (
        username.lower() in password.lower()
    )


def test_a_token_is_worth_what_its_client_and_user_hold_today() -> None:
    assert effective_scopes(["cte_read", "cte_write"], None) == {"cte_read", "cte_write"}
    assert effective_scopes(["cte_read", "cte_write"], ["cte_read", "me"]) == {"cte_read"}
    assert effective_scopes(ALL_SCOPES, ["me", "api", "cte_read"], ["cte_read"]) == {"cte_read"}
    assert ordered_scopes(["settings_read", "me", "cte_read", "me"]) == ["me", "cte_read", "settings_read"]


def test_user_and_client_tokens_are_told_apart() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    user = read_token(issue_token("alice", ["me"], "k" * 40, timedelta(minutes=5), now, kind="user"), "k" * 40)
    client = read_token(issue_token("abc", ["cte_read"], "k" * 40, timedelta(minutes=5), now), "k" * 40)
    assert user is not None
    assert client is not None
    assert (user.kind, user.sub, client.kind, client.sub) == ("user", "alice", "client", "abc")


def test_which_requests_are_audited() -> None:
    assert audited("POST", "/api/tenants")
    assert audited("DELETE", "/api/cte/configuration")
    assert audited("POST", "/api/cte/plugins/configurations/api_sources")
    assert audited("PATCH", "/api/cte/business_rules/x")
    assert audited("POST", "/api/users/me/password")
    assert audited("DELETE", "/api/users/tokens")
    assert audited("PATCH", "/api/settings/cte")
    assert not audited("GET", "/api/tenants")
    assert not audited("POST", "/api/cte/indicators/")
    assert not audited("POST", "/api/auth")  # recorded by /api/auth itself, with who tried


def test_secrets_never_reach_an_entry() -> None:
    body = {
        "name": "prod",
        "v1Token": "a",
        "v2token": "b",
        "parameters": {"client_secret": "c", "nested": [{"apiKey": "d", "api_key": "e", "keep": 1}]},
        "newPassword": "f",
        "currentPassword": "g",
    }
    kept = redact(body)
    assert kept["name"] == "prod"
    assert kept["parameters"]["nested"][0] == {"apiKey": REDACTED, "api_key": REDACTED, "keep": 1}
    text = json.dumps(details(json.dumps(body).encode(), "application/json", {"token": "h", "x": "1"}))
    for secret in "abcdefgh":
        assert f'"{secret}"' not in text
    assert details(b"a=1", "application/x-www-form-urlencoded", {}) == {"body": "(not JSON)"}
    assert "truncated" in details(json.dumps({"filters": "x" * 10_000}).encode(), "application/json", {})


def test_an_entry_names_its_resource_and_target() -> None:
    assert path_template("/api/tenants/prod", {"name": "prod"}) == "/api/tenants/{name}"
    assert path_template("/api/cte/business_rules/Every%20Severity/clone", {"name": "Every Severity"}) == (
        "/api/cte/business_rules/{name}/clone"
    )
    assert path_template("/api/tenants", {}) == "/api/tenants"
    assert target_of({"name": "prod"}, {"name": "other"}) == "prod"
    assert target_of({}, {"username": "bob"}) == "bob"
    assert target_of({}, [1, 2]) is None
