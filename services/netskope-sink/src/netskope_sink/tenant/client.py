"""The Netskope tenant's REST API, as the sink calls it: URL lists (v2), file hash lists (v1).

Every call goes through the tenant's request budget (a sliding window per API version, shared by every
sink replica) and retries 429, 5xx and transport failures with exponential backoff and jitter, honouring
Retry-After; other 4xx are answers, not failures. When the attempts run out the error propagates and the
list stays due.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpcore  # noqa: F401 (httpx imports it with its first client: at start, not in the first push)
import httpx
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from cte_common.crypto import SecretBox
from cte_common.db import Pool
from netskope_sink.metrics import TENANT_REQUESTS, TENANT_RETRIES
from netskope_sink.settings import Settings
from netskope_sink.tenant import repository
from netskope_sink.tenant.domain import rate_limit_pause, sliding_window
from netskope_sink.tenant.schemas import TenantConnection

log = logging.getLogger(__name__)

Api = Literal["v1", "v2"]


class RequestBudget:
    """At most ``requests`` calls to one tenant's API in any ``period`` seconds, counted over every
    sink replica: the recent calls are kept in PostgreSQL by the database's clock, and a replica takes
    the row's lock to decide (domain.sliding_window). A sliding window, as the tenant counts; a leaky
    bucket would let a full burst and its refill into one window.

    ``margin`` widens the window a little: the tenant stamps arrivals, and a call may reach it a few
    milliseconds after it was counted here."""

    def __init__(self, pool: Pool, tenant: str, api: str, requests: int, period: float, margin: float = 0.1) -> None:
        self.pool = pool
        self.tenant = tenant
        self.api = api
        self.requests = requests
        self.period = period + margin
        self.lock = asyncio.Lock()  # this process's callers queue here, first come, first served

    async def __aenter__(self) -> None:
        async with self.lock:
            while True:
                async with self.pool.acquire() as conn, conn.transaction():
                    sent, now = await repository.lock_budget(conn, self.tenant, self.api)
                    decision = sliding_window(sent, now, self.requests, self.period)
                    if decision.sent != sent:
                        await repository.save_budget(conn, self.tenant, self.api, decision.sent)
                if decision.wait_seconds == 0:
                    return
                await asyncio.sleep(decision.wait_seconds)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


def tenant_budgets(settings: Settings, pool: Pool, tenant: str) -> dict[Api, RequestBudget]:
    """One tenant's budgets, for every client of it in the process (pushes and polls)."""
    return {
        "v1": RequestBudget(pool, tenant, "v1", settings.v1_requests, settings.v1_period_seconds),
        "v2": RequestBudget(pool, tenant, "v2", settings.v2_requests, settings.v2_period_seconds),
    }


class TenantError(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class TenantUnavailable(TenantError):
    """One attempt failed with a 429, a 5xx or a transport error (status None): whether the tenant
    acted on it is unknown, except for a 429, which the tenant refused before doing anything."""

    def __init__(self, status: int | None, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class UrlListHeld:
    """A URL list as the tenant answers it."""

    id: int
    type: str
    urls: list[str]


class TenantClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        v1_token: str | None,
        v2_token: str | None,
        limiters: Mapping[Api, AbstractAsyncContextManager[None]],
        verify: bool | ssl.SSLContext = True,
        use_proxy: bool = False,
        attempts: int = 5,
        timeout: float = 30.0,
        backoff_max: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.v1_token = v1_token
        self.v2_token = v2_token
        self.limiters = limiters
        self.attempts = attempts
        self.backoff_max = backoff_max
        # trust_env reads the system proxy (HTTP(S)_PROXY): the configuration's "Use System Proxy".
        self.http = httpx.AsyncClient(
            base_url=base_url, verify=verify, trust_env=use_proxy, timeout=timeout, transport=transport
        )
        # Per dataexport endpoint: when (monotonic) its RateLimit headers allow the next call.
        self.export_not_before: dict[str, float] = {}

    async def close(self) -> None:
        await self.http.aclose()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TenantUnavailable) and exc.retry_after is not None:
            return exc.retry_after
        return float(wait_random_exponential(multiplier=0.5, max=self.backoff_max)(state))

    async def request(self, api: Api, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, retried on a 429, a 5xx or a transport error (see the module docstring)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(TenantUnavailable),
            reraise=True,
            before_sleep=lambda s: TENANT_RETRIES.labels(self.name, api).inc(),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self.request_once(api, method, path, **kwargs)
        except TenantUnavailable as exc:
            raise TenantError(exc.status, f"gave up after {self.attempts} attempts: {exc}") from None
        raise AssertionError("unreachable")

    async def request_once(
        self,
        api: Api,
        method: str,
        path: str,
        budget: AbstractAsyncContextManager[None] | None = None,
        on_answer: Callable[[httpx.Response], None] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One attempt within the budget (and within ``budget``, an endpoint's own, when given), never
        retried: for a call that is not idempotent (the alert iterator's ``next``), whose caller decides
        what to do when the answer is lost. ``on_answer`` sees every answer (its headers). A 429, a 5xx
        or a transport error raises TenantUnavailable; other answers are returned."""
        headers = dict(kwargs.pop("headers", {}))
        if api == "v2":
            if not self.v2_token:
                raise TenantError(None, "V2 API token is missing")
            headers["Netskope-Api-Token"] = self.v2_token
        async with budget or contextlib.nullcontext(), self.limiters[api]:
            try:
                response = await self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                TENANT_REQUESTS.labels(self.name, api, "transport_error").inc()
                raise TenantUnavailable(None, f"{type(exc).__name__}: {exc}") from exc
        TENANT_REQUESTS.labels(self.name, api, str(response.status_code)).inc()
        if on_answer is not None:
            on_answer(response)
        if response.status_code == 429 or response.status_code >= 500:
            header = response.headers.get("retry-after", "").strip()
            retry_after = min(float(header), self.backoff_max) if header.isdigit() else None
            raise TenantUnavailable(response.status_code, f"HTTP {response.status_code}", retry_after)
        return response

    # Alert export, REST v2 (the dataexport iterator)

    async def export_alerts(
        self, alert_type: str, index: str, operation: str, budget: AbstractAsyncContextManager[None] | None = None
    ) -> dict[str, Any]:
        """One call of the iterator ``index``: {ok, result: [alerts], wait_time, timestamp_hwm}.

        ``next`` moves the tenant's cursor, so it is not retried blindly: a 429 (refused, nothing
        happened) is retried after its Retry-After; a 5xx or a lost answer raises TenantUnavailable,
        and the caller asks ``resend`` to learn which page the tenant answered last. Every other
        operation (resend, head, tail, an epoch) is idempotent and retried like any call.

        Pacing: every attempt goes through ``budget`` (the endpoint's request budget: Netskope allows 4
        requests per second per dataexport endpoint), and waits while the endpoint's last answer said
        ``RateLimit-Remaining: 0``, for its ``RateLimit-Reset``.
        """
        path = f"/api/v2/events/dataexport/alerts/{alert_type}"
        params = {"index": index, "operation": operation}
        paced = _Paced(self, path, budget)
        if operation != "next":
            response = await self.request("v2", "GET", path, params=params, budget=paced, on_answer=paced.note)
        else:
            attempt = 0
            while True:
                attempt += 1
                try:
                    response = await self.request_once(
                        "v2", "GET", path, params=params, budget=paced, on_answer=paced.note
                    )
                    break
                except TenantUnavailable as exc:
                    if exc.status != 429 or attempt >= self.attempts:
                        raise
                    TENANT_RETRIES.labels(self.name, "v2").inc()
                    backoff = min(2.0**attempt, self.backoff_max)
                    await asyncio.sleep(exc.retry_after if exc.retry_after is not None else backoff)
        _expect(response, 200)
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("result"), list):
            raise TenantError(response.status_code, f"unexpected alert export answer: {response.text[:200]}")
        return body

    # URL lists, REST v2

    async def url_lists(self) -> dict[str, int]:
        r = await self.request("v2", "GET", "/api/v2/policy/urllist", params={"field": "id,name"})
        _expect(r, 200)
        return {item["name"]: int(item["id"]) for item in r.json()}

    async def url_lists_with_data(self) -> dict[str, UrlListHeld]:
        """Every URL list with its entries (``field=id,name,data``), as the next deploy will leave it."""
        r = await self.request("v2", "GET", "/api/v2/policy/urllist", params={"field": "id,name,data"})
        _expect(r, 200)
        out = {}
        for item in orjson.loads(r.content):
            data = item.get("data") or {}
            urls = [u for u in data.get("urls") or [] if isinstance(u, str)]
            out[item["name"]] = UrlListHeld(int(item["id"]), str(data.get("type") or "exact"), urls)
        return out

    async def url_list_entries(self, list_id: int) -> list[str]:
        """One URL list's entries, as the next deploy will leave it."""
        r = await self.request("v2", "GET", f"/api/v2/policy/urllist/{list_id}")
        _expect(r, 200)
        data = orjson.loads(r.content).get("data") or {}  # (7 MB at 190,000 entries: orjson, not json)
        return [u for u in data.get("urls") or [] if isinstance(u, str)]

    # ``urls``: the entries as an encoded JSON array, built by the caller from a cursor (a list at its
    # cap is megabytes; no entry object is kept).

    async def create_url_list(self, name: str, urls: bytes, kind: str) -> httpx.Response:
        body = b'{"name": %s, "data": {"urls": %s, "type": %s}}' % (_json(name), urls, _json(kind))
        return await self.request("v2", "POST", "/api/v2/policy/urllist", content=body, headers=_JSON)

    async def change_url_list(self, list_id: int, mode: str, urls: bytes, kind: str) -> httpx.Response:
        body = b'{"data": {"urls": %s, "type": %s}}' % (urls, _json(kind))
        return await self.request(
            "v2", "PATCH", f"/api/v2/policy/urllist/{list_id}/{mode}", content=body, headers=_JSON
        )

    async def deploy(self) -> None:
        _expect(await self.request("v2", "POST", "/api/v2/policy/urllist/deploy"), 200)

    # File hash lists, REST v1

    async def update_file_hash_list(self, name: str, hashes: bytes) -> Any:
        """``hashes``: the comma-separated hashes as an encoded JSON string."""
        if not self.v1_token:
            raise TenantError(None, "V1 API token is missing")
        body = b'{"name": %s, "list": %s, "token": %s}' % (_json(name), hashes, _json(self.v1_token))
        r = await self.request("v1", "POST", "/api/v1/updateFileHashList", content=body, headers=_JSON)
        _expect(r, 200)
        return r.json()


class TenantClients:
    """The clients of the tenants, built from stored connections: one per tenant and connection
    settings, kept while those stay the same. Every client of a tenant in the process (pushes and
    polls) goes through the same request budgets, ``limiters``.

    ``transport`` carries every client's requests instead of the network: tests pass an in-process
    tenant app's (httpx.ASGITransport); None, as the service runs, is the network."""

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        limiters: dict[str, dict[Api, RequestBudget]],
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.limiters = limiters
        self.timeout = timeout
        self.transport = transport
        self.secrets = SecretBox(settings.secrets_key.get_secret_value() if settings.secrets_key else None)
        self.clients: dict[tuple[object, ...], TenantClient] = {}
        # The TLS settings of every client, made at start (loading the CA bundle takes tens of ms of
        # CPU, which a tenant's first push would pay otherwise) and shared: as httpx makes them, the
        # system's CA bundle (SSL_CERT_FILE, SSL_CERT_DIR) read only with "Use System Proxy".
        self.tls = {
            (verify, use_proxy): httpx.create_ssl_context(verify=verify, trust_env=use_proxy)
            for verify in (True, False)
            for use_proxy in (True, False)
        }

    def get(self, connection: TenantConnection) -> TenantClient:
        tenant = connection.tenant
        v1 = self.secrets.decrypt(connection.v1_token_encrypted) if connection.v1_token_encrypted else None
        v2 = self.secrets.decrypt(connection.v2_token_encrypted) if connection.v2_token_encrypted else None
        key = (tenant, connection.base_url, v1, v2, connection.verify, connection.proxy)
        client = self.clients.get(key)
        if client is None:
            limiters = self.limiters.setdefault(tenant, tenant_budgets(self.settings, self.pool, tenant))
            client = TenantClient(
                tenant,
                connection.base_url,
                v1_token=v1,
                v2_token=v2,
                limiters=limiters,
                verify=self.tls[(connection.verify, connection.proxy)],
                use_proxy=connection.proxy,
                attempts=self.settings.request_attempts,
                timeout=self.timeout,
                backoff_max=self.settings.backoff_max_seconds,
                transport=self.transport,
            )
            self.clients[key] = client
        return client

    async def close(self) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self.clients.clear()


_JSON = {"Content-Type": "application/json"}


def _json(value: str) -> bytes:
    return json.dumps(value).encode()


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status and not (status == 200 and response.status_code == 201):
        raise TenantError(response.status_code, response.text[:500])


class _Paced:
    """One endpoint's pacing around each attempt: wait out what its last answer's RateLimit headers
    asked, go through its request budget, and note what this answer's headers ask."""

    def __init__(self, client: TenantClient, endpoint: str, budget: AbstractAsyncContextManager[None] | None) -> None:
        self.client = client
        self.endpoint = endpoint
        self.budget = budget or contextlib.nullcontext()

    async def __aenter__(self) -> None:
        pause = self.client.export_not_before.get(self.endpoint, 0.0) - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        await self.budget.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.budget.__aexit__(exc_type, exc, tb)

    def note(self, response: httpx.Response) -> None:
        pause = rate_limit_pause(response.headers, self.client.backoff_max)
        if pause:
            self.client.export_not_before[self.endpoint] = time.monotonic() + pause
