"""A PostgreSQL connection closed under a request is an outage (503 naming PostgreSQL); any other
asyncpg InterfaceError is a bug and stays a 500."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from ingest_api.main import create_app
from ingest_api.shared import CLOSED_CONNECTION


def _app_raising(message: str) -> httpx.AsyncClient:
    app = create_app()

    @app.get("/raise")
    async def raise_it() -> None:
        raise asyncpg.InterfaceError(message)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.mark.asyncio
async def test_a_connection_closed_under_a_request_is_a_503_naming_postgresql() -> None:
    async with _app_raising(CLOSED_CONNECTION) as client:
        r = await client.get("/raise")
    assert r.status_code == 503
    assert r.headers["Retry-After"]
    assert "PostgreSQL" in r.json()["detail"]


@pytest.mark.asyncio
async def test_a_connection_closed_before_a_transaction_ends_is_a_503() -> None:
    # What a transaction's exit raises when the server went away inside it (seen under the chaos suite).
    message = "cannot call Transaction.rollback(): the underlying connection is closed"
    async with _app_raising(message) as client:
        r = await client.get("/raise")
    assert r.status_code == 503
    assert "PostgreSQL" in r.json()["detail"]


@pytest.mark.asyncio
async def test_another_interface_error_stays_a_500() -> None:
    for message in (
        "cannot call Connection.fetch(): another operation is in progress",
        "cannot call Transaction.commit(): the underlying connection has been released back to the pool",
    ):
        async with _app_raising(message) as client:
            r = await client.get("/raise")
        assert r.status_code == 500
