"""/api/docs in a real browser (Debian's chromium, driven by Playwright): Swagger UI renders the API's
OpenAPI document from the process's own assets, with no request leaving the stack, and its Authorize
button takes a token that the "Try it out" requests then carry."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Browser

from tests.conftest import BOOTSTRAP_ID, BOOTSTRAP_SECRET, Running


def test_swagger_ui_renders_every_operation_offline_and_authorizes_with_a_token(
    services: Running, browser: Browser
) -> None:
    api = urlsplit(services.api_url)
    page = browser.new_page()
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    page.goto(f"{services.api_url}/api/docs")
    page.wait_for_selector(".opblock", timeout=30_000)

    spec = httpx.get(f"{services.api_url}/api/openapi.json").json()
    operations = sum(1 for item in spec["paths"].values() for method in item if method != "parameters")
    assert page.locator(".opblock").count() == operations
    assert page.locator("text=Unable to render this definition").count() == 0
    assert hosts == {api.netloc}, f"requests left the stack: {hosts}"

    token = httpx.post(
        f"{services.api_url}/api/auth",
        data={"grant_type": "client_credentials", "client_id": BOOTSTRAP_ID, "client_secret": BOOTSTRAP_SECRET},
    ).json()["access_token"]
    page.click("button.authorize")
    bearer = page.locator(".auth-container").filter(has_text="bearer (http, Bearer)")
    bearer.locator("input").fill(token)
    bearer.locator("button.authorize").click()
    page.click("button.btn-done")

    # "Try it out" on the tags list: the browser's request carries the token and is answered 200.
    block = page.locator(".opblock-get").filter(has=page.locator('[data-path="/api/cte/tags"]')).first
    block.click()
    block.locator("button.try-out__btn").click()
    with page.expect_response(lambda r: urlsplit(r.url).path == "/api/cte/tags") as answer:
        block.locator("button.execute").click()
    assert answer.value.status == 200
    assert answer.value.request.headers["authorization"] == f"Bearer {token}"
    page.close()
