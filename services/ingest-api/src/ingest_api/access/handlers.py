"""Routes of ``/api/auth`` (client credentials for a token, with sign-in lockout) and ``/api/users/tokens``."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Form, HTTPException, Query, status

from ingest_api.access import repository
from ingest_api.access.domain import (
    LOCK_MINUTES,
    MAX_FAILED_SIGNINS,
    granted_scopes,
    hash_secret,
    issue_token,
    token_out,
    verify_secret,
)
from ingest_api.access.schemas import (
    ACCOUNT_LOCKED,
    GRANT_NOT_SUPPORTED,
    INVALID_CLIENT,
    AccessToken,
    ClientRef,
    NewToken,
    Token,
    TokenCreate,
)
from ingest_api.metrics import SIGNIN_FAILURES
from ingest_api.shared import WRITE_ERRORS, Empty, SettingsReader, SettingsWriter, State, error_answer

auth_router = APIRouter(tags=["Authentication"], responses=WRITE_ERRORS)
tokens_router = APIRouter(prefix="/users/tokens", tags=["API Tokens"], responses=WRITE_ERRORS)

# A locked client is told when it may try again.
_REFUSED = error_answer(
    "Wrong credentials, or a locked client (Retry-After: the seconds until it may try again)",
    headers={"Retry-After": {"schema": {"type": "integer"}, "required": False}},
)


@auth_router.post("/auth", summary="Get an access token (OAuth2 client credentials)", responses={401: _REFUSED})
async def authenticate(
    state: State,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str, Form()] = "",
    client_secret: Annotated[str, Form()] = "",
    scope: Annotated[str | None, Form()] = None,
) -> AccessToken:
    if grant_type != "client_credentials":
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, GRANT_NOT_SUPPORTED)
    async with state.pool.acquire() as conn:
        client = await repository.get_client(conn, client_id)
        locked_until = await repository.client_lock(conn, client_id) if client else None
    if locked_until is not None:
        retry = max(int((locked_until - datetime.now(UTC)).total_seconds()) + 1, 1)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, ACCOUNT_LOCKED, headers={"Retry-After": str(retry)})
    now = datetime.now(UTC)
    # argon2 is deliberately slow: verify in a thread so the event loop keeps serving. An unknown
    # client id costs the same time as a wrong secret, so timing does not reveal which ids exist.
    secret_ok = await asyncio.to_thread(
        verify_secret, client["secret_hash"] if client else UNKNOWN_CLIENT_HASH, client_secret
    )
    usable = (
        client is not None
        and client["revoked_at"] is None
        and (client["expires_at"] is None or client["expires_at"] > now)
    )
    if not (usable and secret_ok):
        if client is not None:
            async with state.pool.acquire() as conn:
                await repository.sign_in_failed(conn, client_id, MAX_FAILED_SIGNINS, LOCK_MINUTES)
        SIGNIN_FAILURES.inc()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, INVALID_CLIENT)
    assert client is not None
    scopes = granted_scopes(scope, list(client["scopes"]))
    if scopes is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Unauthorized")
    async with state.pool.acquire() as conn:
        await repository.sign_in_succeeded(conn, client_id)
    ttl = timedelta(minutes=state.settings.token_ttl_minutes)
    return {
        "access_token": issue_token(client_id, scopes, state.jwt_key, ttl, now),
        "token_type": "bearer",
        "scopes": scopes,
        "firstLogin": False,
        "fromSSO": False,
        "passwordPolicyViolation": False,
    }


UNKNOWN_CLIENT_HASH = hash_secret(secrets.token_urlsafe(16))


# API tokens (Settings > Users > API Tokens)


@tokens_router.post("", status_code=status.HTTP_201_CREATED, summary="Create API token credentials")
async def create_token(
    state: State,
    claims: SettingsWriter,
    body: Annotated[TokenCreate | None, Body()] = None,
    description: Annotated[str | None, Query(max_length=500)] = None,
    expire_after: Annotated[int | None, Query(description="minutes; negative or absent: never expires")] = None,
) -> NewToken:
    """The client secret is in this answer only; it is stored as an argon2 hash."""
    request = body or TokenCreate()
    if description is not None:
        request.description = description
    if expire_after is not None:
        request.expireAfter = expire_after
    if not set(request.scopes) <= set(claims.scopes):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "scopes: a token cannot have scopes its creator lacks")
    client_id = secrets.token_hex(16)
    client_secret = secrets.token_hex(32)
    expires = (
        datetime.now(UTC) + timedelta(minutes=request.expireAfter)
        if request.expireAfter is not None and request.expireAfter >= 0
        else None
    )
    secret_hash = await asyncio.to_thread(hash_secret, client_secret)
    async with state.pool.acquire() as conn:
        row = await repository.create_client(
            conn, client_id, secret_hash, request.description, list(request.scopes), expires
        )
    return {**token_out(row), "client_secret": client_secret}


@tokens_router.get("", summary="List API token credentials (never their secrets)")
async def list_tokens(state: State, _: SettingsReader) -> list[Token]:
    async with state.pool.acquire() as conn:
        return [token_out(r) for r in await repository.list_clients(conn)]


@tokens_router.delete("", summary="Revoke API token credentials")
async def revoke_token(state: State, ref: Annotated[ClientRef, Body()], _: SettingsWriter) -> Empty:
    async with state.pool.acquire() as conn:
        if not await repository.revoke_client(conn, ref.client_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No active token with client_id='{ref.client_id}'.")
    state.forget_client(ref.client_id)
    return {}
