"""Decisions that never committed leave nothing on a list, and a catalog change waits for the decisions
in flight.

The rule-engine publishes a batch's share intents before it commits. When the commit fails, the sink
has applied intents the decisions do not hold; the retry decides against the committed decisions and,
if the catalog changed in between, publishes nothing for them. These tests make the first attempt fail
after its publish and check that the journal of uncommitted intents brings the list back to what the
committed decisions say.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cte_common.catalog_lock_repository import lock_catalog_for_decisions
from cte_common.db import Pool
from rule_engine import handlers, repository
from rule_engine.handlers import republish_dead_intents
from tests.support.component import System

RULE = "Every Severity"
LIST = "journal-tenant/url/journal-urls"
LIST_NAME = "journal-urls"


@pytest.fixture(scope="module", autouse=True)
async def sharing(system: System) -> dict[str, Any]:
    destination = await system.netskope_destination("journal-tenant")
    await system.configure({"name": "journal-src"})
    r = await system.api.post(
        "/api/cte/business_rules",
        json={"name": RULE, "filters": {"query": 'sources.severity IN ("unknown","low","medium","high","critical")'}},
    )
    assert r.status_code == 201, r.text
    shared = await system.share(
        {
            "sourceConfiguration": "journal-src",
            "businessRule": RULE,
            "destinationConfiguration": destination,
            "action": "url",
            "parameters": {"list": "create", "name": LIST_NAME},
        }
    )
    assert shared["listKey"] == LIST
    await system.apply_pending()
    return shared


async def deployed(system: System) -> set[str]:
    state = (await system.tenant.get("/_sim/state")).json()
    return set(state["urllists"].get(LIST_NAME, {}).get("deployed", []))


async def journal_rows(db: Pool) -> int:
    # (list, value) pairs journalled: a row holds a list's values of one attempt.
    return int(await db.fetchval("SELECT coalesce(sum(cardinality(indicator_values)), 0) FROM intent_journal"))


async def post_and_fail(system: System, monkeypatch: pytest.MonkeyPatch, value: str, module: object, name: str) -> None:
    """Post ``value`` and let the rule-engine apply it with ``module.name`` failing: its batch rolls back."""

    async def fails(*_: object) -> None:
        raise ConnectionResetError("the connection went away before the commit")

    r = await system.api.post(
        "/api/cte/indicators/?wait=false", json=[{"value": value, "type": "domain", "source": "journal-src"}]
    )
    assert r.status_code == 201, r.text
    with monkeypatch.context() as m:
        m.setattr(module, name, fails)
        with pytest.raises(ConnectionResetError):
            await system.apply_pending()


async def test_a_committed_batch_leaves_no_journal(system: System, db: Pool) -> None:
    await system.post_indicators([{"value": "kept.journal.example", "type": "domain", "source": "journal-src"}])
    assert {(i.value, i.add) for i in await system.share_intents()} == {("kept.journal.example", True)}
    assert await journal_rows(db) == 0
    await system.push_lists()
    assert "kept.journal.example" in await deployed(system)


async def test_intents_of_a_batch_that_did_not_commit_are_corrected(
    system: System, db: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    ghost = "h1.ghost.journal.example"
    # The first attempt decides under the catalog of the time (no allow-list entry), publishes its
    # intent and does not commit.
    await post_and_fail(system, monkeypatch, ghost, repository, "save_decisions")
    assert {(i.value, i.add) for i in await system.share_intents()} == {(ghost, True)}
    assert await journal_rows(db) == 1
    await system.push_lists()
    assert ghost in await deployed(system)  # the sink applied what was never committed

    # Before the retry, the catalog changes: the retry decides the value out of every list against
    # decisions that never held it, so it publishes nothing, and the re-evaluation finds nothing to undo.
    r = await system.api.post("/api/cte/allow_list", json={"kind": "suffix", "pattern": "ghost.journal.example"})
    assert r.status_code == 201, r.text
    assert await system.redeliver() > 0
    await system.apply_pending()
    assert await system.share_intents() == []
    assert await db.fetchval("SELECT count(*) FROM share_decisions WHERE value = $1", ghost) == 0
    assert ghost in await deployed(system)

    # Rows younger than the bound are left alone: their producer may still be delivering.
    assert await republish_dead_intents(system.pool, system.broker, system.topics, 3600) == 0
    assert await republish_dead_intents(system.pool, system.broker, system.topics, 0) == 1
    assert {(i.value, i.add) for i in await system.share_intents()} == {(ghost, False)}
    assert await journal_rows(db) == 0
    await system.push_lists()
    assert ghost not in await deployed(system)
    assert "kept.journal.example" in await deployed(system)


async def test_a_committed_decision_is_published_again_as_it_stands(
    system: System, db: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A removal published by a transaction that did not commit: the value is back on the list."""
    value = "kept.journal.example"

    async def commit_fails(*_: object) -> None:
        raise ConnectionResetError("the database went away before the commit")

    r = await system.api.request("DELETE", "/api/cte/indicators/bulk?wait=false", json={"values": [value]})
    assert r.status_code in (200, 201), r.text
    with monkeypatch.context() as m:
        m.setattr(repository, "save_decisions", commit_fails)
        with pytest.raises(ConnectionResetError):
            await system.apply_pending()
    assert {(i.value, i.add) for i in await system.share_intents()} == {(value, False)}
    await system.push_lists()
    assert value not in await deployed(system)
    assert await republish_dead_intents(system.pool, system.broker, system.topics, 0) == 1
    assert {(i.value, i.add) for i in await system.share_intents()} == {(value, True)}
    await system.push_lists()
    assert value in await deployed(system)
    # The deletion itself is still on the topic, not yet applied: once applied, the value leaves.
    assert await system.redeliver() > 0
    await system.apply_pending()
    assert {(i.value, i.add) for i in await system.share_intents()} == {(value, False)}
    assert await journal_rows(db) == 0


async def test_a_publish_that_fails_leaves_nothing_committed(
    system: System, db: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decisions are written while the intents are published: when the publish fails, the writes
    already done roll back with it, and the batch delivered again decides and publishes as if new."""
    value = "unpublished.journal.example"
    await post_and_fail(system, monkeypatch, value, handlers, "publish_intents")
    assert await db.fetchval("SELECT count(*) FROM share_decisions WHERE value = $1", value) == 0
    assert await db.fetchval("SELECT count(*) FROM indicators WHERE value = $1", value) == 0
    assert await journal_rows(db) == 1  # journalled before the publish began

    assert await system.redeliver() > 0
    await system.apply_pending()
    assert {(i.value, i.add) for i in await system.share_intents()} == {(value, True)}
    assert await db.fetchval("SELECT count(*) FROM share_decisions WHERE value = $1", value) == 1
    # The failed attempt's row is left; correcting it publishes the committed decision again.
    assert await republish_dead_intents(system.pool, system.broker, system.topics, 0) == 1
    assert {(i.value, i.add) for i in await system.share_intents()} == {(value, True)}
    assert await journal_rows(db) == 0
    await system.push_lists()
    assert value in await deployed(system)


async def test_a_catalog_change_waits_for_the_decisions_in_flight(system: System, db: Pool) -> None:
    async with db.acquire() as conn, conn.transaction():
        await lock_catalog_for_decisions(conn)
        change = asyncio.ensure_future(
            system.api.post("/api/cte/allow_list", json={"kind": "suffix", "pattern": "waits.journal.example"})
        )
        done, _ = await asyncio.wait({change}, timeout=1.0)
        assert not done, "the change committed while a decision taken under the old catalog was in flight"
    r = await asyncio.wait_for(change, timeout=30)
    assert r.status_code == 201, r.text
