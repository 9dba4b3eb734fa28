"""``GET /api/audit``, and the middleware that records every change as it is answered.

A change is recorded after its handler ran and before its answer leaves: the client sees the answer
only once the entry is written. If PostgreSQL fails in between, the change stands and its entry is
missing; that is logged (an error), never hidden.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest_api.access.domain import read_token
from ingest_api.audit import repository
from ingest_api.audit.domain import audited, details, entry_out, path_template, target_of
from ingest_api.audit.schemas import AuditEntry, Outcome
from ingest_api.shared import MAX_SKIP, READ_ERRORS, AppState, SettingsReader, State, replaying

log = logging.getLogger(__name__)

router = APIRouter(prefix="/audit", tags=["Audit Log"], responses=READ_ERRORS)


@router.get("", summary="Sign-ins and changes of configuration, users and tokens, newest first")
async def list_entries(
    state: State,
    _: SettingsReader,
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    actor: Annotated[str | None, Query(max_length=200, description="user:<name>, client:<id>")] = None,
    resource: Annotated[str | None, Query(max_length=200, description="a path prefix, e.g. /api/tenants")] = None,
    outcome: Outcome | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    async with state.pool.acquire() as conn:
        rows = await repository.entries(
            conn, skip=skip, limit=limit, actor=actor, resource=resource, outcome=outcome, since=since, until=until
        )
    return [entry_out(r) for r in rows]


def actor_of(state: AppState, authorization: str) -> str:
    """Who sent a request: the subject of its bearer token if the token is genuine, else anonymous."""
    kind, _, token = authorization.partition(" ")
    claims = read_token(token, state.jwt_key) if kind.lower() == "bearer" and token else None
    return f"{claims.kind}:{claims.sub}" if claims else "anonymous"


def address_of(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


async def record_signin(
    state: AppState, *, actor: str, address: str | None, outcome: Outcome, status: int, **facts: Any
) -> None:
    """A sign-in at /api/auth, successful or not (``facts``: the grant type, why it failed)."""
    async with state.pool.acquire() as conn:
        await repository.record(
            conn,
            actor=actor,
            address=address,
            action="sign-in",
            resource="/api/auth",
            target=actor.partition(":")[2] or None,
            outcome=outcome,
            status=status,
            details=facts,
        )


async def record_event(state: AppState, *, actor: str, action: str, resource: str, target: str | None) -> None:
    """A change made by no request (the bootstrap administrator, say)."""
    async with state.pool.acquire() as conn:
        await repository.record(
            conn,
            actor=actor,
            address=None,
            action=action,
            resource=resource,
            target=target,
            outcome="success",
            status=None,
            details={},
        )


class AuditTrail:
    """Records every audited change (see ``audit.domain.audited``) with its answer's status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not audited(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:  # the guard outside has bounded the body already
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)

        async def send_after_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._record(scope, body, int(message["status"]))
            await send(message)

        await self.app(scope, replaying(body, receive), send_after_recording)

    async def _record(self, scope: Scope, body: bytes, status: int) -> None:
        state: AppState | None = getattr(scope["app"].state, "cte", None)
        if state is None:
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        try:
            async with state.pool.acquire() as conn:
                await repository.record(
                    conn,
                    actor=actor_of(state, headers.get("authorization", "")),
                    address=address_of(scope),
                    action=scope["method"],
                    resource=path_template(scope["path"], scope.get("path_params", {})),
                    target=target_of(scope.get("path_params", {}), parsed),
                    outcome="success" if status < 400 else "failure",
                    status=status,
                    details=details(body, headers.get("content-type", ""), query),
                )
        except Exception:
            log.exception("an audited change was answered %d but its audit entry could not be written", status)
