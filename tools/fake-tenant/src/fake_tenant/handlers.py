"""The fake tenant's routes, and the middleware that logs requests and injects faults.

Tenant routes (``/api/...``) answer with the tenant's shapes: a bare JSON array or object on success,
``{"status": "error", "message": ...}`` on a v2 error, the ``{"status": "error", "errorCode",
"errors"}`` envelope on a v1 error. Test routes live under ``/_sim/``, which the real tenant lacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import SecretStr, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fake_tenant.domain import V1_ERROR_CODE, ExportIn, FaultsIn, SlidingWindowLimiter, Tenant, TenantError

log = logging.getLogger(__name__)

api_router = APIRouter()
sim_router = APIRouter(prefix="/_sim", tags=["simulation (not part of the tenant's API)"])

V2_TOKEN_HEADER = "Netskope-Api-Token"  # noqa: S105 (a header name, not a secret)
_TOKEN_IN_QUERY = re.compile(r"(?i)(token=)[^&]*")


def _tenant(request: Request) -> Tenant:
    tenant: Tenant = request.app.state.tenant
    return tenant


def _tokens(request: Request) -> tuple[SecretStr, SecretStr]:
    tokens: tuple[SecretStr, SecretStr] = request.app.state.tokens
    return tokens


def _same(given: str, expected: SecretStr) -> bool:
    return secrets.compare_digest(given.encode(), expected.get_secret_value().encode())


def v2_error(status: int, message: str | list[list[Any]], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status, headers=headers)


def v1_error(errors: list[str], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    # Application errors come back as 200 with the envelope: the reference plugin parses JSON
    # only from a 2xx (and must read "Duplicate request ..." from it).
    body = {"status": "error", "errorCode": V1_ERROR_CODE, "errors": errors}
    return JSONResponse(body, status_code=status, headers=headers)


def _retry_after(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait)))}


def _limited(limiter: SlidingWindowLimiter, token: str) -> float | None:
    return limiter.check(token, time.monotonic())


def _v2_guard(request: Request) -> JSONResponse | None:
    """401 without the token header, 403 with a wrong one, 429 over the v2 rate limit."""
    token = request.headers.get(V2_TOKEN_HEADER)
    if not token:
        return v2_error(401, f"missing {V2_TOKEN_HEADER} header")
    if not _same(token, _tokens(request)[1]):
        return v2_error(403, "invalid API token")
    wait = _limited(_tenant(request).v2_limiter, token)
    if wait is not None:
        return v2_error(429, "too many requests: rate limit exceeded", headers=_retry_after(wait))
    return None


def list_error(tenant: Tenant, exc: TenantError) -> JSONResponse:
    """A refused request in the tenant's shape; refused URL entries as [entry, reason] pairs under
    ``message`` or ``errors``, as the tenant is set (both appear in Netskope's sources)."""
    if isinstance(exc.message, list) and tenant.error_shape == "errors":
        return JSONResponse({"status": "error", "errors": exc.message}, status_code=exc.status)
    return v2_error(exc.status, exc.message)


async def _upload(request: Request) -> Any:
    """A list upload's JSON body, refused past the tenant's upload limit (8 MB, documented)."""
    limit = _tenant(request).config.upload_max_bytes
    if len(await request.body()) > limit:
        raise TenantError(413, f"request body exceeds the upload limit of {limit} bytes")
    return await _json_body(request)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass  # orjson is stricter (NaN, integers past 64 bits, lone surrogates): the stdlib decides
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TenantError(400, "request body is not valid JSON") from exc


class ListResponse(JSONResponse):
    """The same bytes as JSONResponse (compact separators, UTF-8 unescaped) for the URL-list answers,
    written by orjson: a whole list's record is 7 MB at 190,000 entries, and each PATCH and deploy
    answers with it."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# ---------------------------------------------------------------------------- URL lists (REST v2)


@api_router.get("/api/v2/policy/urllist")
async def list_urllists(request: Request, field: str | None = None, pending: str | None = None) -> Response:
    if (refused := _v2_guard(request)) is not None:
        return refused
    return ListResponse(_tenant(request).urllists.listing(field, pending))


@api_router.post("/api/v2/policy/urllist")
async def create_urllist(request: Request) -> Response:
    if (refused := _v2_guard(request)) is not None:
        return refused
    body = await _upload(request)
    return ListResponse(_tenant(request).urllists.create(body, time.time()), status_code=201)


@api_router.post("/api/v2/policy/urllist/deploy")
async def deploy_urllists(request: Request) -> Response:
    if (refused := _v2_guard(request)) is not None:
        return refused
    return ListResponse(_tenant(request).urllists.deploy())


@api_router.get("/api/v2/policy/urllist/{list_id}")
async def get_urllist(request: Request, list_id: str) -> Response:
    if (refused := _v2_guard(request)) is not None:
        return refused
    return ListResponse(_tenant(request).urllists.get(list_id))


@api_router.put("/api/v2/policy/urllist/{list_id}")
async def put_urllist(request: Request, list_id: str) -> Response:
    if (refused := _v2_guard(request)) is not None:
        return refused
    body = await _upload(request)
    return ListResponse(_tenant(request).urllists.put(list_id, body, time.time()))


@api_router.patch("/api/v2/policy/urllist/{list_id}/{action}")
async def patch_urllist(request: Request, list_id: str, action: str) -> Response:
    if (refused := _v2_guard(request)) is not None:
        return refused
    body = await _upload(request)
    return ListResponse(_tenant(request).urllists.patch(list_id, action, body, time.time()))


@api_router.delete("/api/v2/policy/urllist/{list_id}")
async def delete_urllist(request: Request, list_id: str) -> Response:
    if (refused := _v2_guard(request)) is not None:
        return refused
    return ListResponse(_tenant(request).urllists.delete(list_id, time.time()))


# ---------------------------------------------------------------------------- file hash lists (REST v1)


async def _v1_body(request: Request) -> dict[str, Any] | None:
    """The JSON body (what the plugin sends), or a form body (what v1 also takes); None if neither."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in form.items()}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


@api_router.post("/api/v1/updateFileHashList")
async def update_file_hash_list(request: Request) -> Response:
    tenant = _tenant(request)
    body = await _v1_body(request)
    token = (body or {}).get("token") or request.query_params.get("token")
    if not isinstance(token, str) or not token:
        return v1_error(["token is required"], status=403)
    if not _same(token, _tokens(request)[0]):
        return v1_error(["Invalid token"], status=403)
    wait = _limited(tenant.v1_limiter, token)
    if wait is not None:
        limit = f"at most {tenant.v1_limiter.limit} per {tenant.v1_limiter.window:g} seconds"
        return v1_error([f"Too many requests: {limit}"], status=429, headers=_retry_after(wait))
    if body is None:
        return v1_error(["Invalid request body: expected JSON {name, list, token}"])
    if len(await request.body()) > tenant.config.upload_max_bytes:
        return v1_error([f"Request body exceeds the upload limit of {tenant.config.upload_max_bytes} bytes"])
    errors = tenant.filehashlists.update(body.get("name"), body.get("list"))
    if errors:
        return v1_error(errors)
    return JSONResponse({"status": "success"})


# ---------------------------------------------------------------------------- alert export (REST v2)


@api_router.get("/api/v2/events/dataexport/alerts/{alert_type}")
async def export_alerts(
    request: Request, alert_type: str, index: str | None = None, operation: str | None = None
) -> Response:
    if (refused := _v2_guard(request)) is not None:
        return refused
    export = _tenant(request).alerts
    # Documented: 4 requests per second per endpoint, RateLimit-* headers on every answer, and over
    # the limit a 429 with Retry-After and {"message": "API rate limit exceeded"}.
    wait, window = export.rate(request.headers[V2_TOKEN_HEADER], alert_type, time.monotonic())
    headers = window.headers() if window is not None else {}
    if wait is not None:
        return JSONResponse({"message": "API rate limit exceeded"}, 429, headers | _retry_after(wait))
    try:
        return JSONResponse(export.export(alert_type, index, operation), headers=headers)
    except TenantError as exc:
        return v2_error(exc.status, exc.message, headers=headers)


# ---------------------------------------------------------------------------- /_sim/


def _invalid(exc: ValidationError) -> JSONResponse:
    details = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'body'}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()
    )
    return v2_error(400, details)


@sim_router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@sim_router.get("/state")
async def state(request: Request) -> Response:
    return JSONResponse(_tenant(request).state())


@sim_router.get("/faults")
async def get_faults(request: Request) -> Response:
    return JSONResponse(_tenant(request).faults.config.model_dump())


@sim_router.put("/faults")
async def put_faults(request: Request) -> Response:
    body = await _json_body(request)
    try:
        config = FaultsIn.model_validate(body)
    except ValidationError as exc:
        return _invalid(exc)
    _tenant(request).faults.configure(config)
    log.info("faults set", extra={"faults": config.model_dump()})
    return JSONResponse(config.model_dump())


@sim_router.put("/refusals")
async def put_refusals(request: Request) -> Response:
    """``{"<list name>": {"status": 400, "message": "..."}}``: every change of those lists (URL or file
    hash) is refused with that answer until the next PUT ({} refuses nothing)."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        return v2_error(400, "request body must be a JSON object")
    refusals: dict[str, tuple[int, str]] = {}
    for name, answer in body.items():
        if not isinstance(answer, dict) or not isinstance(answer.get("message"), str):
            return v2_error(400, f"{name}: give a message (and a status, 400 by default)")
        refusals[name] = (int(answer.get("status", 400)), answer["message"])
    tenant = _tenant(request)
    tenant.urllists.refusals = dict(refusals)
    tenant.filehashlists.refusals = dict(refusals)
    return JSONResponse({name: {"status": st, "message": m} for name, (st, m) in refusals.items()})


@sim_router.put("/behaviour")
async def put_behaviour(request: Request) -> Response:
    """``{"errorShape": "message" | "errors", "refusedEntries": {entry: reason}}``: where a 400 puts
    refused URL entries, and the entries refused one by one whatever the grammar says (each optional)."""
    body = await _json_body(request)
    tenant = _tenant(request)
    if not isinstance(body, dict):
        return v2_error(400, "a JSON object is expected")
    shape = body.get("errorShape", tenant.error_shape)
    if shape not in ("message", "errors"):
        return v2_error(400, "errorShape must be 'message' or 'errors'")
    refused = body.get("refusedEntries", tenant.urllists.refused_entries)
    if not isinstance(refused, dict) or not all(isinstance(v, str) and v for v in refused.values()):
        return v2_error(400, "refusedEntries must map entries to reasons")
    tenant.error_shape = shape
    tenant.urllists.refused_entries = dict(refused)
    return JSONResponse({"errorShape": shape, "refusedEntries": refused})


@sim_router.post("/filehashlists")
async def create_file_hash_list(request: Request) -> Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        return v2_error(400, "request body must be a JSON object")
    name = body.get("name")
    created = _tenant(request).filehashlists.create(name, body.get("pending_change") is True)
    return JSONResponse({"name": name, "created": created}, status_code=201 if created else 200)


@sim_router.post("/alerts")
async def enqueue_alerts(request: Request) -> Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        return v2_error(400, "request body must be a JSON object")
    total = _tenant(request).alerts.enqueue(body.get("type"), body.get("alerts"), time.time())
    return JSONResponse({"type": body["type"], "enqueued": len(body["alerts"]), "total": total})


@sim_router.get("/export")
async def get_export(request: Request) -> Response:
    return JSONResponse(_tenant(request).alerts.settings())


@sim_router.put("/export")
async def put_export(request: Request) -> Response:
    body = await _json_body(request)
    try:
        change = ExportIn.model_validate(body)
    except ValidationError as exc:
        return _invalid(exc)
    return JSONResponse(_tenant(request).alerts.configure(change))


@sim_router.get("/requests")
async def requests_log(request: Request, since: int = 0, path_prefix: str = "") -> Response:
    return JSONResponse(_tenant(request).requests.snapshot(since, path_prefix))


@sim_router.post("/reset")
async def reset(request: Request) -> Response:
    _tenant(request).reset()
    log.info("tenant reset")
    return JSONResponse({"status": "reset"})


# ---------------------------------------------------------------------------- middleware


def _fault_response(kind: str, path: str, retry_after: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of an injected error."""
    if kind == "502":
        # What a gateway in front of the tenant answers: HTML, not the API's JSON.
        body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return 502, [(b"content-type", b"text/html; charset=utf-8")], body
    status = int(kind)
    headers = [(b"content-type", b"application/json")]
    if status == 429:
        headers.append((b"retry-after", str(retry_after).encode()))
    message = "too many requests" if status == 429 else "internal server error"
    if path.startswith("/api/v1/"):
        payload: dict[str, Any] = {"status": "error", "errorCode": V1_ERROR_CODE, "errors": [message]}
    else:
        payload = {"status": "error", "message": message}
    return status, headers, json.dumps(payload).encode()


async def _drop_connection(receive: Receive, send: Send) -> None:
    """Close the connection without a byte of answer: the client sees a transport error.

    Under uvicorn, ``receive`` is a method of the request cycle, which holds the connection's
    transport; aborting it is a real dropped connection. Elsewhere, start an answer and never end
    it, which ASGI servers turn into a closed connection (a truncated answer)."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
        # Let the server notice the lost connection before we return, so it sends nothing.
        for _ in range(3):
            await asyncio.sleep(0)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})


class NetworkSimulation:
    """Logs every tenant API request and injects the faults set with ``PUT /_sim/faults``.

    Faults apply before the route runs (429, 500, 502, drop: the request has no effect), except a
    timeout: the route runs (the change happens) and the answer is held back longer than a client
    waits, the nastiest case for a client's retry logic."""

    def __init__(self, app: ASGIApp, tenant: Tenant) -> None:
        self.app = app
        self.tenant = tenant

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        tenant = self.tenant
        started = time.monotonic()
        at = time.time()
        method = scope["method"]
        query = _TOKEN_IN_QUERY.sub(r"\1***", scope.get("query_string", b"").decode("latin-1"))
        fault: str | None = None
        faults = tenant.faults
        config = faults.config
        if faults.applies(path):
            fault = faults.draw()
            if config.latency_ms:
                await asyncio.sleep(config.latency_ms / 1000)

        def record(status: int | None) -> None:
            tenant.requests.add(method, path, query, status, fault, at, (time.monotonic() - started) * 1000)

        if fault in ("429", "500", "502"):
            status, headers, body = _fault_response(fault, path, config.retry_after)
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            record(status)
            return
        if fault == "drop":
            record(None)
            await _drop_connection(receive, send)
            return

        held: list[Message] = []
        status_seen: list[int] = []

        async def forward(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(int(message["status"]))
            if fault == "timeout":
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(scope, receive, forward)
        finally:
            record(status_seen[0] if status_seen else None)
        if fault == "timeout":
            await asyncio.sleep(tenant.timeout_seconds())
            for message in held:
                await send(message)
