"""Entry point of the ingest-api: ``cte-ingest-api`` (uvicorn serving :func:`create_app`)."""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, multiprocess
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cte_common.db import create_pool
from cte_common.logs import bind, configure_logging
from cte_common.service import build_broker, settle_heap
from ingest_api.access import repository as access_repository
from ingest_api.access.domain import hash_secret, verify_secret
from ingest_api.access.handlers import auth_router, tokens_router
from ingest_api.access.schemas import ALL_SCOPES
from ingest_api.allow_list.handlers import router as allow_list_router
from ingest_api.api_docs.handlers import install as install_docs
from ingest_api.audit.handlers import AuditTrail
from ingest_api.audit.handlers import router as audit_router
from ingest_api.configurations.handlers import ce_router as configuration_ce_router
from ingest_api.configurations.handlers import plugins_router as plugin_configurations_router
from ingest_api.configurations.handlers import router as configurations_router
from ingest_api.console.handlers import install as install_console
from ingest_api.dashboards.handlers import router as dashboards_router
from ingest_api.exchange_settings.handlers import router as settings_router
from ingest_api.health.handlers import router as health_router
from ingest_api.indicators.handlers import router as indicators_router
from ingest_api.indicators.schemas import IndicatorIn
from ingest_api.metrics import HTTP_REQUESTS, HTTP_SECONDS, INDICATORS_REJECTED
from ingest_api.pipeline.handlers import router as pipeline_router
from ingest_api.rules.handlers import reevaluations_router, rule_ce_router, rules_router
from ingest_api.settings import Settings
from ingest_api.shared import (
    OUTAGES,
    AppState,
    ItemError,
    Unavailable,
    closed_connection,
    item_error_response,
    replaying,
    unavailable_response,
)
from ingest_api.sharing.handlers import router as sharing_router
from ingest_api.tags.handlers import router as tags_router
from ingest_api.tenants.handlers import router as tenants_router
from ingest_api.users.handlers import bootstrap_admin, roles_router, users_router

log = logging.getLogger(__name__)


async def _bootstrap_client(state: AppState) -> None:
    s = state.settings
    if not s.bootstrap_client_id or s.bootstrap_client_secret is None:
        return
    secret = s.bootstrap_client_secret.get_secret_value()
    async with state.pool.acquire() as conn:
        existing = await access_repository.get_client(conn, s.bootstrap_client_id)
        if (
            existing is not None
            and set(existing["scopes"]) == set(ALL_SCOPES)
            and verify_secret(existing["secret_hash"], secret)
        ):
            return
        await access_repository.upsert_client(
            conn,
            s.bootstrap_client_id,
            hash_secret(secret),
            "bootstrap client (from the environment)",
            list(ALL_SCOPES),
        )
    log.info("bootstrap API client ready", extra={"client_id": s.bootstrap_client_id})


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's error entries plus the item index and field of each, so a client can point at them."""
    out = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        entry: dict[str, Any] = {
            "loc": loc,
            "msg": str(err.get("msg", "")).removeprefix("Value error, "),
            "type": err.get("type"),
        }
        if len(loc) >= 2 and loc[0] == "body" and isinstance(loc[1], int):
            entry["index"] = loc[1]
            entry["field"] = ".".join(str(p) for p in loc[2:]) or None
        out.append(entry)
    return out


def _route_template(request: Request) -> str:
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"


def _document(app: FastAPI) -> None:
    """Publish the schemas of bodies that handlers validate themselves (to report every bad item)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            model = IndicatorIn.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(model.pop("$defs", {}))
            components["IndicatorIn"] = model
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# A JSON escape of NUL, not preceded by an escaped backslash (which would make it the text "\u0000").
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class RequestGuard:
    """Refuses before any route runs: a body larger than the limit however it is sent (a chunked body
    has no Content-Length to compare), and NUL characters anywhere in the request, which PostgreSQL text
    cannot hold (they would fail deep in a write, or be accepted and fail the rule-engine)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").lower()
        if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
            await _refuse(send, 400, "request: NUL characters are not allowed")
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await _refuse(send, 413, f"body: larger than {self.max_body_bytes} bytes")
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _refuse(send, 413, f"body: larger than {self.max_body_bytes} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        form = headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded")
        if b"\x00" in body or (b"\\u0000" in body and _JSON_NUL.search(body)) or (form and b"%00" in body.lower()):
            await _refuse(send, 400, "body: NUL characters are not allowed")
            return
        await self.app(scope, replaying(body, receive), send)


async def _refuse(send: Send, status_code: int, detail: str) -> None:
    await JSONResponse(status_code=status_code, content={"detail": detail})({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        broker = build_broker(settings, "ingest-api")
        await broker.start()
        if settings.jwt_secret is None:
            log.warning("CTE_JWT_SECRET is not set: tokens are signed with a per-process key")
            key = secrets.token_urlsafe(48)
        else:
            key = settings.jwt_secret.get_secret_value()
        app.state.cte = AppState(settings, pool, broker, key)
        await _bootstrap_client(app.state.cte)
        await bootstrap_admin(app.state.cte)
        # A batch of a thousand indicators allocates enough for several collections per request; frozen,
        # what startup made is no longer walked by them. (The interpreter's thresholds stay: request
        # bodies sit in the HTTP stack's reference cycles, see settle_heap.)
        settle_heap()
        try:
            yield
        finally:
            await broker.stop()
            await pool.close()

    app = FastAPI(
        title="Threat Exchange API",
        version="0.1.0",
        description="Cloud Exchange-compatible Threat Exchange API: indicators in, lists out.",
        lifespan=lifespan,
        docs_url=None,  # served from the stack's own assets: install_docs below
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    for router in (
        auth_router,
        indicators_router,
        tags_router,
        dashboards_router,
        configurations_router,
        tenants_router,
        tokens_router,  # before users_router: /users/tokens is not a username
        users_router,
        roles_router,
        audit_router,
        settings_router,
        rules_router,
        allow_list_router,
        sharing_router,
        reevaluations_router,
        pipeline_router,
        configuration_ce_router,
        plugin_configurations_router,
        rule_ce_router,
    ):
        app.include_router(router, prefix="/api")
    app.include_router(health_router)
    app.mount("/metrics", make_asgi_app(_metrics_registry()))
    install_docs(app, "/api/openapi.json")
    install_console(app, settings.console_dir)  # what no route matches
    _document(app)
    app.add_middleware(AuditTrail)  # inside the guard: it sees only bodies the guard let through
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        INDICATORS_REJECTED.labels("invalid").inc(sum(1 for e in errors if "index" in e))
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(ItemError)
    async def on_item_error(request: Request, exc: ItemError) -> JSONResponse:
        log.info("refused a batch: %d invalid items", len({e.get("index") for e in exc.errors}))
        return item_error_response(exc)

    @app.exception_handler(Unavailable)
    async def on_unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        log.warning("answered 503: %s", exc)
        return unavailable_response(exc)

    # An outage of a dependency, raised by its client anywhere in a request, is a 503 naming it.
    for dependency, kinds in OUTAGES.items():

        async def on_outage(request: Request, exc: Exception, dependency: str = dependency) -> JSONResponse:
            return await on_unavailable(request, Unavailable(dependency, repr(exc)))

        for kind in kinds:
            app.add_exception_handler(kind, on_outage)

    @app.exception_handler(asyncpg.InterfaceError)
    async def on_closed_connection(request: Request, exc: asyncpg.InterfaceError) -> JSONResponse:
        # asyncpg says only this, by message, when a request's connection was closed under it by a
        # server that went away between two statements; any other InterfaceError is a bug and stays one.
        if not closed_connection(exc):
            raise exc
        return await on_unavailable(request, Unavailable("PostgreSQL", repr(exc)))

    @app.middleware("http")
    async def limits_and_metrics(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        # A request id from the caller (or a new one) on every log line of the request and on the answer.
        request_id = request.headers.get("x-request-id", "")[:100] or uuid.uuid4().hex
        with bind(request_id=request_id):
            response = await call_next(request)
        response.headers["X-Request-ID"] = request_id
        route = _route_template(request)
        HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        HTTP_SECONDS.labels(route, request.method).observe(time.perf_counter() - started)
        return response

    return app


def _metrics_registry() -> CollectorRegistry:
    """The registry /metrics shows: with several processes, every process's metrics summed (prometheus
    client's multiprocess mode: each process writes its own into PROMETHEUS_MULTIPROC_DIR)."""
    if not os.environ.get(_MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# At most this many processes by default: beyond it the API's share of a small machine goes to
# processes waiting for a core.
_DEFAULT_MAX_WORKERS = 4


# How long uvicorn's supervisor waits for a process's answer before it replaces it. A new process
# answers only once it has imported the app (the supervisor's default, 5 s, is less than that takes on a
# busy machine: it then kills every process it starts, forever).
_WORKER_HEALTHCHECK_SECONDS = 60


def default_workers() -> int:
    """One process per core this process may run on, at most 4."""
    return max(1, min(len(os.sched_getaffinity(0)), _DEFAULT_MAX_WORKERS))


def worker_app() -> FastAPI:
    """The app of one of several processes (uvicorn's factory): each reads the same environment."""
    settings = Settings()
    configure_logging(settings.log_level, "ingest-api")
    return create_app(settings)


def run() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "ingest-api")
    workers = settings.api_workers or default_workers()
    served: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_config": None,
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **served)
        return
    # What several processes must share is given to every one through the environment, before any
    # starts: the token signing key (a per-process key would make one process refuse another's tokens)
    # and the directory of the metrics they write.
    if settings.jwt_secret is None:
        log.warning("CTE_JWT_SECRET is not set: tokens are signed with a key made for this run")
        os.environ["CTE_JWT_SECRET"] = secrets.token_urlsafe(48)
    metrics_dir = tempfile.mkdtemp(prefix="cte-ingest-api-metrics-")
    os.environ[_MULTIPROC_ENV] = metrics_dir
    log.info("serving with %d processes", workers)
    try:
        uvicorn.run(
            "ingest_api.main:worker_app",
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=_WORKER_HEALTHCHECK_SECONDS,
            **served,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    run()
