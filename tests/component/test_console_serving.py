"""The web console's files served by the ingest-api at "/": a built file, the app's page for a client
route, and every other route (the API's above all) keeping priority."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ingest_api.console.handlers import Console
from tests.support.component import System

PAGE = "<!doctype html><title>console</title>"


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(PAGE)
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    return tmp_path


async def get(app: Console, path: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        return await client.request(method, path)


async def test_files_and_client_routes(built: Path) -> None:
    app = Console(built)
    page = await get(app, "/settings/tokens")
    assert (page.status_code, page.text) == (200, PAGE)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    asset = await get(app, "/assets/index-abc123.js")
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]
    # A missing asset, a path outside the directory, the API's paths and writes are not the page.
    assert (await get(app, "/assets/index-old.js")).status_code == 404
    assert (await get(app, "/../pyproject.toml")).status_code == 404
    assert (await get(app, "/api/no-such-route")).status_code == 404
    assert (await get(app, "/settings", method="POST")).status_code == 404


async def test_an_unbuilt_console_says_how_to_build_it(tmp_path: Path) -> None:
    answer = await get(Console(tmp_path / "missing"), "/")
    assert answer.status_code == 503
    assert "make install" in answer.text


async def test_the_api_keeps_priority_over_the_console(system: System) -> None:
    assert (await system.api.get("/api/cte/tags")).status_code == 200
    assert (await system.api.get("/api/no-such-route")).status_code == 404
    assert (await system.api.post("/api/no-such-route")).status_code == 404
    docs = await system.api.get("/api/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text
    assert (await system.api.get("/healthz")).json() == {"status": "ok"}
