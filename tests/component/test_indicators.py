"""Indicators through the API in process and the rule-engine's handler: the seed's worked example,
edits, deletions and refusals, read back from the read model the moment they are applied."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cte_common.db import Pool
from tests.support.component import System

SHA = "b53f3c0cd32d7f20849850768da6431e5f876b7bfa61db0aa0700b02873393fa"


@pytest.fixture(scope="module", autouse=True)
async def source_dw(system: System) -> None:
    """Settings > Plugins: the API Source configuration "DW", and the seed's tags."""
    await system.configure({"name": "DW"})
    for name in ("test_tag", "test_tag2", "test_tag3", "abc"):
        assert (await system.api.post("/api/cte/tags", json={"name": name})).status_code == 200
    await system.apply_pending()  # the configuration changes: each test counts only its own records


async def test_seed_worked_example(system: System, db: Pool) -> None:
    api = system.api
    # POST www.dubya.com to source DW with both tags: accepted means on the topic, not yet in the read model.
    body = [
        {"value": "www.dubya.com", "type": "url", "source": "DW", "reputation": 5, "tags": ["test_tag", "test_tag2"]}
    ]
    r = await api.post("/api/cte/indicators/", json=body)
    assert r.status_code == 201, r.text
    [accepted] = r.json()
    assert (accepted["value"], accepted["sources"][0]["tags"]) == ("www.dubya.com", ["test_tag", "test_tag2"])
    assert await system.indicator("www.dubya.com") is None
    assert await system.apply_pending() == 1

    # GET it.
    item = await system.indicator("www.dubya.com")
    assert item is not None
    assert (item["type"], item["active"], item["externalHits"], item["internalHits"]) == ("url", True, 1, 0)
    [entry] = item["sources"]
    assert (entry["source"], entry["reputation"], entry["tags"]) == ("DW", 5, ["test_tag", "test_tag2"])
    assert item["tags"] == ["test_tag", "test_tag2"]
    assert datetime.fromisoformat(item["expiresAt"]) - datetime.fromisoformat(item["lastSeen"]) == timedelta(days=90)

    # PATCH its reputation from 5 to 7, and a tag: tags append (the configuration's strategy), none lost.
    r = await api.patch(
        "/api/cte/indicators/",
        json={"value": "WWW.Dubya.com", "type": "url", "source": "DW", "reputation": 7, "tags": ["test_tag3"]},
    )
    assert r.status_code == 201, r.text
    assert await system.apply_pending() == 1
    item = await system.indicator("www.dubya.com")
    assert item is not None
    [entry] = item["sources"]
    assert entry["reputation"] == 7
    assert entry["tags"] == ["test_tag", "test_tag2", "test_tag3"]
    assert (item["externalHits"], entry["externalHits"]) == (2, 2)

    # Bulk tag edit: remove one, add another, by values.
    r = await api.patch(
        "/api/cte/indicators/bulk",
        json={"locator": {"values": ["www.dubya.com"]}, "tags": {"remove": ["test_tag"], "add": ["abc"]}},
    )
    assert (r.status_code, r.json()) == (201, {"updated": 1})
    await system.apply_pending()
    stored = await db.fetchval("SELECT tags FROM indicator_sources WHERE value = 'www.dubya.com' AND source = 'DW'")
    assert sorted(stored) == ["abc", "test_tag2", "test_tag3"]

    # Delete it: gone from the answer and from the read model (its source rows with it).
    r = await api.request("DELETE", "/api/cte/indicators/bulk", json={"values": ["WWW.DUBYA.COM"]})
    assert (r.status_code, r.json()) == (201, {"deleted": 1})
    await system.apply_pending()
    assert await system.indicator("www.dubya.com") is None
    assert await db.fetchval("SELECT count(*) FROM indicator_sources WHERE value = 'www.dubya.com'") == 0


async def test_wait_true_answers_with_the_stored_indicator(system: System) -> None:
    api = system.api
    sha = SHA.upper()
    r = await system.answered_after_apply(
        api.post(
            "/api/cte/indicators/", params={"wait": "true"}, json=[{"value": sha, "type": "sha256", "source": "DW"}]
        )
    )
    assert r.status_code == 201, r.text
    [stored] = r.json()
    assert (stored["value"], stored["sources"][0]["source"], stored["sources"][0]["tags"]) == (SHA, "DW", [])
    # The seed's bulk example: remove the tag "abc" from the sha256 indicator, answered once applied.
    await system.post_indicators([{"value": SHA, "type": "sha256", "source": "DW", "tags": ["abc"]}])
    r = await system.answered_after_apply(
        api.patch(
            "/api/cte/indicators/bulk",
            params={"wait": "true"},
            json={"locator": {"values": [SHA]}, "tags": {"remove": ["abc"]}},
        )
    )
    assert (r.status_code, r.json()) == (201, {"updated": 1})
    item = await system.indicator(SHA)
    assert item is not None
    assert item["sources"][0]["tags"] == []


async def test_a_batch_with_a_bad_item_is_refused_whole_and_publishes_nothing(system: System) -> None:
    body = [
        {"value": "good-one.example", "type": "domain", "source": "DW"},
        {"value": "d41d8cd98f00b204e9800998ecf8427", "type": "md5", "source": "DW"},  # 31 characters
        {"value": "evil.example", "type": "domain", "source": "NoSuchSource"},
        {"value": "10.0.0.1", "type": "ipv4", "source": "DW", "reputation": 11},
    ]
    r = await system.api.post("/api/cte/indicators/", json=body)
    assert r.status_code == 422
    assert {(e["index"], e["field"]) for e in r.json()["detail"]} == {(1, "value"), (2, "source"), (3, "reputation")}
    # Nothing reached the topic: the rule-engine has nothing to apply.
    assert await system.apply_pending() == 0
    assert await system.indicator("good-one.example") is None


async def test_retraction_and_a_new_sighting(system: System) -> None:
    await system.post_indicators([{"value": "retract.example", "type": "domain", "source": "DW"}])
    body = {"value": "RETRACT.example", "source": "DW", "retracted": True}
    r = await system.api.patch("/api/cte/indicators/", json=body)
    assert (r.status_code, r.json()) == (201, True)
    await system.apply_pending()
    item = await system.indicator("retract.example")
    assert item is not None
    assert item["sources"][0]["retracted"] is True
    # A new sighting from the source withdraws its retraction.
    await system.post_indicators([{"value": "retract.example", "type": "domain", "source": "DW"}])
    item = await system.indicator("retract.example")
    assert item is not None
    assert item["sources"][0]["retracted"] is False
    missing = await system.api.patch("/api/cte/indicators/", json={**body, "value": "nowhere.example"})
    assert missing.status_code == 404


async def test_bulk_edit_by_query_and_tag_deletion(system: System) -> None:
    assert (await system.api.post("/api/cte/tags", json={"name": "bulk-tag"})).status_code == 200
    await system.post_indicators(
        [
            {"value": f"bulk-{n}.example", "type": "domain", "source": "DW", "severity": "high" if n % 2 else "low"}
            for n in range(6)
        ]
    )
    query = {"value": {"$regex": "bulk-"}, "sources": {"$elemMatch": {"severity": {"$in": ["high"]}}}}
    r = await system.api.patch(
        "/api/cte/indicators/bulk", json={"locator": {"query": json.dumps(query)}, "tags": {"add": ["bulk-tag"]}}
    )
    assert r.json() == {"updated": 3}
    await system.apply_pending()
    tagged = {"sources": {"$elemMatch": {"tags": {"$in": ["bulk-tag"]}}}}
    found = await system.api.get("/api/cte/indicators/", params={"filters": json.dumps(tagged)})
    assert sorted(i["value"] for i in found.json()) == ["bulk-1.example", "bulk-3.example", "bulk-5.example"]
    tags = (
        await system.api.get("/api/cte/tags", params={"filters": json.dumps({"value": {"$regex": "bulk-"}})})
    ).json()
    assert next(t for t in tags if t["name"] == "bulk-tag")["appliedOn"] == "some"
    # Deleting the tag takes it off every indicator.
    assert (await system.api.request("DELETE", "/api/cte/tags", json={"name": "bulk-tag"})).status_code == 200
    await system.apply_pending()
    found = await system.api.get("/api/cte/indicators/", params={"filters": json.dumps(tagged)})
    assert found.json() == []


async def test_merge_of_two_sources_and_a_later_sighting(system: System) -> None:
    await system.configure({"name": "Other"})
    earlier = datetime.now(UTC) - timedelta(days=3)
    await system.post_indicators(
        [
            {
                "value": "203.0.113.9",
                "type": "ipv4",
                "source": "DW",
                "severity": "low",
                "reputation": 3,
                "firstSeen": earlier.isoformat(),
                "lastSeen": earlier.isoformat(),
            },
            {"value": "203.0.113.9", "type": "ipv4", "source": "Other", "severity": "critical", "reputation": 9},
        ]
    )
    item = await system.indicator("203.0.113.9")
    assert item is not None
    entries = {s["source"]: s for s in item["sources"]}
    assert set(entries) == {"DW", "Other"}
    assert (entries["DW"]["severity"], entries["Other"]["severity"]) == ("low", "critical")
    assert item["externalHits"] == 2
    assert datetime.fromisoformat(item["firstSeen"]) == earlier
    # An older sighting from DW does not replace its newer metadata (the criterion is lastSeen).
    older = earlier - timedelta(days=1)
    await system.post_indicators(
        [
            {
                "value": "203.0.113.9",
                "type": "ipv4",
                "source": "DW",
                "severity": "high",
                "firstSeen": older.isoformat(),
                "lastSeen": older.isoformat(),
            }
        ]
    )
    item = await system.indicator("203.0.113.9")
    assert item is not None
    dw = next(s for s in item["sources"] if s["source"] == "DW")
    assert (dw["severity"], dw["externalHits"]) == ("low", 2)
    assert datetime.fromisoformat(dw["firstSeen"]) == older


async def test_a_redelivered_topic_changes_nothing(system: System, db: Pool) -> None:
    async def read_model() -> list[dict[str, Any]]:
        rows = await db.fetch("SELECT * FROM indicators ORDER BY value")
        rows += await db.fetch("SELECT * FROM indicator_sources ORDER BY value, source")
        return [dict(r) for r in rows]

    before = await read_model()
    assert before
    assert await system.redeliver() > 0
    assert await read_model() == before  # updated_at included: nothing was written again


async def test_a_body_read_straight_into_items_still_gets_the_models_answers(system: System) -> None:
    """The POST body is read by msgspec; an item only the model reads (padded, mixed case) is still
    accepted as the model reads it, and a body that is not a batch gets FastAPI's own answers."""
    body = [
        {"value": "plain-one.example", "type": "domain", "source": "DW"},
        {"value": "  Padded-Two.EXAMPLE ", "type": "domain", "source": "DW", "reputation": 6},
    ]
    r = await system.api.post("/api/cte/indicators/?wait=false", json=body)
    assert r.status_code == 201, r.text
    assert [(a["value"], a["reputation"]) for a in r.json()] == [("plain-one.example", 5), ("padded-two.example", 6)]
    assert await system.apply_pending() == 2

    headers = {"content-type": "application/json"}
    r = await system.api.post("/api/cte/indicators/", content=b'[{"value": "x.example",', headers=headers)
    assert (r.status_code, r.json()) == (
        422,
        {
            "detail": [
                {"loc": ["body", 23], "msg": "JSON decode error", "type": "json_invalid", "index": 23, "field": None}
            ]
        },
    )
    r = await system.api.post("/api/cte/indicators/", content=b'{"value": "x.example"}', headers=headers)
    assert (r.status_code, r.json()) == (
        422,
        {"detail": [{"loc": ["body"], "msg": "Input should be a valid list", "type": "list_type"}]},
    )
    r = await system.api.post("/api/cte/indicators/", content=b"[NaN]", headers=headers)
    assert r.status_code == 422
    assert [(e["index"], e["field"]) for e in r.json()["detail"]] == [(0, None)]
    assert await system.apply_pending() == 0
