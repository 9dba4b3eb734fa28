"""Business rules, the allow-list and sharing decided by the rule-engine's handlers: every change of
decision, and only those, reaches the share topic as an intent for its list."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cte_common.db import Pool
from cte_common.events import AnyShareIntent
from cte_common.kafka import murmur2
from cte_common.topics import SHARE_INTENTS
from tests.support.component import System

RULE = "Every Severity"
EVERY_SEVERITY = 'sources.severity IN ("unknown","low","medium","high","critical")'
URLS = "share-tenant/url/share-urls"
HASHES = "share-tenant/file/share-hashes"
MD5 = "0cc175b9c0f1b6a831c399e269772661"
SHA = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
# One sighting time for every post: a repeated sighting changes no priority, hence no decision.
SEEN = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()


@pytest.fixture(scope="module", autouse=True)
async def sharings(system: System) -> dict[str, Any]:
    """The seed's "Every Severity" rule sharing the source "share-src" to a URL list and a file hash list."""
    destination = await system.netskope_destination("share-tenant")
    await system.configure({"name": "share-src"})
    await system.configure({"name": "elsewhere-src"})
    r = await system.api.post("/api/cte/business_rules", json={"name": RULE, "filters": {"query": EVERY_SEVERITY}})
    assert r.status_code == 201, r.text
    common = {"sourceConfiguration": "share-src", "businessRule": RULE, "destinationConfiguration": destination}
    url = await system.share({**common, "action": "url", "parameters": {"list": "create", "name": "share-urls"}})
    files = await system.share({**common, "action": "file", "parameters": {"file_list": "share-hashes"}})
    assert (url["listKey"], files["listKey"]) == (URLS, HASHES)
    await system.apply_pending()
    assert await system.share_intents() == []  # nothing stored yet, nothing to share
    return {"url": url, "file": files}


async def post(system: System, items: list[dict[str, Any]]) -> None:
    await system.post_indicators([{"source": "share-src", "lastSeen": SEEN, **i} for i in items])


def changes(intents: list[AnyShareIntent]) -> set[tuple[str, str, bool]]:
    return {(i.list_key, i.value, i.add) for i in intents}


async def test_matching_indicators_are_shared_to_the_list_of_their_type(system: System, db: Pool) -> None:
    await post(
        system,
        [
            {"value": "https://phish.example/login", "type": "url", "severity": "high"},
            {"value": "bad-domain.example", "type": "domain", "severity": "low"},
            {"value": "203.0.113.7", "type": "ipv4", "severity": "critical"},
            {"value": MD5, "type": "md5", "severity": "medium"},
            {"value": SHA, "type": "sha256"},
            {"value": "test-only.example", "type": "domain", "test": True},
        ],
    )
    await system.post_indicators([{"value": "other.example", "type": "domain", "source": "elsewhere-src"}])
    intents = await system.share_intents()
    assert changes(intents) == {
        (URLS, "https://phish.example/login", True),
        (URLS, "bad-domain.example", True),
        (URLS, "203.0.113.7", True),
        (HASHES, MD5, True),
        (HASHES, SHA, True),
    }
    assert all(i.cost_bytes > 0 for i in intents)
    decided = await db.fetchval("SELECT count(*) FROM share_decisions")
    assert decided == 5
    # The same sightings again decide the same: nothing is published.
    await post(system, [{"value": "bad-domain.example", "type": "domain", "severity": "low"}])
    assert await system.share_intents() == []


async def test_narrowing_the_rule_takes_out_what_it_no_longer_selects(system: System) -> None:
    r = await system.api.patch(
        f"/api/cte/business_rules/{RULE}", json={"filters": {"query": 'sources.severity IN ("high","critical")'}}
    )
    assert r.status_code == 200, r.text
    # The configuration change requests a re-evaluation; apply_pending runs it to the end.
    await system.apply_pending()
    assert changes(await system.share_intents()) == {
        (URLS, "bad-domain.example", False),
        (HASHES, MD5, False),
        (HASHES, SHA, False),
    }
    [latest] = (await system.api.get("/api/cte/reevaluations", params={"limit": 1})).json()
    assert latest["finishedAt"] is not None
    assert latest["processed"] >= 7


async def test_an_allow_list_entry_takes_an_indicator_out_of_every_list(system: System) -> None:
    r = await system.api.post("/api/cte/allow_list", json={"kind": "cidr", "pattern": "203.0.113.0/24"})
    assert r.status_code == 201, r.text
    entry = r.json()
    await system.apply_pending()
    assert changes(await system.share_intents()) == {(URLS, "203.0.113.7", False)}
    # A new indicator the entry covers is never shared, and counts as a hit of the entry.
    await post(system, [{"value": "203.0.113.99", "type": "ipv4", "severity": "critical"}])
    assert await system.share_intents() == []
    # One hit per sharing that decided on it: the URL list's and the file hash list's.
    assert (await system.api.get(f"/api/cte/allow_list/{entry['id']}")).json()["hits"] == 2
    assert (await system.api.delete(f"/api/cte/allow_list/{entry['id']}")).status_code == 200
    await system.apply_pending()
    assert changes(await system.share_intents()) == {(URLS, "203.0.113.7", True), (URLS, "203.0.113.99", True)}


async def test_retraction_removes_and_a_new_sighting_shares_again(system: System) -> None:
    body = {"value": "https://phish.example/login", "source": "share-src", "retracted": True}
    assert (await system.api.patch("/api/cte/indicators/", json=body)).status_code == 201
    await system.apply_pending()
    assert changes(await system.share_intents()) == {(URLS, "https://phish.example/login", False)}
    await post(system, [{"value": "https://phish.example/login", "type": "url", "severity": "high"}])
    assert changes(await system.share_intents()) == {(URLS, "https://phish.example/login", True)}


async def test_a_muted_rule_freezes_its_decisions_until_unmuted(system: System) -> None:
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = await system.api.patch(f"/api/cte/business_rules/{RULE}", json={"muted": True, "unmuteAt": until})
    assert r.status_code == 200, r.text
    await system.apply_pending()
    assert await system.share_intents() == []
    retraction = {"value": "203.0.113.99", "source": "share-src", "retracted": True}
    assert (await system.api.patch("/api/cte/indicators/", json=retraction)).status_code == 201
    await post(system, [{"value": "muted.example", "type": "domain", "severity": "high"}])
    assert await system.share_intents() == []  # neither the retraction nor the new indicator changed a list
    assert (await system.api.patch(f"/api/cte/business_rules/{RULE}", json={"muted": False})).status_code == 200
    await system.apply_pending()
    assert changes(await system.share_intents()) == {(URLS, "203.0.113.99", False), (URLS, "muted.example", True)}


async def test_an_indicator_deleted_while_muted_leaves_its_lists_once_unmuted(
    system: System, db: Pool, sharings: dict[str, Any]
) -> None:
    """A deletion while the rule is muted changes no list; once unmuted, the decision of the indicator that
    is gone becomes a removal. A configuration deleted with its data takes its sharings with it: their
    lists are emptied at once, muted rule or not."""
    await system.configure({"name": "leaving-src"})
    leaving = await system.share(
        {
            "sourceConfiguration": "leaving-src",
            "businessRule": RULE,
            "destinationConfiguration": sharings["url"]["destinationConfiguration"],
            "action": "url",
            "parameters": {"list": "create", "name": "leaving-urls"},
        }
    )
    await post(system, [{"value": "deleted-while-muted.example", "type": "domain", "severity": "high"}])
    await system.post_indicators(
        [{"value": "source-gone.example", "type": "domain", "severity": "high", "source": "leaving-src"}]
    )
    assert changes(await system.share_intents()) == {
        (URLS, "deleted-while-muted.example", True),
        (leaving["listKey"], "source-gone.example", True),
    }
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = await system.api.patch(f"/api/cte/business_rules/{RULE}", json={"muted": True, "unmuteAt": until})
    assert r.status_code == 200, r.text
    await system.apply_pending()
    r = await system.api.request("DELETE", "/api/cte/indicators/bulk", json={"values": ["deleted-while-muted.example"]})
    assert (r.status_code, r.json()) == (201, {"deleted": 1})
    r = await system.api.delete("/api/cte/configurations/leaving-src", params={"keepData": "false"})
    assert (r.status_code, r.json()["indicatorsRemoved"]) == (200, 1)
    # The configuration's deletion also runs a re-evaluation, while the rule is still muted.
    await system.apply_pending()
    assert await system.indicator("deleted-while-muted.example") is None
    assert await system.indicator("source-gone.example") is None
    assert changes(await system.share_intents()) == {(leaving["listKey"], "source-gone.example", False)}
    decided = "SELECT count(*) FROM share_decisions WHERE value = 'deleted-while-muted.example'"
    assert await db.fetchval(decided) == 1  # frozen until the rule is unmuted
    assert (await system.api.patch(f"/api/cte/business_rules/{RULE}", json={"muted": False})).status_code == 200
    await system.apply_pending()
    assert changes(await system.share_intents()) == {(URLS, "deleted-while-muted.example", False)}
    assert await db.fetchval(decided) == 0


async def test_a_sharing_not_saved_yet_shows_the_change_it_would_make(system: System, sharings: dict[str, Any]) -> None:
    saved = sharings["url"]
    body = {
        "sourceConfiguration": saved["sourceConfiguration"],
        "businessRule": RULE,
        "destinationConfiguration": saved["destinationConfiguration"],
        "action": "url",
        "parameters": {"list": "create", "name": "preview-urls"},
    }
    r = await system.api.post("/api/cte/sharing/dry_run", json=body)
    assert r.status_code == 200, r.text
    preview = r.json()
    dry = (await system.api.get(f"/api/cte/sharing/{saved['id']}/dry_run")).json()
    assert (preview["selected"], preview["wouldAddCount"], preview["wouldRemoveCount"]) == (3, 3, 0)
    assert sorted(map(str, preview["wouldAdd"])) == sorted(map(str, dry["wouldAdd"]))
    # Nothing was saved, and the body is checked as a creation is.
    assert len((await system.api.get("/api/cte/sharing")).json()) == 2
    taken = await system.api.post(
        "/api/cte/sharing/dry_run", json={**body, "parameters": {"list": "create", "name": "share-urls"}}
    )
    assert taken.status_code == 422
    assert "already the target of sharing" in taken.json()["detail"]
    missing = await system.api.post("/api/cte/sharing/dry_run", json={**body, "businessRule": "no such rule"})
    assert missing.status_code == 422
    assert missing.json()["detail"].startswith("businessRule:")


async def test_a_deleted_sharing_empties_its_list(system: System, sharings: dict[str, Any]) -> None:
    sharing = sharings["url"]
    dry = (await system.api.get(f"/api/cte/sharing/{sharing['id']}/dry_run")).json()
    # The sink has not run here: the list it wants is empty, so everything selected would be added.
    assert (dry["selected"], dry["wouldAddCount"], dry["wouldRemoveCount"]) == (3, 3, 0)
    assert (await system.api.delete(f"/api/cte/sharing/{sharing['id']}")).status_code == 200
    await system.apply_pending()
    assert changes(await system.share_intents()) == {
        (URLS, "https://phish.example/login", False),
        (URLS, "203.0.113.7", False),
        (URLS, "muted.example", False),
    }


async def test_each_intent_goes_to_the_partition_its_list_key_hashes_to(system: System) -> None:
    """The rule-engine gives each record its partition (computed once per list and batch): the one the
    producer's partitioner would choose for the key, so a list's intents stay in order on one partition."""
    await post(
        system,
        [
            {"value": "d41d8cd98f00b204e9800998ecf8427e", "type": "md5", "severity": "high"},
        ],
    )
    records = await system.share_intent_records()
    # The URL sharing is gone by now (the test before), and the rule selects high severities only.
    assert [r.key for r in records] == [HASHES.encode()]
    for r in records:
        assert r.partition == (murmur2(r.key or b"") & 0x7FFFFFFF) % SHARE_INTENTS.partitions


async def test_a_batchs_intents_of_one_list_share_an_envelope(system: System, db: Pool) -> None:
    """One record per list and batch: an envelope of the list's intents, keyed by the list, on the partition
    the key hashes to, read back as the sink reads it."""
    hashes = [f"{i:032x}" for i in range(1, 6)]
    await post(system, [{"value": h, "type": "md5", "severity": "high"} for h in hashes])
    records = await system.share_intent_records()
    assert [r.key for r in records] == [HASHES.encode()]
    [record] = records
    assert record.partition == (murmur2(HASHES.encode()) & 0x7FFFFFFF) % SHARE_INTENTS.partitions
    envelope = json.loads(record.value or b"")
    assert envelope["envelope"] == 2
    assert sorted(e["value"] for e in envelope["events"]) == hashes
    assert all(e["list_key"] == HASHES and e["add"] for e in envelope["events"])
    await system.take_intents()
    members = await db.fetch("SELECT value FROM list_members WHERE list_key = $1 AND value = ANY($2)", HASHES, hashes)
    assert sorted(m["value"] for m in members) == hashes, "the sink applied every intent of the envelope"


async def test_a_batch_s_intents_for_a_list_come_in_value_order(system: System) -> None:
    """The rule-engine writes, decides and publishes a batch in value order, whatever order its events
    came in: the order of every index keyed by value, in the read model and in the sink's tables."""
    hashes = [f"{0xABC000 + n:032x}" for n in range(60)]
    shuffled = hashes[1::2] + hashes[-2::-2]  # neither ascending nor descending
    await post(system, [{"value": h, "type": "md5", "severity": "high"} for h in shuffled])
    intents = await system.share_intents()
    # (The URL sharing is gone by now, and the rule selects high severities only.)
    assert [i.value for i in intents if i.list_key == HASHES] == hashes
