"""Fixtures of the browser tests: Debian's chromium driven by Playwright for Python."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # `make install` installs Debian's chromium; Playwright's own browser download is never used.
    # Per module, and to be named after the module's service fixtures: Playwright's sync API runs an event
    # loop of its own while the browser is open, and async fixtures cannot be set up meanwhile.
    assert CHROMIUM, "chromium is not installed (make install installs it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()
