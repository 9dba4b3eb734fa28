"""The web console in a real browser (Debian's chromium, driven by Playwright): the seed's whole workflow,
as a person does it in Cloud Exchange's interface, against every service as a real process on a namespace
of its own (the first administrator's password changes here). Each page's screenshot goes to
docs/screenshots/ under `make screenshots`. Nothing the console loads comes from outside the stack."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Env, Pipeline, open_env, run_pipeline, run_services
from tests.support.stack import Stack
from tests.support.waiting import eventually

# The screenshots in docs/ are refreshed with `make screenshots` (CTE_UPDATE_SCREENSHOTS=1); any other
# run takes them all the same, into a temporary folder, so a test run leaves the working tree as it was.
DOC_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SCREENSHOTS = (
    DOC_SCREENSHOTS
    if os.environ.get("CTE_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="cte-console-screenshots-"))
)
NEW_PASSWORD = "Console-" + secrets.token_hex(8)
VIEWER_PASSWORD = "Reader-" + secrets.token_hex(8)
LIST = "DW-URLs"
SEVERITIES = "unknown, low, medium, high, critical"


@pytest.fixture(scope="module")
async def console_env(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async with open_env(stack, tmp_path_factory.mktemp("console-logs")) as e:
        yield e


@pytest.fixture(scope="module")
def console_stack(console_env: Env) -> Iterator[Pipeline]:
    with run_services(console_env) as services, run_pipeline(console_env, services) as pipeline:
        yield pipeline


@dataclass
class Console:
    page: Page
    url: str
    hosts: set[str]

    def go(self, *nav: str) -> None:
        """Follow the main navigation, as a person would."""
        for label in nav:
            self.page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()
        expect(self.page.get_by_role("heading", level=1, name=nav[-1], exact=True)).to_be_visible()

    def shot(self, name: str) -> None:
        self.page.wait_for_load_state("networkidle")
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    def sign_in(self, username: str, password: str) -> None:
        self.page.goto(f"{self.url}/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password", exact=True).fill(password)
        self.page.get_by_role("button", name="Sign in").click()


def open_console(browser: Browser, url: str) -> Console:
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.set_default_timeout(20_000)
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    return Console(page, url, hosts)


def field(page: Page, label: str) -> object:
    """The form field around the control labelled ``label`` (where the API's message is shown)."""
    return page.locator(".field").filter(has=page.get_by_label(label, exact=True))


def test_the_seed_workflow_in_the_console(console_stack: Pipeline, browser: Browser) -> None:
    url, tenant_url = console_stack.api_url, console_stack.tenant_url
    c = open_console(browser, url)
    page = c.page

    # Sign in as the first administrator, who must change the password first.
    # By keyboard: Tab from field to field, Enter signs in.
    page.goto(f"{url}/")
    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.keyboard.type(ADMIN_PASSWORD)
    c.shot("sign-in")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    page.get_by_label("Current password").fill(ADMIN_PASSWORD)
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("Confirm new password").fill("short")
    page.get_by_role("button", name="Change password").click()
    # The API's policy message, next to the field; what was typed stays.
    expect(field(page, "New password")).to_contain_text("at least")  # type: ignore[arg-type]
    expect(page.get_by_label("Current password")).to_have_value(ADMIN_PASSWORD)
    c.shot("change-password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirm new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()

    # Threat Exchange > Plugins: the API Source "DW". A refused value is shown at its field, the rest kept.
    c.go("Plugins")
    page.get_by_role("button", name="Add API Source").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Configuration Name").fill("DW")
    dialog.get_by_label("Override Reputation").fill("11")
    dialog.get_by_role("button", name="Save").click()
    expect(field(page, "Override Reputation")).to_contain_text("less than or equal to 10")  # type: ignore[arg-type]
    expect(dialog.get_by_label("Configuration Name")).to_have_value("DW")
    dialog.get_by_label("Override Reputation").fill("5")
    expect(dialog.get_by_label("Enable SSL Verification")).to_be_checked()
    c.shot("plugins-api-source")
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text="API Source").filter(has_text="DW")).to_be_visible()

    # Settings > API Tokens: the Client Secret is shown once.
    c.go("API Tokens")
    page.get_by_role("button", name="Create New Token").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Description")).to_be_focused()  # a dialog takes the focus
    page.keyboard.type("DW feed")
    dialog.get_by_label("Expires after").select_option(label="30 days")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.get_by_text("shown only once")).to_be_visible()
    client_id = dialog.get_by_label("Client ID").input_value()
    client_secret = dialog.get_by_label("Client Secret").input_value()
    assert client_id
    assert len(client_secret) >= 20
    c.shot("api-tokens-created")
    dialog.get_by_role("button", name="Close").click()
    expect(page.get_by_role("row").filter(has_text="DW feed")).to_contain_text(client_id)
    assert client_secret not in page.content()
    c.shot("api-tokens")

    # Settings > Netskope Tenants: the fake tenant; its tokens are never shown back.
    c.go("Netskope Tenants")
    page.get_by_role("button", name="Add Tenant").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Tenant Name").fill("fake")
    dialog.get_by_label("Tenant URL").fill(tenant_url)
    dialog.get_by_label("V1 API Token").fill("fake-v1-token")
    dialog.get_by_label("V2 API Token").fill("fake-v2-token")
    dialog.get_by_role("button", name="Save").click()
    row = page.get_by_role("row").filter(has_text="fake")
    expect(row).to_contain_text("set")
    assert "fake-v2-token" not in page.content()
    c.shot("netskope-tenants")

    # The Netskope plugin in two steps.
    c.go("Plugins")
    page.get_by_role("button", name="Add Netskope").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Configuration Name").fill("Netskope")
    dialog.get_by_label("Tenant", exact=True).select_option("fake")
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.get_by_label("Enable Polling")).to_be_visible()
    dialog.get_by_label("Type of Threat Data").select_option("URL")
    c.shot("plugins-netskope")
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text="Netskope").filter(has_text="fake")).to_be_visible()
    c.shot("plugins")

    # Business Rules: "Every Severity" from the builder, whose query text is shown beside it.
    c.go("Business Rules")
    page.get_by_role("button", name="Create Business Rule").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name", exact=True).fill("Every Severity")
    dialog.get_by_role("button", name="Add condition").click()
    dialog.get_by_label("Field of condition 1").select_option("severity")
    dialog.get_by_label("Operator of condition 1").select_option("IN")
    dialog.get_by_label("Value of condition 1").fill(SEVERITIES)
    expect(dialog.get_by_label("Query", exact=True)).to_have_value(
        'sources.severity IN ("unknown", "low", "medium", "high", "critical")'
    )
    c.shot("business-rules-builder")
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text="Every Severity")).to_contain_text("sources.severity IN")
    c.shot("business-rules")

    # Sharing: DW through "Every Severity" to a URL list; the change it would make, before saving.
    c.go("Sharing")
    page.get_by_role("button", name="Add Sharing Configuration").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Source Configuration").select_option("DW")
    dialog.get_by_label("Business Rule").select_option("Every Severity")
    dialog.get_by_label("Destination Configuration").select_option("Netskope")
    dialog.get_by_label("Target").select_option(label="Add to URL List")
    dialog.get_by_label("List Name").fill(LIST)
    dialog.get_by_role("button", name="Preview changes").click()
    expect(dialog.get_by_test_id("would-add")).to_have_text("0")
    c.shot("sharing-preview")
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text=LIST).first).to_be_visible()

    # The feed, with the token made in the browser: POST www.dubya.com to DW with two tags.
    auth = httpx.post(
        f"{url}/api/auth",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
    )
    assert auth.status_code == 200, auth.text
    posted = httpx.post(
        f"{url}/api/cte/indicators/",
        params={"wait": "true"},
        headers={"Authorization": f"Bearer {auth.json()['access_token']}"},
        json=[{"value": "www.dubya.com", "type": "url", "source": "DW", "tags": ["test_tag", "test_tag2"]}],
    )
    assert posted.status_code == 201, posted.text

    # Threat IoCs: the last 7 days by default; remove one tag in bulk.
    c.go("Threat IoCs")
    row = page.locator('tr[data-value="www.dubya.com"]')
    expect(row.locator(".tags")).to_contain_text("test_tag2")
    c.shot("threat-iocs")
    row.get_by_role("button", name="www.dubya.com").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("row").filter(has_text="DW")).to_contain_text("test_tag")
    c.shot("threat-iocs-detail")
    dialog.get_by_role("button", name="Close").click()
    page.get_by_label("Select www.dubya.com").check()
    page.get_by_label("Tags", exact=True).fill("test_tag2")
    page.get_by_role("button", name="Remove tags").click()
    expect(page.get_by_text("Tags removed: done for 1 indicator(s).")).to_be_visible()
    expect(row.locator(".tag", has_text="test_tag2")).to_have_count(0)
    expect(row.locator(".tag", has_text="test_tag")).to_have_count(1)

    # The fake tenant's list holds it, and the console's list status agrees.
    tenant = httpx.Client(base_url=tenant_url, timeout=10)

    def deployed() -> list[str]:
        values = tenant.get("/_sim/state").json()["urllists"].get(LIST, {}).get("deployed", [])
        assert "www.dubya.com" in values, values
        return list(values)

    eventually(deployed, timeout=60)
    c.go("Sharing")

    def status_agrees() -> None:
        page.get_by_role("button", name="Refresh status").click()
        status_row = page.locator(f'table.list-status tr[data-list="{LIST}"]')
        expect(status_row).to_contain_text("OK", timeout=2_000)
        ours = [v for v in deployed() if v != "cedefaultpush.io"]
        expect(status_row.get_by_test_id("entries")).to_have_text(str(len(ours)), timeout=2_000)

    eventually(status_agrees, timeout=60, interval=1)
    c.shot("sharing")

    # Home: counts by type and source, and the list's figures.
    c.go("Home")
    expect(page.get_by_role("row").filter(has_text="url").first).to_contain_text("1")
    expect(page.get_by_test_id("failed-lists")).to_contain_text("none failed")
    expect(page.get_by_test_id("consumer-lag")).to_contain_text("rule-engine.indicators: 0")
    c.shot("home")

    # The other pages.
    c.go("Tags")
    c.shot("tags")
    c.go("Threat Exchange")
    c.shot("threat-exchange-settings")

    # Settings > Users: a read-only user for the next session.
    c.go("Users")
    page.get_by_role("button", name="Add User").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Username", exact=True).fill("viewer")
    dialog.get_by_label("Password", exact=True).fill(VIEWER_PASSWORD)
    dialog.get_by_label("Role").select_option("Read-only")
    dialog.get_by_label("Must change the password at next sign-in").uncheck()
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text="viewer")).to_contain_text("Read-only")
    c.shot("users")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Threat Exchange")).to_be_visible()
    assert c.hosts == {urlsplit(url).netloc}, f"requests left the stack: {c.hosts}"
    page.close()


def test_a_read_only_session_sees_no_write_actions(console_stack: Pipeline, browser: Browser) -> None:
    # Runs after the workflow above: the user "viewer" (Read-only) exists, and so does what was configured.
    c = open_console(browser, console_stack.api_url)
    page = c.page
    c.sign_in("viewer", VIEWER_PASSWORD)
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()
    expect(page.get_by_text("viewer (Read-only)")).to_be_visible()

    c.go("Threat IoCs")
    expect(page.locator('tr[data-value="www.dubya.com"]')).to_be_visible()
    expect(page.get_by_role("button", name="Remove tags")).to_have_count(0)
    expect(page.get_by_label("Select www.dubya.com")).to_have_count(0)
    c.shot("read-only-threat-iocs")
    c.go("Plugins")
    expect(page.get_by_role("row").filter(has_text="DW")).to_be_visible()
    expect(page.get_by_role("button", name="Add API Source")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete DW")).to_have_count(0)
    c.go("Business Rules")
    expect(page.get_by_role("button", name="Create Business Rule")).to_have_count(0)
    c.go("Sharing")
    expect(page.get_by_role("button", name="Add Sharing Configuration")).to_have_count(0)
    c.go("Netskope Tenants")
    expect(page.get_by_role("button", name="Add Tenant")).to_have_count(0)
    c.go("Threat Exchange")
    expect(page.get_by_label("Merge criterion")).to_be_disabled()

    page.close()


def test_an_answer_403_is_shown_plainly(console_stack: Pipeline, browser: Browser) -> None:
    # The administrator makes a role without the settings scopes, and a user with it ...
    url = console_stack.api_url
    c = open_console(browser, url)
    page = c.page
    c.sign_in(ADMIN_USERNAME, NEW_PASSWORD)
    c.go("Users")
    page.get_by_role("button", name="Add Role").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Role name").fill("Analyst")
    expect(dialog.get_by_label("Read Threat Exchange", exact=False)).to_be_checked()
    expect(dialog.get_by_label("Read settings", exact=False)).not_to_be_checked()
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text="Analyst")).to_contain_text("me, api, cte_read")
    page.get_by_role("button", name="Add User").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Username", exact=True).fill("analyst")
    dialog.get_by_label("Password", exact=True).fill(VIEWER_PASSWORD)
    dialog.get_by_label("Role").select_option("Analyst")
    dialog.get_by_label("Must change the password at next sign-in").uncheck()
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text="analyst")).to_contain_text("Analyst")
    page.get_by_role("button", name="Sign out").click()

    # ... who opens a settings page by its address (the navigation hides it): the 403 reads plainly.
    c.sign_in("analyst", VIEWER_PASSWORD)
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Users")).to_have_count(0)
    page.goto(f"{url}/settings/users")
    expect(page.get_by_role("alert").first).to_contain_text("Not allowed: your role cannot do this")
    c.shot("forbidden")
    page.close()
