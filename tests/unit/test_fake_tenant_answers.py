"""The fake tenant's URL-list answers are written by orjson: the bytes are JSONResponse's."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.responses import JSONResponse

from fake_tenant.domain import UrlLists
from fake_tenant.handlers import ListResponse


def test_url_list_answers_are_the_bytes_jsonresponse_writes() -> None:
    lists = UrlLists(max_bytes=7 * 1024 * 1024, max_entries=300_000)
    urls = ["a.com", "*.b.example", "10.0.0.0/8", "c.example/path?q=1"]
    lists.create({"name": "L", "data": {"urls": urls, "type": "exact"}}, time.time())
    lists.deploy()
    replaced = lists.patch(1, "replace", {"data": {"urls": urls[1:], "type": "exact"}}, time.time())
    answers = [replaced, lists.listing("id,name,data"), lists.listing(), lists.get(1), lists.deploy()]
    for answer in answers:
        assert ListResponse(answer).body == JSONResponse(answer).body


@pytest.mark.parametrize(
    "content",
    [
        {"name": 'quo"te \\ back', "data": {"urls": ["bücher.de", "日本.jp", "\U0001f600.example"]}},
        [{"id": 1, "pending": 0, "urls": ["tab\there", "ctl\x01\x1f", "del\x7f", "sep\u2028\u2029"]}],
        {"status": "error", "message": [["a.com", "Invalid host"]], "empty": [], "none": None, "yes": True},
    ],
)
def test_the_rendering_escapes_as_jsonresponse_does(content: Any) -> None:
    assert ListResponse(content).body == JSONResponse(content).body
