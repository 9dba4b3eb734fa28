"""Idempotency-Key on the indicator writes: a repeat is applied once and answered the same, whatever
became of the first attempt (answered, failed after its events landed, still in flight, its process
gone); the same key with another request is refused."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import uuid4

import pytest

from cte_common.db import Pool
from tests.support.component import System

PATH = "/api/cte/indicators/"


@pytest.fixture(scope="module", autouse=True)
async def source_dw(system: System) -> None:
    await system.configure({"name": "DW"})
    assert (await system.api.post("/api/cte/tags", json={"name": "test_tag"})).status_code == 200
    await system.apply_pending()


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid4())}


async def _hits(db: Pool, value: str) -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT i.external_hits, s.external_hits AS source_hits FROM indicators i"
        " JOIN indicator_sources s USING (value) WHERE value = $1",
        value,
    )
    assert row is not None
    return row["external_hits"], row["source_hits"]


async def test_a_repeated_post_is_applied_once_and_answered_the_same(system: System, db: Pool) -> None:
    key = _key()
    body = [{"value": "once.example", "type": "domain", "source": "DW", "tags": ["test_tag"]}]
    first = await system.api.post(PATH, json=body, headers=key)
    assert first.status_code == 201, first.text
    again = await system.api.post(PATH, json=body, headers=key)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    # The repeat published nothing: one record, one hit.
    assert await system.apply_pending() == 1
    assert await _hits(db, "once.example") == (1, 1)
    # Without the key (or with another) a POST is a new sighting, as before.
    await system.post_indicators(body)
    assert await _hits(db, "once.example") == (2, 2)


async def test_the_same_key_with_another_body_is_refused(system: System) -> None:
    key = _key()
    body = [{"value": "key-reuse.example", "type": "domain", "source": "DW"}]
    assert (await system.api.post(PATH, json=body, headers=key)).status_code == 201
    other = await system.api.post(PATH, json=[{**body[0], "reputation": 9}], headers=key)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]
    # ... and on another path.
    patch = await system.api.patch(PATH, json={**body[0], "reputation": 9}, headers=key)
    assert patch.status_code == 422
    await system.apply_pending()


async def test_a_retry_after_events_landed_without_an_answer_adds_no_hits(system: System, db: Pool) -> None:
    """A 503 whose records Kafka acknowledged late gives the key back (the client was told: not
    accepted); the retry runs again with the same event ids, and the rule-engine applies them once."""
    key = _key()
    body = [
        {"value": "late.example", "type": "domain", "source": "DW"},
        {"value": "late.example", "type": "domain", "source": "DW"},  # two sightings in one request: 2 hits
        {"value": "late-2.example", "type": "domain", "source": "DW"},
    ]
    assert (await system.api.post(PATH, json=body, headers=key)).status_code == 201
    # What the failed request leaves behind: its events on the topic, its key given back.
    assert await db.execute("DELETE FROM idempotency_keys WHERE key = $1", key["Idempotency-Key"]) == "DELETE 1"
    assert await system.apply_pending() >= 1
    retry = await system.api.post(PATH, json=body, headers=key)
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers  # ran again
    assert await system.apply_pending() >= 1  # published again ...
    assert await _hits(db, "late.example") == (2, 2)  # ... and applied once
    assert await _hits(db, "late-2.example") == (1, 1)
    # Even delivered again from the start of the topic.
    await system.redeliver()
    assert await _hits(db, "late.example") == (2, 2)


async def test_a_retry_while_the_first_is_in_flight_waits_then_takes_over_a_dead_one(system: System, db: Pool) -> None:
    """A key held by a request whose process died (a pending row whose lease is running out): the
    retry waits, takes the key over once the lease ends, and runs the request."""
    key = _key()
    body = [{"value": "orphan.example", "type": "domain", "source": "DW"}]
    raw = json.dumps(body).encode()
    principal = await _principal(db)
    fingerprint = hashlib.sha256(b"\x00".join([b"POST", PATH.encode(), raw])).digest()
    await db.execute(
        "INSERT INTO idempotency_keys (principal, key, request_hash, owner, lease_until, expires_at)"
        " VALUES ($1, $2, $3, $4, now() + interval '300 milliseconds', now() + interval '1 day')",
        principal,
        key["Idempotency-Key"],
        fingerprint,
        uuid4(),
    )
    r = await system.api.post(PATH, content=raw, headers={**key, "content-type": "application/json"})
    assert r.status_code == 201, r.text
    await system.apply_pending()
    assert await _hits(db, "orphan.example") == (1, 1)


async def _principal(db: Pool) -> str:
    rows: list[Any] = await db.fetch("SELECT DISTINCT principal FROM idempotency_keys")
    [principal] = {r["principal"] for r in rows}
    return str(principal)


async def test_a_repeated_patch_and_bulk_edit_are_answered_the_same(system: System, db: Pool) -> None:
    await system.post_indicators([{"value": "patched.example", "type": "domain", "source": "DW"}])
    key = _key()
    body = {"value": "patched.example", "type": "domain", "source": "DW", "reputation": 7}
    first = await system.api.patch(PATH, json=body, headers=key)
    again = await system.api.patch(PATH, json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    await system.apply_pending()
    assert await _hits(db, "patched.example") == (2, 2)
    key = _key()
    edit = {"locator": {"values": ["patched.example"]}, "tags": {"add": ["test_tag"]}}
    first = await system.api.patch(f"{PATH}bulk", json=edit, headers=key)
    again = await system.api.patch(f"{PATH}bulk", json=edit, headers=key)
    assert (first.status_code, first.json()) == (again.status_code, again.json()) == (201, {"updated": 1})


async def test_an_error_answer_gives_the_key_back(system: System) -> None:
    key = _key()
    body = [{"value": "later.example", "type": "domain", "source": "Later"}]
    assert (await system.api.post(PATH, json=body, headers=key)).status_code == 422
    await system.configure({"name": "Later"})
    assert (await system.api.post(PATH, json=body, headers=key)).status_code == 201
    await system.apply_pending()


async def test_a_request_and_its_retry_in_one_batch_are_applied_once(system: System, db: Pool) -> None:
    key = _key()
    body = [{"value": "same-batch.example", "type": "domain", "source": "DW"}]
    assert (await system.api.post(PATH, json=body, headers=key)).status_code == 201
    await db.execute("DELETE FROM idempotency_keys WHERE key = $1", key["Idempotency-Key"])
    assert (await system.api.post(PATH, json=body, headers=key)).status_code == 201
    assert await system.apply_pending() == 2  # both records, handed over together
    assert await _hits(db, "same-batch.example") == (1, 1)
