"""Client secrets, tokens and scopes, without I/O."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote_plus

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from ingest_api.access.schemas import Scope, Token, TokenClaims

JWT_ALGORITHM = "HS256"


_hasher = PasswordHasher()


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(secret_hash, secret)
    except VerificationError:
        return False


def issue_token(
    subject: str,
    scopes: Sequence[str],
    key: str,
    ttl: timedelta,
    now: datetime,
    kind: Literal["client", "user"] = "client",
) -> str:
    claims: dict[str, Any] = {"sub": subject, "scopes": scopes, "iat": now, "exp": now + ttl}
    if kind == "user":
        claims["kind"] = kind  # a client's token carries no kind: tokens issued before users still read
    return jwt.encode(claims, key, algorithm=JWT_ALGORITHM)


def read_token(token: str, key: str) -> TokenClaims | None:
    """The token's claims, or None if it is forged, malformed or expired."""
    try:
        claims = jwt.decode(token, key, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]})
        return TokenClaims.model_validate(claims)
    except (jwt.PyJWTError, ValueError):
        return None


def granted_scopes(requested: str | None, allowed: list[Scope]) -> list[Scope] | None:
    """Scopes for a new token: all the client's when none are asked for; None if asked for more."""
    if not requested or not requested.strip():
        return list(allowed)
    asked = requested.replace(",", " ").split()
    held: dict[str, Scope] = {s: s for s in allowed}
    if not set(asked) <= held.keys():
        return None
    return [held[s] for s in dict.fromkeys(asked)]


# Sign-in throttling: this many consecutive failures lock the client (or the user) for LOCK_MINUTES.
MAX_FAILED_SIGNINS = 5
LOCK_MINUTES = 5


def user_subject(username: str) -> str:
    """The key of a user's failed sign-ins (signin_failures.subject)."""
    return f"user:{username}"


def address_subject(address: str) -> str:
    """The key of an address's failed sign-ins (signin_failures.subject)."""
    return f"address:{address}"


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic`` client authentication (RFC 6749 2.3.1: id and secret form-encoded, then
    joined by a colon and base64-encoded), or None when the header is absent or not Basic."""
    if not authorization:
        return None
    kind, _, encoded = authorization.partition(" ")
    if kind.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


@dataclass(frozen=True)
class Access:
    """What a token's holder may do now: the scopes its user or client holds today, and whether the user
    must change the password before anything else."""

    scopes: frozenset[str]
    owner: str | None
    password_change_required: bool = False
    # Tokens issued before this (epoch seconds) are not this user's: a user deleted and made again
    # under the same name does not inherit the old one's tokens.
    valid_since: int | None = None


def effective_scopes(granted: Iterable[str], *held: Iterable[str] | None) -> frozenset[str]:
    """A token's scopes narrowed to what its client and its user hold today (None: no such limit), so
    a role or token changed after the token was issued takes effect at once."""
    scopes = frozenset(granted)
    for limit in held:
        if limit is not None:
            scopes &= frozenset(limit)
    return scopes


def token_out(row: dict[str, Any]) -> Token:
    return {
        "client_id": row["client_id"],
        "description": row["description"],
        "scopes": list(row["scopes"]),
        "owner": row["owner"],
        "createdAt": row["created_at"],
        "expiresAt": row["expires_at"],
        "revoked": row["revoked_at"] is not None,
        "lastUsedAt": row["last_used_at"],
    }
