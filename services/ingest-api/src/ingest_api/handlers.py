"""HTTP routes of the CE-compatible API (``/api/auth``, ``/api/cte/...``).

Writes to indicators are events: a POST answers 2xx only after Kafka acknowledged every event
(idempotent producer, acks=all), so what was accepted is durable. The read model catches up within
milliseconds; ``wait=true`` answers once it shows the write.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker

from cte_common.db import Connection, Pool
from cte_common.events import ConfigChange, encode
from cte_common.kafka import Outgoing, publish_all
from cte_common.query import QueryError, SqlParams, parse_json, to_sql
from cte_common.topics import Topics
from ingest_api import repository
from ingest_api.domain import (
    GRANT_NOT_SUPPORTED,
    INVALID_CLIENT,
    INVALID_TOKEN,
    MISSING_SCOPE,
    ConfigurationIn,
    TokenClaims,
    build_sighting,
    claimed_sources,
    configuration_out,
    granted_scopes,
    indicator_out,
    issue_token,
    read_token,
    sighting_out,
    sort_clause,
    validate_batch,
    verify_secret,
)
from ingest_api.metrics import INDICATORS_ACCEPTED, INDICATORS_REJECTED
from ingest_api.settings import Settings


class AppState:
    """What every request needs; built once in the lifespan."""

    def __init__(self, settings: Settings, pool: Pool, broker: KafkaBroker, jwt_key: str) -> None:
        self.settings = settings
        self.pool = pool
        self.broker = broker
        self.topics = Topics(settings.topic_prefix)
        self.jwt_key = jwt_key


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.cte
    return state


State = Annotated[AppState, Depends(app_state)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _require(scope: str) -> Any:
    def check(request: Request, state: State) -> TokenClaims:
        token = _bearer(request)
        claims = read_token(token, state.jwt_key) if token else None
        if claims is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, INVALID_TOKEN, headers={"WWW-Authenticate": "Bearer"}
            )
        if scope not in claims.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, MISSING_SCOPE)
        return claims

    return check


Reader = Annotated[TokenClaims, Depends(_require("cte_read"))]
Writer = Annotated[TokenClaims, Depends(_require("cte_write"))]


class ItemError(Exception):
    """Validation failures found after the body parsed (unknown source configuration, say)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors


auth_router = APIRouter(tags=["Authentication"])
indicators_router = APIRouter(prefix="/cte/indicators", tags=["Indicators"])
configurations_router = APIRouter(prefix="/cte/configurations", tags=["Configurations"])


@auth_router.post("/auth", summary="Get an access token (OAuth2 client credentials)")
async def authenticate(
    state: State,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str, Form()] = "",
    client_secret: Annotated[str, Form()] = "",
    scope: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    if grant_type != "client_credentials":
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, GRANT_NOT_SUPPORTED)
    async with state.pool.acquire() as conn:
        client = await repository.get_client(conn, client_id)
    now = datetime.now(UTC)
    if (
        client is None
        or client["revoked_at"] is not None
        or (client["expires_at"] is not None and client["expires_at"] <= now)
        # argon2 is deliberately slow: check in a thread so the event loop keeps serving.
        or not await asyncio.to_thread(verify_secret, client["secret_hash"], client_secret)
    ):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, INVALID_CLIENT)
    scopes = granted_scopes(scope, list(client["scopes"]))
    if scopes is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Unauthorized")
    ttl = timedelta(minutes=state.settings.token_ttl_minutes)
    return {
        "access_token": issue_token(client_id, scopes, state.jwt_key, ttl, now),
        "token_type": "bearer",
        "scopes": scopes,
        "firstLogin": False,
        "fromSSO": False,
        "passwordPolicyViolation": False,
    }


@configurations_router.post("", status_code=status.HTTP_201_CREATED, summary="Create a plugin configuration")
async def create_configuration(state: State, cfg: ConfigurationIn, _: Writer) -> dict[str, Any]:
    async with state.pool.acquire() as conn, conn.transaction():
        row = await repository.insert_configuration(conn, cfg)
        if row is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"Configuration with name='{cfg.name}' already exists."
            )
        out = configuration_out(row)
        # Published inside the transaction: if Kafka refuses, the insert rolls back with it.
        change = ConfigChange(resource="configuration", key=cfg.name, body=repository.jsonable(out))
        await publish_all(
            state.broker,
            state.topics.config_changes,
            [Outgoing(key=f"configuration:{cfg.name}".encode(), value=encode(change))],
        )
    return out


@configurations_router.get("", summary="List plugin configurations")
async def list_configurations(state: State, _: Reader) -> list[dict[str, Any]]:
    async with state.pool.acquire() as conn:
        return [configuration_out(r) for r in await repository.list_configurations(conn)]


@configurations_router.get("/{name}", summary="Get one plugin configuration")
async def get_configuration(state: State, name: str, _: Reader) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        row = await repository.get_configuration(conn, name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Configuration with name='{name}' does not exist.")
    return configuration_out(row)


@indicators_router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    summary="Insert/update multiple indicators",
    description="The whole batch is validated first; if any item is invalid nothing is written and the 422 "
    "lists every bad item with its index, field and reason.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/IndicatorIn"}}
                }
            },
        }
    },
    responses={422: {"description": "Invalid items: every one is listed"}},
)
async def post_indicators(
    state: State,
    _: Writer,
    raw: Annotated[list[Any], Body(include_in_schema=False)],
    wait: Annotated[bool, Query(description="Answer once the read model shows the write.")] = False,
) -> Any:
    if len(raw) > state.settings.max_batch_items:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"body: at most {state.settings.max_batch_items} indicators per request, got {len(raw)}",
        )
    now = datetime.now(UTC)
    async with state.pool.acquire() as conn:
        configs = await repository.source_configurations(conn, claimed_sources(raw))
        items, errors = validate_batch(raw, set(configs))
        if errors:
            INDICATORS_REJECTED.labels("invalid").inc(len({e["index"] for e in errors}))
            raise ItemError(errors)
        criterion = await repository.criterion(conn)
        await repository.ensure_tags(conn, sorted({t for i in items for t in i.tags}))
    sightings = [build_sighting(i, configs[i.source], criterion, now) for i in items]  # type: ignore[arg-type]
    acks = await publish_all(
        state.broker,
        state.topics.indicator_events,
        (Outgoing(key=s.value.encode(), value=encode(s)) for s in sightings),
    )
    for s in sightings:
        INDICATORS_ACCEPTED.labels(s.type.value).inc()
    if wait:
        await _wait_for_read_model(state, [(a.topic, a.partition, a.offset) for a in acks])
        async with state.pool.acquire() as conn:
            values = list(dict.fromkeys(s.value for s in sightings))
            return await _indicators_by_value(conn, values)
    return [sighting_out(s) for s in sightings]


async def _wait_for_read_model(state: AppState, marks: list[tuple[str, int, int]]) -> None:
    deadline = time.monotonic() + state.settings.wait_timeout_seconds
    delay = 0.005
    while True:
        async with state.pool.acquire() as conn:
            if await repository.positions_reached(conn, state.settings.read_model_consumer, marks):
                return
        if time.monotonic() >= deadline:
            # Accepted and durable, but not yet visible: say so rather than pretend.
            raise HTTPException(
                status.HTTP_504_GATEWAY_TIMEOUT,
                "Accepted, but the read model did not show the write within "
                f"{state.settings.wait_timeout_seconds:g} s; it will appear when the rule-engine catches up.",
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


async def _indicators_by_value(conn: Connection, values: list[str]) -> list[dict[str, Any]]:
    rows = await repository.list_indicators(
        conn,
        where="i.value = ANY($1::text[])",
        params=[values],
        order_by="ORDER BY i.value",
        skip=0,
        limit=len(values),
    )
    sources = await repository.sources_of(conn, [r["value"] for r in rows])
    return [indicator_out(r, sources.get(r["value"], [])) for r in rows]


@indicators_router.get("/", summary="List the indicators")
async def get_indicators(
    state: State,
    _: Reader,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 10,
    sort: str | None = None,
    ascending: bool = True,
    aggregate: bool = False,
    filters: str = "{}",
) -> Any:
    if limit > 100:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Limit cannot be greater than 100.")
    where, params = _where(filters)
    async with state.pool.acquire() as conn:
        if aggregate:
            return {"count": await repository.count_indicators(conn, where=where, params=params)}
        rows = await repository.list_indicators(
            conn, where=where, params=params, order_by=sort_clause(sort, ascending), skip=skip, limit=limit
        )
        sources = await repository.sources_of(conn, [r["value"] for r in rows])
    return [indicator_out(r, sources.get(r["value"], [])) for r in rows]


def _where(filters: str) -> tuple[str, list[Any]]:
    """The filter language to a parameterised WHERE clause; values never enter the SQL text."""
    try:
        node = parse_json(filters if filters.strip() else "{}")
    except QueryError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Invalid query provided. {exc.message}") from None
    params = SqlParams(start=1)
    return to_sql(node, params), params.values


def item_error_response(exc: ItemError) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_ENTITY, content={"detail": exc.errors})
