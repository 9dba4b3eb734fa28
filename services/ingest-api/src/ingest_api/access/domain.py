"""Client secrets, tokens and scopes, without I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

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


def issue_token(client_id: str, scopes: Sequence[str], key: str, ttl: timedelta, now: datetime) -> str:
    claims = {"sub": client_id, "scopes": scopes, "iat": now, "exp": now + ttl}
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


# Sign-in throttling: this many consecutive failures lock the client for LOCK_MINUTES.
MAX_FAILED_SIGNINS = 5
LOCK_MINUTES = 5


def token_out(row: dict[str, Any]) -> Token:
    return {
        "client_id": row["client_id"],
        "description": row["description"],
        "scopes": list(row["scopes"]),
        "createdAt": row["created_at"],
        "expiresAt": row["expires_at"],
        "revoked": row["revoked_at"] is not None,
        "lastUsedAt": row["last_used_at"],
    }
