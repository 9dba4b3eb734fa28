"""Routes of ``/api/auth`` (client credentials for a token, with sign-in lockout) and ``/api/users/tokens``."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Form, HTTPException, Query, Request, status

from ingest_api.access import repository
from ingest_api.access.domain import (
    LOCK_MINUTES,
    MAX_FAILED_SIGNINS,
    address_subject,
    basic_credentials,
    granted_scopes,
    hash_secret,
    issue_token,
    token_out,
    user_subject,
    verify_secret,
)
from ingest_api.access.schemas import (
    ACCOUNT_LOCKED,
    GRANT_NOT_SUPPORTED,
    INVALID_CLIENT,
    INVALID_USER,
    AccessToken,
    ClientRef,
    NewToken,
    Token,
    TokenCreate,
)
from ingest_api.audit.handlers import record_signin
from ingest_api.metrics import SIGNIN_FAILURES
from ingest_api.shared import WRITE_ERRORS, ApiTokens, AppState, Empty, State, error_answer
from ingest_api.users import repository as users_repository
from ingest_api.users.domain import password_problems
from ingest_api.users.schemas import MAX_PASSWORD_LENGTH

auth_router = APIRouter(tags=["Authentication"], responses=WRITE_ERRORS)
tokens_router = APIRouter(prefix="/users/tokens", tags=["API Tokens"], responses=WRITE_ERRORS)

# A locked client is told when it may try again.
_REFUSED = error_answer(
    "Wrong credentials, or a locked client (Retry-After: the seconds until it may try again)",
    headers={"Retry-After": {"schema": {"type": "integer"}, "required": False}},
)


@auth_router.post(
    "/auth",
    summary="Get an access token (OAuth2 client credentials, or a user's password)",
    responses={401: _REFUSED},
)
async def authenticate(
    request: Request,
    state: State,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str, Form()] = "",
    client_secret: Annotated[str, Form()] = "",
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)] = "",
    scope: Annotated[str | None, Form()] = None,
) -> AccessToken:
    """``grant_type=client_credentials`` with ``client_id`` and ``client_secret`` in the form or as HTTP
    Basic client authentication (RFC 6749 2.3.1); ``grant_type=password`` with ``username`` and
    ``password`` (client authentication, if sent, is ignored: there are no OAuth2 clients beyond API
    tokens). Failures lock the client or user, and the address, for a while (Retry-After)."""
    if grant_type not in ("client_credentials", "password"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, GRANT_NOT_SUPPORTED)
    address = request.client.host if request.client else None
    basic = basic_credentials(request.headers.get("authorization"))
    if grant_type == "client_credentials" and not client_id and basic is not None:
        client_id, client_secret = basic
    attempt = (
        SignIn("client", client_id, client_secret)
        if grant_type == "client_credentials"
        else SignIn("user", username, password)
    )
    address_key = address_subject(address) if address else None
    async with state.pool.acquire() as conn:
        subjects = [address_key] if address_key else []
        if attempt.kind == "user":
            subjects.append(user_subject(attempt.name))
        locked_until = await repository.subject_lock(conn, subjects) if subjects else None
        client = await repository.get_client(conn, attempt.name) if attempt.kind == "client" else None
        if client is not None:
            client_lock = await repository.client_lock(conn, attempt.name)
            locked_until = max(filter(None, (locked_until, client_lock)), default=None)
        user = await users_repository.get_user(conn, attempt.name) if attempt.kind == "user" else None
    if locked_until is not None:
        await _refuse_signin(state, attempt, address, "locked", grant_type)
        retry = max(int((locked_until - datetime.now(UTC)).total_seconds()) + 1, 1)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, ACCOUNT_LOCKED, headers={"Retry-After": str(retry)})
    now = datetime.now(UTC)
    # argon2 is deliberately slow: verify in a thread so the event loop keeps serving. An unknown
    # client id or username costs the same time as a wrong secret, so timing does not reveal which exist.
    known = client if attempt.kind == "client" else user
    stored_hash = (
        known["secret_hash" if attempt.kind == "client" else "password_hash"] if known else UNKNOWN_CLIENT_HASH
    )
    secret_ok = await asyncio.to_thread(verify_secret, stored_hash, attempt.secret)
    if attempt.kind == "client":
        usable = (
            client is not None
            and client["revoked_at"] is None
            and (client["expires_at"] is None or client["expires_at"] > now)
        )
        if usable and client is not None and client["owner"] is not None:
            async with state.pool.acquire() as conn:
                owner = await users_repository.user_access(conn, client["owner"])
            usable = owner is not None and owner["active"]
    else:
        usable = user is not None and user["active"]
    if not (usable and secret_ok):
        async with state.pool.acquire() as conn:
            if client is not None:
                await repository.sign_in_failed(conn, attempt.name, MAX_FAILED_SIGNINS, LOCK_MINUTES)
            if user is not None:
                await repository.subject_failed(
                    conn, user_subject(attempt.name), MAX_FAILED_SIGNINS, LOCK_MINUTES, None
                )
            limit = state.settings.signin_address_max_failures
            if address_key and limit:
                await repository.subject_failed(conn, address_key, limit, LOCK_MINUTES, LOCK_MINUTES)
        SIGNIN_FAILURES.inc()
        reason = "unknown" if known is None else ("unusable" if not usable else "wrong secret")
        await _refuse_signin(state, attempt, address, reason, grant_type)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, INVALID_CLIENT if attempt.kind == "client" else INVALID_USER)
    assert known is not None
    held = list(known["scopes"])
    first_login = bool(user["first_login"]) if user is not None else False
    scopes = granted_scopes(scope, held)
    if scopes is None:
        await _refuse_signin(state, attempt, address, "scopes not held", grant_type)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Unauthorized")
    async with state.pool.acquire() as conn:
        if attempt.kind == "client":
            await repository.sign_in_succeeded(conn, attempt.name)
        else:
            await repository.subject_succeeded(conn, user_subject(attempt.name))
            await users_repository.logged_in(conn, attempt.name)
    await record_signin(
        state, actor=attempt.actor, address=address, outcome="success", status=200, grant_type=grant_type, scopes=scopes
    )
    ttl = timedelta(minutes=state.settings.token_ttl_minutes)
    return {
        "access_token": issue_token(attempt.name, scopes, state.jwt_key, ttl, now, kind=attempt.kind),
        "token_type": "bearer",
        "scopes": scopes,
        "firstLogin": first_login,
        "fromSSO": False,
        # The password is only seen here: say when it no longer meets the policy (it must then be changed).
        "passwordPolicyViolation": attempt.kind == "user" and bool(password_problems(attempt.secret, attempt.name)),
    }


@dataclass(frozen=True)
class SignIn:
    """Who tries to sign in, with what."""

    kind: Literal["client", "user"]
    name: str
    secret: str

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name[:200]}"


async def _refuse_signin(state: AppState, attempt: SignIn, address: str | None, reason: str, grant_type: str) -> None:
    await record_signin(
        state, actor=attempt.actor, address=address, outcome="failure", status=401, grant_type=grant_type, reason=reason
    )


UNKNOWN_CLIENT_HASH = hash_secret(secrets.token_urlsafe(16))


# API tokens (Settings > Users > API Tokens)


@tokens_router.post("", status_code=status.HTTP_201_CREATED, summary="Create API token credentials")
async def create_token(
    state: State,
    claims: ApiTokens,
    body: Annotated[TokenCreate | None, Body()] = None,
    description: Annotated[str | None, Query(max_length=500)] = None,
    expire_after: Annotated[int | None, Query(description="minutes; negative or absent: never expires")] = None,
) -> NewToken:
    """The client secret is in this answer only; it is stored as an argon2 hash. The token belongs to
    the user who makes it and is never worth more than that user's role."""
    request = body or TokenCreate()
    if description is not None:
        request.description = description
    if expire_after is not None:
        request.expireAfter = expire_after
    if "scopes" not in request.model_fields_set:  # the default, as far as the creator holds it
        request.scopes = [s for s in request.scopes if s in claims.scopes]
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
            conn, client_id, secret_hash, request.description, list(request.scopes), expires, claims.owner
        )
    return {**token_out(row), "client_secret": client_secret}


@tokens_router.get("", summary="List API token credentials (never their secrets)")
async def list_tokens(state: State, claims: ApiTokens) -> list[Token]:
    """One's own tokens; every token with settings_read."""
    async with state.pool.acquire() as conn:
        rows = await repository.list_clients(conn, claims.owner, every="settings_read" in claims.scopes)
    return [token_out(r) for r in rows]


@tokens_router.delete("", summary="Revoke API token credentials")
async def revoke_token(state: State, ref: Annotated[ClientRef, Body()], claims: ApiTokens) -> Empty:
    """One's own token; any token with settings_write."""
    async with state.pool.acquire() as conn:
        every = "settings_write" in claims.scopes
        if not await repository.revoke_client(conn, ref.client_id, claims.owner, every=every):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No active token with client_id='{ref.client_id}'.")
    state.forget("client", ref.client_id)
    return {}
