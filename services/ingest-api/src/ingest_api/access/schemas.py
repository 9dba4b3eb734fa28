"""Request and answer models, scopes and the reference's error texts of authentication and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

SCOPES = ("cte_read", "cte_write")


# The reference's error texts, which existing clients match on.
INVALID_CLIENT = "Invalid client_id/client_secret provided."
INVALID_TOKEN = "Could not validate credentials."  # noqa: S105 (a message, not a secret)
MISSING_SCOPE = "Not enough permissions."
GRANT_NOT_SUPPORTED = "grant_type not supported."


ADMIN_SCOPES = ("settings_read", "settings_write")
Scope = Literal["cte_read", "cte_write", "settings_read", "settings_write"]
ALL_SCOPES = (*SCOPES, *ADMIN_SCOPES)


ACCOUNT_LOCKED = "This account has been locked due to too many failed attempts. Try again later."


class TokenClaims(BaseModel):
    sub: str
    scopes: list[str]


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
    createdAt: datetime
    expiresAt: datetime | None
    revoked: bool
    lastUsedAt: datetime | None


@with_config(ConfigDict(extra="forbid"))
class NewToken(Token):
    """New API token credentials: the only answer that shows the secret."""

    client_secret: str
