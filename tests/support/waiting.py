"""Waiting for an asynchronous pipeline in tests: retry a check until it passes or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.2) -> T:
    """Call ``check`` until it stops failing; re-raise the last failure after ``timeout``.

    A failed assertion and an HTTP error both count as "not yet": a process that is still starting
    refuses connections before it answers.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)
