"""Request and answer models, scopes and the reference's error texts of authentication and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

SCOPES = ("cte_read", "cte_write")


# The reference's error texts, which existing clients match on.
INVALID_CLIENT = "Invalid client_id/client_secret provided."
INVALID_TOKEN = "Could not validate credentials."  # noqa: S105 (a message, not a secret)
MISSING_SCOPE = "Not enough permissions."
GRANT_NOT_SUPPORTED = "grant_type not supported."


ADMIN_SCOPES = ("settings_read", "settings_write")
# me: one's own profile and password; api: one's own API tokens (the reference's user scopes).
USER_SCOPES = ("me", "api")
Scope = Literal["me", "api", "cte_read", "cte_write", "settings_read", "settings_write"]
ALL_SCOPES: tuple[Scope, ...] = get_args(Scope)


ACCOUNT_LOCKED = "This account has been locked due to too many failed attempts. Try again later."
ADDRESS_LOCKED = "Too many failed sign-ins from this address. Try again later."
INVALID_USER = "Invalid username or password."
PASSWORD_CHANGE_REQUIRED = "The password must be changed first (POST /api/users/me/password)."  # noqa: S105


class TokenClaims(BaseModel):
    """An access token's claims: ``sub`` is a client id (API token credentials) or, for ``kind`` user, a
    username. Once checked, ``scopes`` are what the token may do now and ``owner`` the user behind it."""

    sub: str
    scopes: list[str]
    kind: Literal["client", "user"] = "client"
    iat: int | None = None
    owner: str | None = None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    description: str = Field(default="", max_length=500)
    # Minutes until the credentials expire; none (or negative, as in the reference) means never.
    expireAfter: int | None = None
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["cte_read", "cte_write"]))


class ClientRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=100)


# Answers (TypedDicts: see ingest_api.shared)


@with_config(ConfigDict(extra="forbid"))
class AccessToken(TypedDict):
    """A signed-in client's token, in the reference's field names."""

    access_token: str
    token_type: Literal["bearer"]
    scopes: list[Scope]
    firstLogin: bool
    fromSSO: bool
    passwordPolicyViolation: bool


@with_config(ConfigDict(extra="forbid"))
class Token(TypedDict):
    """API token credentials as listed: never the secret."""

    client_id: str
    description: str
    scopes: list[Scope]
    owner: str | None
    createdAt: datetime
    expiresAt: datetime | None
    revoked: bool
    lastUsedAt: datetime | None


@with_config(ConfigDict(extra="forbid"))
class NewToken(Token):
    """New API token credentials: the only answer that shows the secret."""

    client_secret: str
