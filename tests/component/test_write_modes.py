"""The write modes of the indicator writes: by default (the reference's semantics) answered once the read
model shows the write, with the stored indicators in request order, or 202 past the bound with what was
accepted; ``wait=false`` at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest

from tests.support.component import System

PATH = "/api/cte/indicators/"


@pytest.fixture(scope="module", autouse=True)
async def source(system: System) -> None:
    await system.configure({"name": "Modes"})
    assert (await system.api.post("/api/cte/tags", json={"name": "mode_tag"})).status_code == 200
    await system.apply_pending()


@contextmanager
def default_mode(system: System) -> Iterator[None]:
    """Writes without the ``wait`` parameter the component client adds."""
    params = system.api.params
    system.api.params = {}  # type: ignore[assignment]
    try:
        yield
    finally:
        system.api.params = params


@asynccontextmanager
async def bound(system: System, seconds: float) -> AsyncIterator[None]:
    before = system.api_settings.wait_timeout_seconds
    system.api_settings.wait_timeout_seconds = seconds
    try:
        yield
    finally:
        system.api_settings.wait_timeout_seconds = before


async def test_a_default_write_answers_with_the_stored_indicators_in_request_order(system: System) -> None:
    values = ["zz.modes.example", "aa.modes.example", "mm.modes.example"]
    with default_mode(system):
        r = await system.answered_after_apply(
            system.api.post(PATH, json=[{"value": v, "type": "domain", "source": "Modes"} for v in values])
        )
        assert r.status_code == 201, r.text
        assert [i["value"] for i in r.json()] == values
        r = await system.answered_after_apply(
            system.api.patch(
                PATH, json={"value": "aa.modes.example", "type": "domain", "source": "Modes", "reputation": 9}
            )
        )
    assert r.status_code == 201, r.text
    assert (r.json()["externalHits"], r.json()["sources"][0]["reputation"]) == (2, 9)


async def test_past_the_bound_a_default_write_answers_202_with_what_was_accepted(system: System) -> None:
    body = [{"value": "late.modes.example", "type": "domain", "source": "Modes"}]
    async with bound(system, 0.1):
        with default_mode(system):
            r = await system.api.post(PATH, json=body)  # nobody applies the topic meanwhile
            assert r.status_code == 202, r.text
            assert r.json()[0]["value"] == "late.modes.example"
            await system.apply_pending()  # ... it is durable: the read model shows it once applied
            assert await system.indicator("late.modes.example") is not None
            r = await system.api.patch(PATH, json={**body[0], "reputation": 3})
            assert (r.status_code, r.json()["sources"][0]["reputation"]) == (202, 3)
            r = await system.api.patch(
                f"{PATH}bulk", json={"locator": {"values": ["late.modes.example"]}, "tags": {"add": ["mode_tag"]}}
            )
            assert (r.status_code, r.json()) == (202, {"updated": 1})
            await system.apply_pending()
    item = await system.indicator("late.modes.example")
    assert item is not None
    assert (item["externalHits"], item["tags"]) == (2, ["mode_tag"])


async def test_wait_false_answers_at_once_and_wait_true_past_the_bound_is_504(system: System) -> None:
    body = [{"value": "fast.modes.example", "type": "domain", "source": "Modes"}]
    r = await system.api.post(PATH, json=body)  # the component client's wait=false
    assert r.status_code == 201
    assert await system.indicator("fast.modes.example") is None
    async with bound(system, 0.1):
        r = await system.api.post(PATH, params={"wait": "true"}, json=body)
    assert r.status_code == 504
    await system.apply_pending()
