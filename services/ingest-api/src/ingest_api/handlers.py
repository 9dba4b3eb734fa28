"""HTTP routes of the CE-compatible API (``/api/auth``, ``/api/cte/...``).

Writes to indicators are events: a POST answers 2xx only after Kafka acknowledged every event
(idempotent producer, acks=all), so what was accepted is durable. The read model catches up within
milliseconds; ``wait=true`` answers once it shows the write.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, Depends, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from cte_common.crypto import SecretBox
from cte_common.db import Connection, Pool
from cte_common.events import (
    AnyIndicatorEvent,
    ConfigChange,
    IndicatorDelete,
    IndicatorRetraction,
    IndicatorTagEdit,
    encode,
)
from cte_common.kafka import Outgoing, publish_all
from cte_common.query import QueryError, SqlParams, parse_json, to_sql
from cte_common.sharing import (
    Action,
    AllowList,
    Candidate,
    Evaluator,
    FileTarget,
    SharingDef,
    UrlTarget,
    list_key,
)
from cte_common.topics import Topics
from ingest_api import repository
from ingest_api.domain import (
    ACCOUNT_LOCKED,
    API_SOURCE_DESTINATION,
    CONFIG_COLUMNS,
    DEFAULT_RULE,
    GRANT_NOT_SUPPORTED,
    INVALID_CLIENT,
    INVALID_TOKEN,
    LOCK_MINUTES,
    MAX_FAILED_SIGNINS,
    MISSING_SCOPE,
    AllowEntryIn,
    BulkDeleteIn,
    BulkEditIn,
    ClientRef,
    ConfigurationIn,
    ConfigurationPatch,
    CteSettingsPatch,
    DryRun,
    ExceptionIn,
    FiltersIn,
    IndicatorIn,
    QueryLocator,
    RetractionIn,
    RuleIn,
    RuleName,
    RulePatch,
    RuleTestTally,
    SharingIn,
    SharingPatch,
    TagIn,
    TagName,
    TenantIn,
    TenantPatch,
    TokenClaims,
    TokenCreate,
    ValuesLocator,
    ad_hoc_sharing,
    allow_entry_out,
    allow_pattern,
    applied_on,
    build_sighting,
    check_parameters,
    claimed_sources,
    configuration_out,
    cte_settings_out,
    dashboard_ids,
    dashboard_query,
    exception_tags,
    granted_scopes,
    hash_secret,
    indicator_out,
    issue_token,
    mute_problem,
    read_token,
    reevaluation_out,
    rule_columns,
    rule_def,
    rule_muted,
    rule_out,
    rule_test_action,
    rule_test_source,
    rule_uses_tag,
    sharing_def,
    sharing_out,
    sighting_out,
    sort_clause,
    stored_exceptions,
    target_problems,
    tenant_base_url,
    tenant_out,
    token_out,
    validate_batch,
    value_candidates,
    verify_secret,
)
from ingest_api.metrics import INDICATORS_ACCEPTED, INDICATORS_REJECTED, SIGNIN_FAILURES
from ingest_api.settings import Settings


class AppState:
    """What every request needs; built once in the lifespan."""

    def __init__(self, settings: Settings, pool: Pool, broker: KafkaBroker, jwt_key: str) -> None:
        self.settings = settings
        self.pool = pool
        self.broker = broker
        self.topics = Topics(settings.topic_prefix)
        self.jwt_key = jwt_key
        self.secrets = SecretBox(settings.secrets_key.get_secret_value() if settings.secrets_key else None)
        # client id -> (usable, checked at): a revoked or expired client's tokens stop working within
        # CLIENT_CHECK_SECONDS without a database query on every request.
        self._client_checks: dict[str, tuple[bool, float]] = {}

    async def client_usable(self, client_id: str) -> bool:
        cached = self._client_checks.get(client_id)
        now = time.monotonic()
        if cached is not None and now - cached[1] < CLIENT_CHECK_SECONDS:
            return cached[0]
        async with self.pool.acquire() as conn:
            row = await repository.get_client(conn, client_id)
        usable = (
            row is not None
            and row["revoked_at"] is None
            and (row["expires_at"] is None or row["expires_at"] > datetime.now(UTC))
        )
        self._client_checks[client_id] = (usable, now)
        return usable

    async def publish_change(self, resource: str, key: str, body: dict[str, Any] | None) -> None:
        """A configuration change on the compacted topic (body None: the resource was deleted)."""
        change = ConfigChange(resource=resource, key=key, body=repository.jsonable(body) if body else None)
        await publish_all(
            self.broker, self.topics.config_changes, [Outgoing(key=f"{resource}:{key}".encode(), value=encode(change))]
        )


CLIENT_CHECK_SECONDS = 5.0


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.cte
    return state


State = Annotated[AppState, Depends(app_state)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _require(scope: str) -> Any:
    async def check(request: Request, state: State) -> TokenClaims:
        token = _bearer(request)
        claims = read_token(token, state.jwt_key) if token else None
        if claims is None or not await state.client_usable(claims.sub):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, INVALID_TOKEN, headers={"WWW-Authenticate": "Bearer"})
        if scope not in claims.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, MISSING_SCOPE)
        return claims

    return check


Reader = Annotated[TokenClaims, Depends(_require("cte_read"))]
Writer = Annotated[TokenClaims, Depends(_require("cte_write"))]
SettingsReader = Annotated[TokenClaims, Depends(_require("settings_read"))]
SettingsWriter = Annotated[TokenClaims, Depends(_require("settings_write"))]

# OFFSET and LIMIT are PostgreSQL bigints: a larger number is a 422, not a failed query.
MAX_SKIP = 2**63 - 1
# Ids are PostgreSQL bigints too: a larger one cannot exist.
RowId = Annotated[int, Path(ge=1, le=MAX_SKIP)]


class ItemError(Exception):
    """Validation failures found after the body parsed (unknown source configuration, say)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors


auth_router = APIRouter(tags=["Authentication"])
indicators_router = APIRouter(prefix="/cte/indicators", tags=["Indicators"])
configurations_router = APIRouter(prefix="/cte/configurations", tags=["Configurations"])
tags_router = APIRouter(prefix="/cte/tags", tags=["Tags"])
dashboards_router = APIRouter(tags=["Dashboards"])
tenants_router = APIRouter(prefix="/tenants", tags=["Netskope Tenants"])
tokens_router = APIRouter(prefix="/users/tokens", tags=["API Tokens"])
settings_router = APIRouter(prefix="/settings", tags=["Settings"])
rules_router = APIRouter(prefix="/cte/business_rules", tags=["Business Rules"])
allow_list_router = APIRouter(prefix="/cte/allow_list", tags=["Allow-list"])
sharing_router = APIRouter(prefix="/cte/sharing", tags=["Sharing"])
reevaluations_router = APIRouter(prefix="/cte/reevaluations", tags=["Business Rules"])


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


@configurations_router.post("", status_code=status.HTTP_201_CREATED, summary="Create a plugin configuration")
async def create_configuration(state: State, cfg: ConfigurationIn, _: Writer) -> dict[str, Any]:
    cfg.parameters = _parameters(cfg.plugin, cfg.parameters)
    async with state.pool.acquire() as conn, conn.transaction():
        if cfg.tenant is not None and not await repository.tenant_exists(conn, cfg.tenant):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"tenant: no tenant named '{cfg.tenant}'")
        row = await repository.insert_configuration(conn, cfg)
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"Configuration with name='{cfg.name}' already exists.")
        out = configuration_out(row)
        # Published inside the transaction: if Kafka refuses, the insert rolls back with it.
        await state.publish_change("configuration", cfg.name, out)
    return out


def _parameters(plugin: str, parameters: dict[str, Any]) -> dict[str, Any]:
    try:
        return check_parameters(plugin, parameters)
    except ValidationError as exc:
        detail = [item_error_detail(["body", "parameters", *map(str, e["loc"])], str(e["msg"])) for e in exc.errors()]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"parameters: {exc}") from None


def item_error_detail(loc: list[Any], msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": "value_error"}


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
                "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/IndicatorIn"}}}
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
    for kind, n in Counter(s.type.value for s in sightings).items():
        INDICATORS_ACCEPTED.labels(kind).inc(n)
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
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_SKIP)] = 10,
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


def _where(filters: str | dict[str, Any]) -> tuple[str, list[Any]]:
    """The filter language to a parameterised WHERE clause; values never enter the SQL text."""
    try:
        node = parse_json(filters if isinstance(filters, dict) or filters.strip() else "{}")
    except QueryError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Invalid query provided. {exc.message}") from None
    params = SqlParams(start=1)
    return to_sql(node, params), params.values


def item_error_response(exc: ItemError) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_ENTITY, content={"detail": exc.errors})


async def _publish_indicator_events(state: AppState, events: list[AnyIndicatorEvent]) -> list[tuple[str, int, int]]:
    """Publish indicator events keyed by value; the (topic, partition, offset) of each, for ?wait."""
    acks = await publish_all(
        state.broker, state.topics.indicator_events, (Outgoing(key=e.value.encode(), value=encode(e)) for e in events)
    )
    return [(a.topic, a.partition, a.offset) for a in acks]


async def _find_value(conn: Connection, value: str, source: str | None = None) -> str | None:
    """The stored value a client means: as given, or its canonical form for some type."""
    found = await repository.existing_values(conn, value_candidates(value), source)
    return found[0] if found else None


@configurations_router.patch("/{name}", summary="Update a plugin configuration")
async def update_configuration(state: State, name: str, patch: ConfigurationPatch, _: Writer) -> dict[str, Any]:
    changes = patch.model_dump(exclude_unset=True, mode="json")
    async with state.pool.acquire() as conn, conn.transaction():
        current = await repository.get_configuration(conn, name)
        if current is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Configuration with name='{name}' does not exist.")
        if "parameters" in changes:
            changes["parameters"] = _parameters(current["plugin"], changes["parameters"] or {})
        if changes.get("tenant") is not None and not await repository.tenant_exists(conn, changes["tenant"]):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"tenant: no tenant named '{changes['tenant']}'")
        if "tenant" in changes and changes["tenant"] != current["tenant"] and await repository.sharings_to(conn, name):
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"tenant: configuration '{name}' is the destination of sharings; delete them before moving it",
            )
        if current["plugin"] == "netskope" and "tenant" in changes and changes["tenant"] is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "tenant: a netskope configuration needs a tenant")
        row = current
        if changes:
            row = (
                await repository.update_configuration(conn, name, {CONFIG_COLUMNS[k]: v for k, v in changes.items()})
                or current
            )
        out = configuration_out(row)
        await state.publish_change("configuration", name, out)
    return out


@configurations_router.delete("/{name}", summary="Delete a plugin configuration")
async def delete_configuration(
    state: State,
    name: str,
    _: Writer,
    keepData: Annotated[
        bool, Query(description="false: remove this source from every indicator, and indicators left without one")
    ] = True,
) -> dict[str, Any]:
    removed = 0
    async with state.pool.acquire() as conn, conn.transaction():
        if await repository.get_configuration(conn, name) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Configuration with name='{name}' does not exist.")
        if not keepData:
            # The read model has one writer: the removal travels as events, before the row goes.
            async for chunk in repository.values_with_source(conn, name):
                await _publish_indicator_events(state, [IndicatorDelete(value=v, source=name) for v in chunk])
                removed += len(chunk)
        await repository.delete_configuration(conn, name)
        await state.publish_change("configuration", name, None)
    return {"deleted": name, "indicatorsRemoved": removed}


@indicators_router.patch(
    "/",
    status_code=status.HTTP_201_CREATED,
    summary="Update a single indicator",
    description="Either an indicator (merged like a POST: to change its reputation, say) or a retraction "
    "`{value, source, retracted}`.",
)
async def patch_indicator(
    state: State,
    _: Writer,
    body: Annotated[IndicatorIn | RetractionIn, Body()],
    wait: Annotated[bool, Query(description="Answer once the read model shows the write.")] = False,
) -> Any:
    now = datetime.now(UTC)
    async with state.pool.acquire() as conn:
        if isinstance(body, RetractionIn):
            stored = await _find_value(conn, body.value, body.source)
            if stored is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND,
                    f"Indicator with value='{body.value}' and source='{body.source}' does not exist.",
                )
            marks = await _publish_indicator_events(
                state, [IndicatorRetraction(value=stored, source=body.source, retracted=body.retracted)]
            )
            if wait:
                await _wait_for_read_model(state, marks)
            return True
        if await _find_value(conn, body.value) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Indicator with value='{body.value}' does not exist.")
        configs = await repository.source_configurations(conn, [body.source])
        if body.source not in configs:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Configuration with name='{body.source}' does not exist.")
        criterion = await repository.criterion(conn)
        await repository.ensure_tags(conn, body.tags)
    sighting = build_sighting(body, configs[body.source], criterion, now)  # type: ignore[arg-type]
    marks = await _publish_indicator_events(state, [sighting])
    INDICATORS_ACCEPTED.labels(sighting.type.value).inc()
    if wait:
        await _wait_for_read_model(state, marks)
        async with state.pool.acquire() as conn:
            return (await _indicators_by_value(conn, [sighting.value]))[0]
    return sighting_out(sighting)


@indicators_router.patch("/bulk", status_code=status.HTTP_201_CREATED, summary="Bulk update indicators (tags)")
async def bulk_edit(
    state: State,
    _: Writer,
    edit: BulkEditIn,
    wait: Annotated[bool, Query(description="Answer once the read model shows the write.")] = False,
) -> dict[str, int]:
    tags = edit.tags
    marks: list[tuple[str, int, int]] = []
    updated = 0
    async with state.pool.acquire() as conn, conn.transaction():
        missing = await repository.missing_tags(conn, [*tags.add, *tags.remove])
        if missing:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"Tag '{missing[0]}' does not exist.")
        source = edit.locator.source if isinstance(edit.locator, ValuesLocator) else None
        async for chunk in _locate(
            conn,
            edit.locator.query if isinstance(edit.locator, QueryLocator) else None,
            edit.locator.values if isinstance(edit.locator, ValuesLocator) else None,
            source,
        ):
            events: list[AnyIndicatorEvent] = [
                IndicatorTagEdit(value=v, source=source, add=tags.add, remove=tags.remove) for v in chunk
            ]
            marks += await _publish_indicator_events(state, events)
            updated += len(chunk)
    if wait:
        await _wait_for_read_model(state, marks)
    return {"updated": updated}


@indicators_router.delete("/bulk", status_code=status.HTTP_201_CREATED, summary="Bulk delete indicators")
async def bulk_delete(
    state: State,
    _: Writer,
    body: BulkDeleteIn,
    wait: Annotated[bool, Query(description="Answer once the read model shows the write.")] = False,
) -> dict[str, int]:
    marks: list[tuple[str, int, int]] = []
    deleted = 0
    async with state.pool.acquire() as conn, conn.transaction():
        async for chunk in _locate(conn, body.query, body.values, None):
            marks += await _publish_indicator_events(state, [IndicatorDelete(value=v) for v in chunk])
            deleted += len(chunk)
    if wait:
        await _wait_for_read_model(state, marks)
    return {"deleted": deleted}


async def _locate(
    conn: Connection, query: str | dict[str, Any] | None, values: list[str] | None, source: str | None
) -> AsyncIterator[list[str]]:
    """Stored values a locator names, in chunks: by filter query, or by values (as given or canonical)."""
    if query is not None:
        where, params = _where(query)
        async for chunk in repository.stream_values(conn, where=where, params=params):
            yield chunk
        return
    assert values is not None
    candidates = [c for v in values for c in value_candidates(v)]
    for start in range(0, len(candidates), 10_000):
        found = await repository.existing_values(conn, candidates[start : start + 10_000], source)
        if found:
            yield found


# Tags


@tags_router.get("", summary="Get configured tags")
async def list_tags(state: State, _: Reader, filters: str = "{}") -> list[dict[str, Any]]:
    where, params = _where(filters)
    async with state.pool.acquire() as conn:
        rows, total = await repository.tags_with_usage(conn, where=where, params=params)
    return [{"name": r["name"], "color": r["color"], "appliedOn": applied_on(r["count"], total)} for r in rows]


@tags_router.post("", summary="Create a tag")
async def create_tag(state: State, tag: TagIn, _: Writer) -> dict[str, Any]:
    async with state.pool.acquire() as conn, conn.transaction():
        if not await repository.insert_tag(conn, tag.name, tag.color):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"Tag '{tag.name}' already exists.")
        await state.publish_change("tag", tag.name, tag.model_dump())
    return {}


@tags_router.delete("", summary="Delete a tag (from every indicator too)")
async def delete_tag(state: State, tag: Annotated[TagName, Body()], _: Writer) -> dict[str, Any]:
    async with state.pool.acquire() as conn, conn.transaction():
        if not await repository.delete_tag(conn, tag.name):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"Tag '{tag.name}' does not exist.")
        # Checked after the delete, which waits for a rule being created with this tag (it locks the
        # tag) and then sees it; refusing rolls the delete back.
        if any(rule_uses_tag(r, tag.name) for r in await repository.list_rules(conn)):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{tag.name} is in use by one of the CTE business rules.")
        async for chunk in repository.values_with_tag(conn, tag.name):
            await _publish_indicator_events(state, [IndicatorTagEdit(value=v, remove=[tag.name]) for v in chunk])
        await state.publish_change("tag", tag.name, None)
    return {}


# Dashboards


@dashboards_router.get("/cte/dashboards/", summary="Get aggregated results from indicators")
async def dashboards(
    state: State,
    _: Reader,
    group_by: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI reads the default, never mutates it)
    count_by: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    ascending: bool = False,
    filters: str = "{}",
) -> list[dict[str, Any]]:
    where, params = _where(filters)
    try:
        sql = dashboard_query(group_by, count_by, where, f"${len(params) + 1}")
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    sql = sql.replace("{direction}", "ASC" if ascending else "DESC")
    async with state.pool.acquire() as conn:
        rows = await repository.run_dashboard(conn, sql, [*params, limit])
    keys = dashboard_ids(group_by)
    return [{"_id": {k: row[f"k{n}"] for n, k in enumerate(keys)}, "count": row["count"]} for row in rows]


@dashboards_router.get("/cte/dashboard/pull", summary="Indicators per type and source, retracted or not")
async def dashboard_pull(state: State, _: Reader) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        rows = await repository.pull_counts(conn)
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out.setdefault(r["type"], {})[r["source"]] = {
            "retractedCount": r["retracted"],
            "unretractedCount": r["unretracted"],
            "allCount": r["total"],
        }
    return out


# Netskope tenants (Settings > Netskope Tenant)


@tenants_router.post("", status_code=status.HTTP_201_CREATED, summary="Add a Netskope tenant")
async def create_tenant(state: State, tenant: TenantIn, _: SettingsWriter) -> dict[str, Any]:
    values = {
        "name": tenant.name,
        "tenant_name": tenant.tenantName,
        "base_url": tenant_base_url(tenant.tenantName),
        "v1_token_encrypted": _encrypt(state, tenant.v1Token),
        "v2_token_encrypted": _encrypt(state, tenant.v2Token),
        "initial_range_days": tenant.initialRangeDays,
        "use_proxy": tenant.useSystemProxy,
    }
    async with state.pool.acquire() as conn, conn.transaction():
        row = await repository.insert_tenant(conn, values)
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"Tenant with name='{tenant.name}' already exists.")
        out = tenant_out(row)
        await state.publish_change("tenant", tenant.name, out)
    return out


@tenants_router.get("", summary="List Netskope tenants")
async def list_tenants(state: State, _: SettingsReader) -> list[dict[str, Any]]:
    async with state.pool.acquire() as conn:
        return [tenant_out(r) for r in await repository.list_tenants(conn)]


@tenants_router.get("/{name}", summary="Get a Netskope tenant")
async def get_tenant(state: State, name: str, _: SettingsReader) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        row = await repository.get_tenant(conn, name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Tenant with name='{name}' does not exist.")
    return tenant_out(row)


@tenants_router.patch("/{name}", summary="Update a Netskope tenant")
async def update_tenant(state: State, name: str, patch: TenantPatch, _: SettingsWriter) -> dict[str, Any]:
    changes = patch.model_dump(exclude_unset=True)
    columns: dict[str, Any] = {}
    if changes.get("tenantName") is not None:
        columns["tenant_name"] = changes["tenantName"]
        columns["base_url"] = tenant_base_url(changes["tenantName"])
    for field, column in (("v1Token", "v1_token_encrypted"), ("v2Token", "v2_token_encrypted")):
        if field in changes:
            columns[column] = _encrypt(state, changes[field])
    if changes.get("initialRangeDays") is not None:
        columns["initial_range_days"] = changes["initialRangeDays"]
    if changes.get("useSystemProxy") is not None:
        columns["use_proxy"] = changes["useSystemProxy"]
    async with state.pool.acquire() as conn, conn.transaction():
        row = await (repository.update_tenant(conn, name, columns) if columns else repository.get_tenant(conn, name))
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Tenant with name='{name}' does not exist.")
        out = tenant_out(row)
        await state.publish_change("tenant", name, out)
    return out


@tenants_router.delete("/{name}", summary="Delete a Netskope tenant")
async def delete_tenant(state: State, name: str, _: SettingsWriter) -> dict[str, Any]:
    async with state.pool.acquire() as conn, conn.transaction():
        users = await repository.configurations_of_tenant(conn, name)
        if users:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"Tenant '{name}' is used by configurations: {', '.join(users)}."
            )
        if not await repository.delete_tenant(conn, name):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Tenant with name='{name}' does not exist.")
        await state.publish_change("tenant", name, None)
    return {}


def _encrypt(state: AppState, token: str | None) -> str | None:
    if token is None:
        return None
    if not state.secrets.available:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "Tenant tokens cannot be stored: CTE_SECRETS_KEY is not set."
        )
    return state.secrets.encrypt(token)


# API tokens (Settings > Users > API Tokens)


@tokens_router.post("", status_code=status.HTTP_201_CREATED, summary="Create API token credentials")
async def create_token(
    state: State,
    claims: SettingsWriter,
    body: Annotated[TokenCreate | None, Body()] = None,
    description: Annotated[str | None, Query(max_length=500)] = None,
    expire_after: Annotated[int | None, Query(description="minutes; negative or absent: never expires")] = None,
) -> dict[str, Any]:
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
async def list_tokens(state: State, _: SettingsReader) -> list[dict[str, Any]]:
    async with state.pool.acquire() as conn:
        return [token_out(r) for r in await repository.list_clients(conn)]


@tokens_router.delete("", summary="Revoke API token credentials")
async def revoke_token(state: State, ref: Annotated[ClientRef, Body()], _: SettingsWriter) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        if not await repository.revoke_client(conn, ref.client_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No active token with client_id='{ref.client_id}'.")
    state._client_checks.pop(ref.client_id, None)
    return {}


# Settings > Threat Exchange


@settings_router.get("/cte", summary="Threat Exchange settings (the merge criterion, ...)")
async def get_cte_settings(state: State, _: SettingsReader) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        return cte_settings_out(await repository.get_cte_settings(conn))


@settings_router.patch("/cte", summary="Change the Threat Exchange settings")
async def update_cte_settings(state: State, patch: CteSettingsPatch, _: SettingsWriter) -> dict[str, Any]:
    async with state.pool.acquire() as conn, conn.transaction():
        out = cte_settings_out(
            await repository.update_cte_settings(conn, patch.criterion, patch.deleteInactiveIndicators)
        )
        await state.publish_change("settings", "cte", out)
    return out


# Business rules (Threat Exchange > Business Rules)


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, message)


def _rule_columns(filters: FiltersIn) -> dict[str, Any]:
    try:
        return rule_columns(filters)
    except QueryError as exc:
        raise _unprocessable(exc.message) from None


def _stored_exceptions(exceptions: list[ExceptionIn]) -> list[dict[str, Any]]:
    try:
        return stored_exceptions(exceptions)
    except QueryError as exc:
        raise _unprocessable(exc.message) from None


async def _check_exception_tags(conn: Connection, exceptions: list[dict[str, Any]]) -> None:
    """Exception tags must exist; they stay locked until the transaction ends, so a concurrent tag
    deletion waits and then sees the rule that uses the tag."""
    wanted = exception_tags(exceptions)
    found = set(await repository.lock_tags(conn, wanted))
    missing = [t for t in wanted if t not in found]
    if missing:
        raise _unprocessable(f"Tag '{missing[0]}' does not exist.")


def _rule_not_found(name: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"Business rule with name='{name}' does not exist.")


@rules_router.post("", status_code=status.HTTP_201_CREATED, summary="Create a business rule")
async def create_rule(state: State, rule: RuleIn, _: Writer) -> dict[str, Any]:
    columns = {**_rule_columns(rule.filters), "exceptions": _stored_exceptions(rule.exceptions)}
    async with state.pool.acquire() as conn, conn.transaction():
        await _check_exception_tags(conn, columns["exceptions"])
        row = await repository.insert_rule(conn, rule.name, columns)
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"Business rule with name='{rule.name}' already exists.")
        out = rule_out(row, datetime.now(UTC))
        await state.publish_change("business_rule", rule.name, out)
    return out


@rules_router.get("", summary="List the business rules")
async def list_rules(state: State, _: Reader) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    async with state.pool.acquire() as conn:
        return [rule_out(r, now) for r in await repository.list_rules(conn)]


@rules_router.get("/{name}", summary="Get one business rule")
async def get_rule(state: State, name: str, _: Reader) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        row = await repository.get_rule(conn, name)
    if row is None:
        raise _rule_not_found(name)
    return rule_out(row, datetime.now(UTC))


@rules_router.patch(
    "/{name}",
    summary="Update a business rule (filters, exceptions, mute)",
    description="A given field replaces the stored one whole. Muting needs `unmuteAt` in the future; "
    "`muted: false` unmutes.",
)
async def update_rule(state: State, name: str, patch: RulePatch, _: Writer) -> dict[str, Any]:
    given = patch.model_fields_set
    columns: dict[str, Any] = {}
    if "filters" in given:
        if patch.filters is None:
            raise _unprocessable("filters: cannot be null")
        columns.update(_rule_columns(patch.filters))
    if "exceptions" in given:
        columns["exceptions"] = _stored_exceptions(patch.exceptions or [])
    now = datetime.now(UTC)
    async with state.pool.acquire() as conn, conn.transaction():
        current = await repository.get_rule(conn, name, lock="FOR UPDATE")
        if current is None:
            raise _rule_not_found(name)
        if "muted" in given or "unmuteAt" in given:
            muted = patch.muted if patch.muted is not None else rule_muted(current, now)
            unmute_at = patch.unmuteAt if "unmuteAt" in given else current["unmute_at"]
            problem = mute_problem(muted, unmute_at, now)
            if problem:
                raise _unprocessable(problem)
            columns["muted"] = muted
            columns["unmute_at"] = unmute_at if muted else None
        if "exceptions" in columns:
            await _check_exception_tags(conn, columns["exceptions"])
        row = await repository.update_rule(conn, name, columns) if columns else current
        assert row is not None
        out = rule_out(row, now)
        await state.publish_change("business_rule", name, out)
    return out


@rules_router.delete("/{name}", summary="Delete a business rule")
async def delete_rule(state: State, name: str, _: Writer) -> dict[str, Any]:
    if name == DEFAULT_RULE:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"The default rule '{DEFAULT_RULE}' cannot be deleted.")
    async with state.pool.acquire() as conn, conn.transaction():
        # FOR UPDATE makes a concurrent sharing creation (which locks the rule FOR KEY SHARE) wait.
        if await repository.get_rule(conn, name, lock="FOR UPDATE") is None:
            raise _rule_not_found(name)
        users = await repository.sharings_of_rule(conn, name)
        if users:
            named = ", ".join(f"{u['id']} ({u['source']} -> {u['destination']})" for u in users)
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"Business rule '{name}' is used by sharing configurations: {named}. Delete them first.",
            )
        await repository.delete_rule(conn, name)
        await state.publish_change("business_rule", name, None)
    return {}


@rules_router.post(
    "/{name}/clone", status_code=status.HTTP_201_CREATED, summary="Clone a business rule under a new name"
)
async def clone_rule(state: State, name: str, new: RuleName, _: Writer) -> dict[str, Any]:
    async with state.pool.acquire() as conn, conn.transaction():
        current = await repository.get_rule(conn, name)
        if current is None:
            raise _rule_not_found(name)
        await _check_exception_tags(conn, current["exceptions"])
        row = await repository.insert_rule(conn, new.name, current | {"muted": False, "unmute_at": None})
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"Business rule with name='{new.name}' already exists.")
        out = rule_out(row, datetime.now(UTC))
        await state.publish_change("business_rule", new.name, out)
    return out


def _configuration_missing(field: str, name: str) -> HTTPException:
    return _unprocessable(f"{field}: Configuration with name='{name}' does not exist.")


def _destination_tenant(destination: dict[str, Any], field: str = "destinationConfiguration") -> str:
    """The tenant a destination configuration pushes to; only Netskope configurations are destinations."""
    if destination["plugin"] == "api_source":
        raise _unprocessable(f"{field}: {API_SOURCE_DESTINATION}")
    if destination["plugin"] != "netskope" or not destination["tenant"]:
        raise _unprocessable(f"{field}: '{destination['name']}' is not a Netskope configuration with a tenant")
    return str(destination["tenant"])


@rules_router.get(
    "/{name}/test",
    summary="Test a business rule: how many indicators (and bytes) it would share",
    description="Counts, per target type, the active indicators the rule selects whose entry of `source` (of "
    "any source when not given) was last seen within `days`; exceptions and the allow-list apply, as in "
    "the rule-engine. Sizes are bytes as counted against a Netskope list's cap.",
)
async def rule_test(
    state: State,
    name: str,
    _: Reader,
    days: Annotated[int, Query(ge=1, le=365, description="1..365; all time is the last 365 days")] = 365,
    source: Annotated[str | None, Query(description="a source configuration")] = None,
    destination: Annotated[str | None, Query(description="a destination configuration (Netskope)")] = None,
) -> dict[str, int]:
    now = datetime.now(UTC)
    since = now - timedelta(days=days)
    tally = RuleTestTally()
    async with state.pool.acquire() as conn, conn.transaction(readonly=True):
        row = await repository.get_rule(conn, name)
        if row is None:
            raise _rule_not_found(name)
        if source is not None and await repository.get_configuration(conn, source) is None:
            raise _configuration_missing("source", source)
        if destination is not None:
            config = await repository.get_configuration(conn, destination)
            if config is None:
                raise _configuration_missing("destination", destination)
            _destination_tenant(config, "destination")
        rule = rule_def(row)
        evaluator = Evaluator(AllowList(await repository.allow_entries(conn)))
        params = SqlParams(start=1)
        rule_sql = to_sql(rule.node, params)
        entry = f"s.value = i.value AND s.last_seen > {params.add(since)}"
        if source is not None:
            entry += f" AND s.source = {params.add(source)}"
        where = f"i.active AND {rule_sql} AND EXISTS (SELECT 1 FROM indicator_sources s WHERE {entry})"
        sharings: dict[tuple[str, Action], SharingDef] = {}
        async for chunk in repository.stream_indicators(conn, where=where, params=params.values):
            for indicator_row, sources in chunk:
                indicator = indicator_out(indicator_row, sources)
                by = source or rule_test_source(indicator, since)
                if by is None:
                    continue
                action = rule_test_action(indicator["type"])
                sharing = sharings.get((by, action))
                if sharing is None:
                    sharing = sharings[(by, action)] = ad_hoc_sharing(rule, by, action)
                tally.add(action, evaluator.decide(sharing, indicator))
    return tally.out()


# Allow-list


def _allow_entry_not_found(entry_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"Allow-list entry with id={entry_id} does not exist.")


@allow_list_router.post("", status_code=status.HTTP_201_CREATED, summary="Add an allow-list entry")
async def create_allow_entry(state: State, entry: AllowEntryIn, _: Writer) -> dict[str, Any]:
    try:
        pattern = allow_pattern(entry.kind, entry.pattern)
    except ValueError as exc:
        raise _unprocessable(str(exc)) from None
    async with state.pool.acquire() as conn, conn.transaction():
        row = await repository.insert_allow_entry(conn, entry.kind, pattern, entry.comment)
        if row is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"An allow-list entry with kind='{entry.kind}' and pattern='{pattern}' already exists.",
            )
        out = allow_entry_out(row)
        await state.publish_change("allow_list", str(row["id"]), out)
    return {**out, "hits": 0, "lastHitAt": None}


@allow_list_router.get("", summary="List the allow-list, with how often each entry matched")
async def list_allow_entries(state: State, _: Reader) -> list[dict[str, Any]]:
    async with state.pool.acquire() as conn:
        return [allow_entry_out(r) for r in await repository.list_allow_entries(conn)]


@allow_list_router.get("/{entry_id}", summary="Get one allow-list entry")
async def get_allow_entry(state: State, entry_id: RowId, _: Reader) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        row = await repository.get_allow_entry(conn, entry_id)
    if row is None:
        raise _allow_entry_not_found(entry_id)
    return allow_entry_out(row)


@allow_list_router.delete("/{entry_id}", summary="Delete an allow-list entry")
async def delete_allow_entry(state: State, entry_id: RowId, _: Writer) -> dict[str, Any]:
    async with state.pool.acquire() as conn, conn.transaction():
        if not await repository.delete_allow_entry(conn, entry_id):
            raise _allow_entry_not_found(entry_id)
        await state.publish_change("allow_list", str(entry_id), None)
    return {}


# Sharing configurations (Threat Exchange > Sharing)


def _sharing_not_found(sharing_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"Sharing configuration with id={sharing_id} does not exist.")


def _target(action: Action, parameters: dict[str, Any]) -> UrlTarget | FileTarget:
    target, problems = target_problems(action, parameters)
    if target is None:
        raise _unprocessable("; ".join(problems))
    return target


async def _check_rule_exists(conn: Connection, name: str) -> None:
    # FOR KEY SHARE: a concurrent deletion of the rule waits for this transaction (or has happened).
    if await repository.get_rule(conn, name, lock="FOR KEY SHARE") is None:
        raise _unprocessable(f"businessRule: Business rule with name='{name}' does not exist.")


async def _check_list_free(
    conn: Connection, tenant: str, action: Action, list_name: str, sharing_id: int | None
) -> str:
    """The list's key, unless another sharing already targets that list."""
    key = list_key(tenant, action, list_name)
    other = await repository.sharing_on_list(conn, key)
    if other is not None and other["id"] != sharing_id:
        raise _list_taken(tenant, action, list_name, other["id"])
    return key


def _list_taken(tenant: str, action: Action, list_name: str, other_id: int | None) -> HTTPException:
    kind = "URL List" if action == "url" else "File Hash List"
    by = f"sharing {other_id}" if other_id is not None else "another sharing"
    return _unprocessable(
        "parameters: The same URL List, File Hash List or Private App List is already configured: "
        f"the {kind} '{list_name}' on tenant '{tenant}' is already the target of {by}."
    )


@sharing_router.post("", status_code=status.HTTP_201_CREATED, summary="Create a sharing configuration")
async def create_sharing(state: State, body: SharingIn, _: Writer) -> dict[str, Any]:
    action, parameters = body.resolved()
    target = _target(action, parameters)
    async with state.pool.acquire() as conn, conn.transaction():
        if await repository.get_configuration(conn, body.sourceConfiguration) is None:
            raise _configuration_missing("sourceConfiguration", body.sourceConfiguration)
        destination = await repository.get_configuration(conn, body.destinationConfiguration)
        if destination is None:
            raise _configuration_missing("destinationConfiguration", body.destinationConfiguration)
        tenant = _destination_tenant(destination)
        await _check_rule_exists(conn, body.businessRule)
        key = await _check_list_free(conn, tenant, action, target.list_name, None)
        row = await repository.insert_sharing(
            conn,
            {
                "source": body.sourceConfiguration,
                "rule": body.businessRule,
                "destination": body.destinationConfiguration,
                "action": action,
                "parameters": target.model_dump(),
                "list_key": key,
                "priority": body.priority,
            },
        )
        if row is None:  # taken meanwhile by a concurrent creation
            raise _list_taken(tenant, action, target.list_name, None)
        out = sharing_out(row)
        await state.publish_change("sharing", str(row["id"]), out)
    return out


@sharing_router.get("", summary="List the sharing configurations")
async def list_sharings(state: State, _: Reader) -> list[dict[str, Any]]:
    async with state.pool.acquire() as conn:
        return [sharing_out(r) for r in await repository.list_sharings(conn)]


@sharing_router.get("/{sharing_id}", summary="Get one sharing configuration")
async def get_sharing(state: State, sharing_id: RowId, _: Reader) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        row = await repository.get_sharing(conn, sharing_id)
    if row is None:
        raise _sharing_not_found(sharing_id)
    return sharing_out(row)


@sharing_router.patch(
    "/{sharing_id}",
    summary="Update a sharing configuration (rule, parameters, priority)",
    description="`parameters` replaces the stored parameters whole (defaults fill what it leaves out).",
)
async def update_sharing(state: State, sharing_id: RowId, patch: SharingPatch, _: Writer) -> dict[str, Any]:
    given = {k for k in patch.model_fields_set if getattr(patch, k) is not None}
    async with state.pool.acquire() as conn, conn.transaction():
        current = await repository.get_sharing(conn, sharing_id, lock="FOR UPDATE")
        if current is None:
            raise _sharing_not_found(sharing_id)
        columns: dict[str, Any] = {}
        taken: HTTPException | None = None  # the answer if the new list is taken meanwhile
        if "businessRule" in given:
            assert patch.businessRule is not None
            await _check_rule_exists(conn, patch.businessRule)
            columns["rule"] = patch.businessRule
        if "parameters" in given:
            assert patch.parameters is not None
            target = _target(current["action"], patch.parameters)
            destination = await repository.get_configuration(conn, current["destination"])
            assert destination is not None  # deleting a configuration deletes its sharings
            tenant = _destination_tenant(destination)
            key = await _check_list_free(conn, tenant, current["action"], target.list_name, sharing_id)
            columns["parameters"] = target.model_dump()
            columns["list_key"] = key
            taken = _list_taken(tenant, current["action"], target.list_name, None)
        if "priority" in given:
            columns["priority"] = patch.priority
        try:
            row = await repository.update_sharing(conn, sharing_id, columns) if columns else current
        except asyncpg.UniqueViolationError:  # only list_key is unique
            assert taken is not None
            raise taken from None
        assert row is not None
        out = sharing_out(row)
        await state.publish_change("sharing", str(sharing_id), out)
    return out


@sharing_router.delete("/{sharing_id}", summary="Delete a sharing configuration")
async def delete_sharing(state: State, sharing_id: RowId, _: Writer) -> dict[str, Any]:
    async with state.pool.acquire() as conn, conn.transaction():
        if not await repository.delete_sharing(conn, sharing_id):
            raise _sharing_not_found(sharing_id)
        await state.publish_change("sharing", str(sharing_id), None)
    return {}


@sharing_router.get(
    "/{sharing_id}/dry_run",
    summary="What the sharing's list would hold: additions, removals, what the cap leaves out",
    description="Decides every active indicator of the sharing's source as the rule-engine does, cuts the "
    "selection at the list's cap, and compares it with what the sink wants the list to hold now (cut at the "
    "same cap). Nothing is pushed or written. Lists of values hold the first 100 (highest priority first).",
)
async def dry_run_sharing(state: State, sharing_id: RowId, _: Reader) -> dict[str, Any]:
    run = DryRun()
    async with state.pool.acquire() as conn, conn.transaction(readonly=True):
        row = await repository.get_sharing(conn, sharing_id)
        if row is None:
            raise _sharing_not_found(sharing_id)
        rule = await repository.get_rule(conn, row["rule"])
        assert rule is not None  # a rule in use cannot be deleted
        sharing = sharing_def(row, rule)
        evaluator = Evaluator(AllowList(await repository.allow_entries(conn)))
        params = SqlParams(start=1)
        where = (
            "i.active AND EXISTS (SELECT 1 FROM indicator_sources s "
            f"WHERE s.value = i.value AND s.source = {params.add(sharing.source)})"
        )
        async for chunk in repository.stream_indicators(conn, where=where, params=params.values):
            for indicator_row, sources in chunk:
                indicator = indicator_out(indicator_row, sources)
                run.add(indicator["value"], evaluator.decide(sharing, indicator))
        current = [
            Candidate(m["value"], m["priority"], m["cost_bytes"])
            async for members in repository.stream_list_members(conn, sharing.list_key)
            for m in members
        ]
    return {**run.out(sharing.cap_bytes, current), "ruleMuted": rule_muted(rule, datetime.now(UTC))}


# Re-evaluations (the rule-engine's progress)


@reevaluations_router.get("", summary="Progress of the rule-engine's re-evaluations, newest first")
async def list_reevaluations(
    state: State,
    _: Reader,
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    async with state.pool.acquire() as conn:
        return [reevaluation_out(r) for r in await repository.list_reevaluations(conn, skip, limit)]
