"""What every route shares: the app state, bearer and scope dependencies, error answers and limits."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, NotRequired

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError
from aiokafka.structs import RecordMetadata
from fastapi import Depends, HTTPException, Path, Request, Security, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from faststream.kafka import KafkaBroker
from pydantic import ConfigDict, with_config
from starlette.types import Message, Receive
from typing_extensions import TypedDict

from cte_common.catalog_lock_repository import lock_catalog_for_change
from cte_common.crypto import SecretBox
from cte_common.db import Connection, Pool
from cte_common.events import CATALOG_RESOURCES, ConfigChange, encode
from cte_common.kafka import Outgoing, publish_all
from cte_common.query import QueryError, SqlParams, parse_json, to_sql
from cte_common.topics import Topics
from ingest_api.access.domain import Access, effective_scopes, read_token
from ingest_api.access.repository import get_client
from ingest_api.access.schemas import (
    ALL_SCOPES,
    INVALID_TOKEN,
    MISSING_SCOPE,
    PASSWORD_CHANGE_REQUIRED,
    Scope,
    TokenClaims,
)
from ingest_api.settings import Settings
from ingest_api.users.repository import user_access

log = logging.getLogger(__name__)


class AppState:
    """What every request needs; built once in the lifespan."""

    def __init__(self, settings: Settings, pool: Pool, broker: KafkaBroker, jwt_key: str) -> None:
        self.settings = settings
        self.pool = pool
        self.broker = broker
        self.topics = Topics(settings.topic_prefix)
        self.jwt_key = jwt_key
        self.secrets = SecretBox(settings.secrets_key.get_secret_value() if settings.secrets_key else None)
        # (kind, subject) -> (what its tokens may do, checked at): a revoked or expired client's tokens,
        # and a deactivated user's or a changed role's, take effect within CLIENT_CHECK_SECONDS without
        # a database query on every request.
        self._access: dict[tuple[str, str], tuple[Access | None, float]] = {}
        # Publishes that outlived their request's deadline, kept until they end (see ``publish``).
        self._late: set[asyncio.Future[list[RecordMetadata]]] = set()

    async def access(self, claims: TokenClaims) -> Access | None:
        """What the token's client or user may do now; None if it may do nothing (revoked, expired,
        deleted, deactivated)."""
        key = (claims.kind, claims.sub)
        cached = self._access.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[1] < CLIENT_CHECK_SECONDS:
            return cached[0]
        async with self.pool.acquire() as conn:
            found = await (
                self._user_access(conn, claims.sub) if claims.kind == "user" else self._client_access(conn, claims.sub)
            )
        # A user who must still change the password is not cached: the change may be made through
        # another API process, whose ``forget`` this one never hears of, and must take effect at once.
        if found is None or not found.password_change_required:
            self._access[key] = (found, now)
        return found

    @staticmethod
    async def _user_access(conn: Any, username: str) -> Access | None:
        user = await user_access(conn, username)
        if user is None or not user["active"]:
            return None
        return Access(
            frozenset(user["scopes"]),
            username,
            password_change_required=user["first_login"],
            valid_since=int(user["created_at"].timestamp()),
        )

    @staticmethod
    async def _client_access(conn: Any, client_id: str) -> Access | None:
        row = await get_client(conn, client_id)
        if row is None or row["revoked_at"] is not None:
            return None
        if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
            return None
        if row["owner"] is None:  # the bootstrap client, or a token made before users
            return Access(frozenset(row["scopes"]), None)
        # A token is worth no more than its user is today (the reference: "the same privilege level").
        owner = await user_access(conn, row["owner"])
        if owner is None or not owner["active"]:
            return None
        return Access(effective_scopes(row["scopes"], owner["scopes"]), row["owner"])

    def forget(self, kind: str, subject: str) -> None:
        """Drop what is known of a client or user, so its next request checks it again (after a change)."""
        self._access.pop((kind, subject), None)

    async def publish(self, topic: str, messages: Iterable[Outgoing]) -> list[RecordMetadata]:
        """Every message acknowledged by Kafka, or :class:`Unavailable` after ``publish_timeout_seconds``.

        A publish that timed out was not acknowledged, so the 503 is truthful, but it is not withdrawn:
        its records stay with the producer, which keeps sending them, and they may still land once the
        broker answers (logged when they do). A client that retries then sends a second sighting of the
        same values, which counts its hits again.
        """
        return await self.acknowledged(publish_all(self.broker, topic, messages))

    async def acknowledged(self, publishing: Awaitable[list[RecordMetadata]]) -> list[RecordMetadata]:
        """What ``publishing`` returns (every acknowledgement), or :class:`Unavailable` as ``publish``."""
        limit = self.settings.publish_timeout_seconds
        sending = asyncio.ensure_future(publishing)
        done, _ = await asyncio.wait({sending}, timeout=limit)
        if not done:
            self._late.add(sending)
            sending.add_done_callback(self._late_outcome)
            raise Unavailable("Kafka", f"no acknowledgement of the write within {limit:g} s")
        return sending.result()

    def _late_outcome(self, sending: asyncio.Future[list[RecordMetadata]]) -> None:
        self._late.discard(sending)
        if sending.cancelled():
            return
        error = sending.exception()
        if error is None:
            log.warning("a write answered 503 was acknowledged later: %d records landed", len(sending.result()))
        else:
            log.warning("a write answered 503 failed later: %r", error)

    async def publish_change(self, conn: Connection, resource: str, key: str, body: Mapping[str, Any] | None) -> None:
        """A configuration change on the compacted topic (body None: the resource was deleted), sent
        from within the transaction that made it, which commits after the change is announced.

        A change of the catalog first waits for the decisions in flight (the catalog lock, held until
        the caller's transaction ends), so none of them outlives it with the old catalog."""
        if resource in CATALOG_RESOURCES:
            await lock_catalog_for_change(conn)
        change = ConfigChange(resource=resource, key=key, body=jsonable(body) if body else None)
        await self.publish(
            self.topics.config_changes, [Outgoing(key=f"{resource}:{key}".encode(), value=encode(change))]
        )


CLIENT_CHECK_SECONDS = 5.0


class Unavailable(Exception):
    """A dependency cannot be reached: the request is answered 503 with Retry-After, naming it."""

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(f"{dependency} is unreachable: {reason}")
        self.dependency = dependency


# What an outage raises, by dependency; anything else is a bug and stays a 500. PostgreSQL: a connection
# refused, reset, timed out or closed mid-query (cte_common.db raises refused and timed-out attempts as
# asyncpg's connection failure), or a server shutting down or starting up, or a connection its server
# ended while it was idle: the server's last words (FATAL, terminating connection) arrive before the
# connection closes, and asyncpg, not expecting a message then, leaves the connection in an error state
# its next use raises as InternalClientError. Kafka: no connection to the broker, no metadata or
# acknowledgement within the client's timeouts, a node not ready.
OUTAGES: dict[str, tuple[type[Exception], ...]] = {
    "PostgreSQL": (
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
        asyncpg.CrashShutdownError,
        asyncpg.InternalClientError,
    ),
    "Kafka": (KafkaConnectionError, KafkaTimeoutError, RequestTimedOutError, NodeNotReadyError),
}
# asyncpg's InterfaceError texts for a connection closed under a request (the server went away between
# two of its statements, or before a transaction's commit or rollback: "cannot call
# Transaction.rollback(): the underlying connection is closed"): an outage, unlike every other
# InterfaceError.
CLOSED_CONNECTION = "connection is closed"
_CLOSED_UNDER_RESOURCE = "the underlying connection is closed"


def closed_connection(exc: BaseException) -> bool:
    """Whether asyncpg raised ``exc`` because the connection was closed under the request."""
    message = str(exc)
    return message == CLOSED_CONNECTION or message.endswith(_CLOSED_UNDER_RESOURCE)


# Seconds a client is asked to wait before it tries again: about a broker's or a database's restart.
RETRY_AFTER_SECONDS = 5


def unavailable_response(exc: Unavailable) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": str(exc)},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def jsonable(value: Any) -> Any:
    """Round-trip through JSON with ISO datetimes, for event bodies built from rows."""
    return json.loads(json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)))


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.cte
    return state


State = Annotated[AppState, Depends(app_state)]


# The security schemes of the OpenAPI document (Swagger UI's Authorize button): a bearer token, or a
# user's password through the OAuth2 password flow at /api/auth. Either is enough. They never refuse by
# themselves (auto_error=False): the scope check below answers, with the reference's texts.
bearer = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="An access token from POST /api/auth (OAuth2 client credentials or password, form-encoded). Each "
    "operation lists the scope it needs: cte_read or cte_write (indicators, tags, dashboards, configurations, "
    "rules, allow-list, sharing), settings_read or settings_write (tenants, users, roles, settings, audit), me "
    "(one's own profile and password), api (one's own API tokens).",
    auto_error=False,
)
oauth2 = OAuth2PasswordBearer(
    tokenUrl="/api/auth",
    scheme_name="oauth2",
    scopes={scope: scope for scope in ALL_SCOPES},
    description="A user's username and password (grant_type=password); no scope selected: all of the role's.",
    auto_error=False,
)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
PasswordFlowToken = Annotated[str | None, Depends(oauth2)]


def _require(scope: Scope) -> Any:
    async def check(state: State, credentials: Credentials, _: PasswordFlowToken) -> TokenClaims:
        claims = read_token(credentials.credentials, state.jwt_key) if credentials else None
        access = await state.access(claims) if claims else None
        if claims is not None and access is not None and access.valid_since is not None:
            access = access if (claims.iat or 0) >= access.valid_since else None
        if claims is None or access is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, INVALID_TOKEN, headers={"WWW-Authenticate": "Bearer"})
        if access.password_change_required and scope != "me":
            raise HTTPException(status.HTTP_403_FORBIDDEN, PASSWORD_CHANGE_REQUIRED)
        scopes = effective_scopes(claims.scopes, access.scopes)
        if scope not in scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, MISSING_SCOPE)
        return claims.model_copy(update={"scopes": [s for s in ALL_SCOPES if s in scopes], "owner": access.owner})

    # Security: the operation's security requirement in the document names the scope.
    return Security(check, scopes=[scope])


Reader = Annotated[TokenClaims, _require("cte_read")]
Writer = Annotated[TokenClaims, _require("cte_write")]
SettingsReader = Annotated[TokenClaims, _require("settings_read")]
SettingsWriter = Annotated[TokenClaims, _require("settings_write")]
Me = Annotated[TokenClaims, _require("me")]
ApiTokens = Annotated[TokenClaims, _require("api")]


# OFFSET and LIMIT are PostgreSQL bigints: a larger number is a 422, not a failed query.
MAX_SKIP = 2**63 - 1
# Ids are PostgreSQL bigints too: a larger one cannot exist.
RowId = Annotated[int, Path(ge=1, le=MAX_SKIP)]


# Answers are TypedDicts: a builder's dict is the answer (validated and documented through its type) and
# also the body of the configuration change it publishes.


@with_config(ConfigDict(extra="forbid"))
class Error(TypedDict):
    """Every error answer but a 422's list of problems."""

    detail: str


@with_config(ConfigDict(extra="forbid"))
class Problem(TypedDict):
    """One problem of a request: where, what, and for an item of a batch its index and field."""

    loc: list[str | int]
    msg: str
    type: str
    index: NotRequired[int]
    field: NotRequired[str | None]


@with_config(ConfigDict(extra="forbid"))
class Unprocessable(TypedDict):
    """A 422: what is wrong, or the list of every problem (every bad item of a batch)."""

    detail: str | list[Problem]


def error_answer(description: str, model: Any = Error, **extra: Any) -> dict[str, Any]:
    """An error answer as the OpenAPI document declares it (``extra``: its headers, say)."""
    return {"model": model, "description": description, **extra}


# The errors operations share, declared on each router (a route adds its own). A request's size and NUL
# characters are refused before any route runs.
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_answer("Bad request: a filter, a parameter or a NUL character"),
    401: error_answer("Missing, expired or invalid credentials"),
    403: error_answer("The token (or the client signing in) lacks the scope"),
    404: error_answer("Not found"),
    409: error_answer("Conflicts with what exists"),
    413: error_answer("Body too large, or too many items"),
    422: error_answer("Validation error: the problem, or every problem", Unprocessable),
    503: error_answer(
        "Kafka or PostgreSQL cannot be reached (the detail names which): nothing was done, or for a write "
        "nothing was acknowledged; try again after Retry-After seconds",
        headers={"Retry-After": {"schema": {"type": "integer"}, "required": True}},
    ),
}
READ_ERRORS = {code: answer for code, answer in _ERRORS.items() if code not in (409, 413)}
WRITE_ERRORS = dict(_ERRORS)


@with_config(ConfigDict(extra="forbid"))
class Empty(TypedDict):
    """The answer of a deletion: ``{}``."""


class ItemError(Exception):
    """Validation failures found after the body parsed (unknown source configuration, say)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors


def item_error_response(exc: ItemError) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": exc.errors})


def unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


def configuration_missing(field: str, name: str) -> HTTPException:
    return unprocessable(f"{field}: Configuration with name='{name}' does not exist.")


API_SOURCE_DESTINATION = "an API Source can only push; it cannot be a destination"


def destination_tenant(destination: dict[str, Any], field: str = "destinationConfiguration") -> str:
    """The tenant a destination configuration pushes to; only Netskope configurations are destinations."""
    if destination["plugin"] == "api_source":
        raise unprocessable(f"{field}: {API_SOURCE_DESTINATION}")
    if destination["plugin"] != "netskope" or not destination["tenant"]:
        raise unprocessable(f"{field}: '{destination['name']}' is not a Netskope configuration with a tenant")
    return str(destination["tenant"])


def filter_where(filters: str | dict[str, Any]) -> tuple[str, list[Any]]:
    """The filter language to a parameterised WHERE clause; values never enter the SQL text. sharedWith
    and the list-status tags are read from the lists' state, as the answers show them."""
    try:
        node = parse_json(filters if isinstance(filters, dict) or filters.strip() else "{}")
    except QueryError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Invalid query provided. {exc.message}") from None
    params = SqlParams(start=1)
    return to_sql(node, params, list_status=True), params.values


def utc(value: datetime | None) -> datetime | None:
    # The reference stores naive UTC; a naive time from a client is read as UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def replaying(body: bytes, receive: Receive) -> Receive:
    """An ASGI ``receive`` that hands over ``body`` (already read by a middleware) once, then defers to
    ``receive`` (a disconnect, say)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
