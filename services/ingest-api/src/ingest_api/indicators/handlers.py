"""Routes of ``/api/cte/indicators``: writes become indicator events (see :mod:`ingest_api.write_path`),
reads come from the read model."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response, status
from fastapi.routing import APIRoute

from cte_common.db import Connection
from cte_common.events import AnyIndicatorEvent, IndicatorDelete, IndicatorRetraction, IndicatorTagEdit
from cte_common.indicator_schema import IndicatorOut
from ingest_api.configurations.repository import source_configurations
from ingest_api.exchange_settings import repository as exchange_settings
from ingest_api.idempotency.handlers import EventIds, IdempotencyKey, once
from ingest_api.indicators import repository
from ingest_api.indicators.domain import (
    NeedsJsonValues,
    build_sighting,
    claimed_sources,
    ignored_fields,
    indicator_out,
    parse_json,
    read_body,
    sighting_out,
    sighting_records,
    sightings_answer,
    validate_batch_lean,
    value_candidates,
)
from ingest_api.indicators.schemas import (
    BulkDeleteIn,
    BulkDeleteOut,
    BulkEditIn,
    BulkEditOut,
    IndicatorCountOut,
    IndicatorIn,
    PatchIn,
    QueryLocator,
    RetractionIn,
    ValuesLocator,
)
from ingest_api.metrics import IGNORED_FIELDS, INDICATORS_ACCEPTED, INDICATORS_REJECTED
from ingest_api.shared import (
    MAX_SKIP,
    WRITE_ERRORS,
    AppState,
    ItemError,
    Reader,
    State,
    Unprocessable,
    Writer,
    error_answer,
    filter_where,
)
from ingest_api.tags.repository import ensure_tags, missing_tags
from ingest_api.write_path import publish_indicator_events, publish_sightings, visible

router = APIRouter(prefix="/cte/indicators", tags=["Indicators"], responses=WRITE_ERRORS)

Wait = Annotated[
    bool | None,
    Query(
        description="Without it (the reference's semantics), the write answers once the read model shows it, "
        "with what is stored; past CTE_WAIT_TIMEOUT_SECONDS, 202 with what was accepted (durable, not yet "
        "visible). `false`: answer as soon as Kafka has it (the fastest acknowledgement, for feeds that never "
        "read back). `true`: wait, and past the bound answer 504."
    ),
]


def accepted(model: Any) -> dict[int | str, dict[str, Any]]:
    """The 202 of a write without ``wait``: what was accepted (durable), not yet shown by the read model."""
    return {202: {"model": model, "description": "Accepted (durable in Kafka), not yet shown within the bound"}}


class _LeanBodyRequest(Request):
    """A POST of indicators, whose body FastAPI reads through :meth:`json`: by ``domain.read_body``
    instead of json.loads, with the same values or error where the body is not a batch of plain items,
    so FastAPI's checks and errors for the body are unchanged."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = read_body(await self.body())
        return self._json


class _LeanBodyRoute(APIRoute):
    """The route of POST /api/cte/indicators/, with its body read by :class:`_LeanBodyRequest` (FastAPI's
    custom request class)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def lean_body_handler(request: Request) -> Response:
            return await handle(_LeanBodyRequest(request.scope, request.receive))

        return lean_body_handler


async def post_indicators(
    state: State,
    claims: Writer,
    request: Request,
    raw: Annotated[list[Any], Body(include_in_schema=False)],
    response: Response,
    idempotency_key: IdempotencyKey = None,
    wait: Wait = None,
) -> Response | list[IndicatorOut]:
    return await once(  # type: ignore[no-any-return]
        state,
        claims,
        idempotency_key,
        request,
        response,
        lambda ids: _post_indicators(state, request, raw, wait, ids, response),
    )


router.add_api_route(
    "/",
    post_indicators,
    methods=["POST"],
    route_class_override=_LeanBodyRoute,
    status_code=status.HTTP_201_CREATED,
    response_model=list[IndicatorOut],
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
    responses={422: error_answer("Invalid items: every one is listed", Unprocessable), **accepted(list[IndicatorOut])},
)


async def _post_indicators(
    state: AppState, request: Request, raw: list[Any], wait: bool | None, ids: EventIds, response: Response
) -> Response | list[IndicatorOut]:
    # The hot path: the body read by msgspec into plain items (_LeanBodyRequest), checked without a
    # model each (IndicatorIn only where the lean checks are not sure, so the answers are the same), the
    # events encoded and published in envelopes, the answer encoded by msgspec
    # (domain.read_body, validate_batch_lean, sighting_records, sightings_answer).
    if len(raw) > state.settings.max_batch_items:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"body: at most {state.settings.max_batch_items} indicators per request, got {len(raw)}",
        )
    now = datetime.now(UTC)
    async with state.pool.acquire() as conn:
        configs = await source_configurations(conn, claimed_sources(raw))
        ignored: Counter[str] = Counter()
        try:
            items, errors = validate_batch_lean(raw, set(configs), ignored)
        except NeedsJsonValues:
            items, errors = validate_batch_lean(parse_json(await request.body()), set(configs), ignored)
        for field, n in ignored.items():
            IGNORED_FIELDS.labels(field).inc(n)
        if errors:
            INDICATORS_REJECTED.labels("invalid").inc(len({e["index"] for e in errors}))
            raise ItemError(errors)
        criterion = await exchange_settings.criterion(conn)
        await ensure_tags(conn, sorted({t for i in items for t in i.tags}))
    sightings = sighting_records(items, configs, criterion, now)  # type: ignore[arg-type]
    if ids is not None:
        for index, sighting in enumerate(sightings):
            sighting.event_id = ids(index)
    marks = await publish_sightings(state, sightings)
    for kind, n in Counter(s.type.value for s in sightings).items():
        INDICATORS_ACCEPTED.labels(kind).inc(n)
    if await visible(state, marks, wait, response):
        async with state.pool.acquire() as conn:
            return await _indicators_in_order(conn, [s.value for s in sightings])
    return Response(
        sightings_answer(sightings), response.status_code or status.HTTP_201_CREATED, media_type="application/json"
    )


async def _indicators_in_order(conn: Connection, values: list[str]) -> list[IndicatorOut]:
    """The stored indicators of ``values``, in the order of their first mention (as the request named
    them)."""
    ordered = list(dict.fromkeys(values))
    found = {i.value: i for i in await _answers(conn, await repository.list_indicators_by_value(conn, ordered))}
    return [found[v] for v in ordered if v in found]


async def _answers(conn: Connection, rows: list[dict[str, Any]]) -> list[IndicatorOut]:
    """Read-model rows with their sources, as the API answers them."""
    values = [r["value"] for r in rows]
    sources = await repository.sources_of(conn, values)
    lists = await repository.list_status_of(conn, values)
    return [
        IndicatorOut.model_validate(indicator_out(r, sources.get(r["value"], []), lists.get(r["value"], [])))
        for r in rows
    ]


@router.get("/", summary="List the indicators")
async def get_indicators(
    state: State,
    _: Reader,
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_SKIP)] = 10,
    sort: str | None = None,
    ascending: bool = True,
    aggregate: bool = False,
    filters: str = "{}",
) -> list[IndicatorOut] | IndicatorCountOut:
    if limit > 100:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Limit cannot be greater than 100.")
    where, params = filter_where(filters)
    async with state.pool.acquire() as conn:
        if aggregate:
            return IndicatorCountOut(count=await repository.count_indicators(conn, where=where, params=params))
        rows = await repository.list_indicators(
            conn, where=where, params=params, order_by=repository.sort_clause(sort, ascending), skip=skip, limit=limit
        )
        return await _answers(conn, rows)


async def _find_value(conn: Connection, value: str, source: str | None = None) -> str | None:
    """The stored value a client means: as given, or its canonical form for some type."""
    found = await repository.existing_values(conn, value_candidates(value), source)
    return found[0] if found else None


@router.patch(
    "/",
    status_code=status.HTTP_201_CREATED,
    summary="Update a single indicator",
    description="Either an indicator (merged like a POST: to change its reputation, say) or a retraction "
    "`{value, source, retracted}`.",
    responses=accepted(IndicatorOut | bool),
)
async def patch_indicator(
    state: State,
    claims: Writer,
    request: Request,
    body: Annotated[PatchIn, Body()],
    response: Response,
    idempotency_key: IdempotencyKey = None,
    wait: Wait = None,
) -> IndicatorOut | bool:
    if isinstance(body, IndicatorIn):
        for field in ignored_fields(await request.json()):
            IGNORED_FIELDS.labels(field).inc()
    return await once(  # type: ignore[no-any-return]
        state,
        claims,
        idempotency_key,
        request,
        response,
        lambda ids: _patch_indicator(state, body, wait, ids, response),
    )


async def _patch_indicator(
    state: AppState, body: IndicatorIn | RetractionIn, wait: bool | None, ids: EventIds, response: Response
) -> IndicatorOut | bool:
    now = datetime.now(UTC)
    async with state.pool.acquire() as conn:
        if isinstance(body, RetractionIn):
            stored = await _find_value(conn, body.value, body.source)
            if stored is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND,
                    f"Indicator with value='{body.value}' and source='{body.source}' does not exist.",
                )
            marks = await publish_indicator_events(
                state, [IndicatorRetraction(value=stored, source=body.source, retracted=body.retracted)]
            )
            await visible(state, marks, wait, response)
            return True
        if await _find_value(conn, body.value) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Indicator with value='{body.value}' does not exist.")
        configs = await source_configurations(conn, [body.source])
        if body.source not in configs:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Configuration with name='{body.source}' does not exist.")
        criterion = await exchange_settings.criterion(conn)
        await ensure_tags(conn, body.tags)
    sighting = build_sighting(body, configs[body.source], criterion, now)  # type: ignore[arg-type]
    if ids is not None:
        sighting = sighting.model_copy(update={"event_id": ids(0)})
    marks = await publish_indicator_events(state, [sighting])
    INDICATORS_ACCEPTED.labels(sighting.type.value).inc()
    if await visible(state, marks, wait, response):
        async with state.pool.acquire() as conn:
            [found] = await _indicators_in_order(conn, [sighting.value])
            return found
    return sighting_out(sighting)


@router.patch(
    "/bulk",
    status_code=status.HTTP_201_CREATED,
    summary="Bulk update indicators (tags)",
    responses=accepted(BulkEditOut),
)
async def bulk_edit(
    state: State,
    claims: Writer,
    request: Request,
    edit: BulkEditIn,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    wait: Wait = None,
) -> BulkEditOut:
    # A tag edit applied twice ends the same: the key only makes the repeat answer the same.
    return await once(  # type: ignore[no-any-return]
        state, claims, idempotency_key, request, response, lambda _ids: _bulk_edit(state, edit, wait, response)
    )


async def _bulk_edit(state: AppState, edit: BulkEditIn, wait: bool | None, response: Response) -> BulkEditOut:
    tags = edit.tags
    marks: list[tuple[str, int, int]] = []
    updated = 0
    async with state.pool.acquire() as conn, conn.transaction():
        missing = await missing_tags(conn, [*tags.add, *tags.remove])
        if missing:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"Tag '{missing[0]}' does not exist.")
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
            marks += await publish_indicator_events(state, events)
            updated += len(chunk)
    await visible(state, marks, wait, response)
    return BulkEditOut(updated=updated)


@router.delete(
    "/bulk", status_code=status.HTTP_201_CREATED, summary="Bulk delete indicators", responses=accepted(BulkDeleteOut)
)
async def bulk_delete(
    state: State,
    _: Writer,
    body: BulkDeleteIn,
    response: Response,
    wait: Wait = None,
) -> BulkDeleteOut:
    marks: list[tuple[str, int, int]] = []
    deleted = 0
    async with state.pool.acquire() as conn, conn.transaction():
        async for chunk in _locate(conn, body.query, body.values, None):
            marks += await publish_indicator_events(state, [IndicatorDelete(value=v) for v in chunk])
            deleted += len(chunk)
    await visible(state, marks, wait, response)
    return BulkDeleteOut(deleted=deleted)


async def _locate(
    conn: Connection, query: str | dict[str, Any] | None, values: list[str] | None, source: str | None
) -> AsyncIterator[list[str]]:
    """Stored values a locator names, in chunks: by filter query, or by values (as given or canonical)."""
    if query is not None:
        where, params = filter_where(query)
        async for chunk in repository.stream_values(conn, where=where, params=params):
            yield chunk
        return
    assert values is not None
    candidates = [c for v in values for c in value_candidates(v)]
    for start in range(0, len(candidates), 10_000):
        found = await repository.existing_values(conn, candidates[start : start + 10_000], source)
        if found:
            yield found
