"""The API's answers as the tests saw them, to show that a refactor left the wire format alone.

With ``CTE_TEST_WIRE_LOG=<file>`` set, every answer of this project's API that a test receives through
httpx is appended to the file as one JSON line: method, route, status, content type and the body as
sent. Values that differ from run to run (digits, random tokens) are masked so that two runs of the
same tests can be compared line by line, while everything the refactor could change stays visible:
key order, field names, null against absent, ``Z`` against ``+00:00``, spacing.

Compare two logs (one taken before the change, one after) with::

    uv run --frozen python -m tests.support.wire BEFORE AFTER
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

# Our API's paths; the fake tenant's /api/v1 and /api/v2 are not ours. The OpenAPI document gains
# schemas on purpose, and Swagger UI's page is not an answer a client parses.
_OURS = re.compile(r"^/api/(?!v1/|v2/|openapi\.json|docs)")
_TOKENS = re.compile(r"[A-Za-z0-9_\-.]{24,}")
_DIGITS = re.compile(r"\d+")
# The tests' random name suffixes (secrets.token_hex): short hexadecimal words with a digit and a letter.
_HEX = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{4,8}\b")
_lock = threading.Lock()


def mask(text: str) -> str:
    return _DIGITS.sub("0", _HEX.sub("<hex>", _TOKENS.sub("<token>", text)))


def _record(log: Path, response: httpx.Response) -> None:
    request = response.request
    if not _OURS.match(request.url.path):
        return
    try:
        body = response.read().decode("utf-8", "replace")
    except httpx.ResponseNotRead:  # a streamed answer the test reads itself
        return
    line = {
        "method": request.method,
        "route": mask(request.url.path),
        "query": sorted(mask(k) for k in request.url.params),
        "status": response.status_code,
        "type": response.headers.get("content-type", ""),
        "body": mask(body),
    }
    with _lock, log.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")


def install() -> None:
    """Wraps httpx's send so every client the tests make records answers, when the variable is set."""
    target = os.environ.get("CTE_TEST_WIRE_LOG")
    if not target:
        return
    log = Path(target)
    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = sync_send(self, request, **kwargs)
        if not kwargs.get("stream"):
            _record(log, response)
        return response

    async def asend(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = await async_send(self, request, **kwargs)
        if not kwargs.get("stream"):
            _record(log, response)
        return response

    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]


def _answers(path: Path) -> set[str]:
    # Masked again: a log taken with an older mask compares with one taken with this one.
    return {mask(line) for line in path.read_text(encoding="utf-8").splitlines()}


def _operation(line: str) -> tuple[str, str]:
    answer = json.loads(line)
    return answer["method"], answer["route"]


def main(before: str, after: str) -> int:
    """Writes the distinct answers that only one log has; exit 1 if there are any.

    Sets, not counts: tests that poll until a condition holds make a different number of calls each run.
    Answers read while the pipeline was still catching up can differ between runs too, so a difference is
    a place to look, not yet a verdict.
    """
    old, new = _answers(Path(before)), _answers(Path(after))
    both = {_operation(x) for x in old} & {_operation(x) for x in new}
    out = sys.stdout
    out.write(f"{len(old)} distinct answers before, {len(new)} after; {len(both)} operations in both\n")
    for name, lines in (("only before", old - new), ("only after", new - old)):
        for line in sorted(lines):
            out.write(f"{name}: {line}\n")
    return 1 if old != new else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
