"""What source configurations and the Threat Exchange settings do to stored indicators: aging, Override
Reputation, the tag strategy, the merge criterion, and a configuration deleted with its data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cte_common.db import Pool
from tests.support.component import System

HASH = "9e107d9d372bb6826bd81d3542a419d6"
SHA = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"


async def stored(system: System, value: str) -> dict[str, Any]:
    item = await system.indicator(value)
    assert item is not None, f"{value} is not in the read model"
    return item


def expiry(item: dict[str, Any]) -> datetime | None:
    return datetime.fromisoformat(item["expiresAt"]) if item["expiresAt"] else None


async def test_aging_criteria_set_each_stored_expiry(system: System) -> None:
    await system.configure({"name": "age-30", "ageAfterDays": 30})
    await system.configure({"name": "age-never", "ageAfterDays": 0})
    per_type = {"url": {"value": 7}, "sha256": {"value": 180}, "md5": {"value": 12, "unit": "hours"}}
    await system.configure(
        {"name": "age-typed", "agingCriteria": {"value": 30, "unit": "days", "base": "lastSeen", "perType": per_type}},
    )
    seen = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    at = {"firstSeen": (seen - timedelta(days=5)).isoformat(), "lastSeen": seen.isoformat()}
    await system.post_indicators(
        [
            {"value": "thirty.example", "type": "domain", "source": "age-30"},
            {"value": "never.example", "type": "domain", "source": "age-never"},
            {"value": "typed.example/path", "type": "url", "source": "age-typed", **at},
            {"value": SHA, "type": "sha256", "source": "age-typed", **at},
            {"value": HASH, "type": "md5", "source": "age-typed", **at},
            {"value": "typed.example", "type": "domain", "source": "age-typed", **at},
        ]
    )
    thirty = await stored(system, "thirty.example")
    # Counted from the ingest time, which is the sighting's time when the client gives none.
    assert expiry(thirty) == datetime.fromisoformat(thirty["lastSeen"]) + timedelta(days=30)
    never = await stored(system, "never.example")
    assert (never["expiresAt"], never["active"]) == (None, True)
    assert expiry(await stored(system, "typed.example/path")) == seen + timedelta(days=7)
    assert expiry(await stored(system, SHA)) == seen + timedelta(days=180)
    assert expiry(await stored(system, HASH)) == seen + timedelta(hours=12)
    assert expiry(await stored(system, "typed.example")) == seen + timedelta(days=30)


async def test_a_sighting_already_past_its_aging_is_stored_inactive(system: System) -> None:
    await system.configure({"name": "age-minute", "agingCriteria": {"value": 1, "unit": "minutes", "base": "lastSeen"}})
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    await system.post_indicators(
        [{"value": "stale.example", "type": "domain", "source": "age-minute", "lastSeen": hour_ago}]
    )
    item = await stored(system, "stale.example")
    assert item["active"] is False
    # A fresh sighting makes it active again, with an expiry a minute after it.
    await system.post_indicators([{"value": "stale.example", "type": "domain", "source": "age-minute"}])
    item = await stored(system, "stale.example")
    assert item["active"] is True
    assert expiry(item) == datetime.fromisoformat(item["lastSeen"]) + timedelta(minutes=1)


async def test_a_shorter_aging_never_shortens_a_stored_expiry(system: System) -> None:
    await system.configure({"name": "age-shortened", "ageAfterDays": 30})
    await system.post_indicators([{"value": "kept-long.example", "type": "domain", "source": "age-shortened"}])
    first = expiry(await stored(system, "kept-long.example"))
    r = await system.api.patch("/api/cte/configurations/age-shortened", json={"ageAfterDays": 3})
    assert (r.status_code, r.json()["ageAfterDays"]) == (200, 3)
    await system.post_indicators([{"value": "kept-long.example", "type": "domain", "source": "age-shortened"}])
    item = await stored(system, "kept-long.example")
    assert expiry(item) == first  # the later of the two expiries
    assert item["externalHits"] == 2


async def test_override_reputation_applies_to_sightings_made_while_it_is_set(system: System) -> None:
    await system.configure({"name": "rep-8", "reputation": 8})
    await system.post_indicators([{"value": "rep.example", "type": "domain", "source": "rep-8", "reputation": 2}])
    assert (await stored(system, "rep.example"))["sources"][0]["reputation"] == 8
    # Turning the override off changes nothing stored; the next sighting keeps its own reputation.
    r = await system.api.patch("/api/cte/configurations/rep-8", json={"reputation": 0})
    assert r.status_code == 200, r.text
    await system.apply_pending()
    assert (await stored(system, "rep.example"))["sources"][0]["reputation"] == 8
    await system.post_indicators([{"value": "rep.example", "type": "domain", "source": "rep-8", "reputation": 3}])
    assert (await stored(system, "rep.example"))["sources"][0]["reputation"] == 3


async def test_tag_strategy_overwrite_replaces_append_adds(system: System) -> None:
    await system.configure({"name": "tags-overwrite", "tagsAggregateStrategy": "overwrite"})
    await system.configure({"name": "tags-append"})
    for tags in (["first", "second"], ["third"]):
        await system.post_indicators(
            [
                {"value": "tagged.example", "type": "domain", "source": "tags-overwrite", "tags": tags},
                {"value": "tagged.example", "type": "domain", "source": "tags-append", "tags": tags},
            ]
        )
    entries = {s["source"]: s["tags"] for s in (await stored(system, "tagged.example"))["sources"]}
    assert entries == {"tags-overwrite": ["third"], "tags-append": ["first", "second", "third"]}


async def test_the_merge_criterion_decides_whose_metadata_stays(system: System) -> None:
    await system.configure({"name": "criterion-src"})
    r = await system.api.patch("/api/settings/cte", json={"criterion": "highestSeverity"})
    assert (r.status_code, r.json()["criterion"]) == (200, "highestSeverity")
    try:
        for severity in ("high", "low"):
            await system.post_indicators(
                [{"value": "severe.example", "type": "domain", "source": "criterion-src", "severity": severity}]
            )
        assert (await stored(system, "severe.example"))["sources"][0]["severity"] == "high"
    finally:
        assert (await system.api.patch("/api/settings/cte", json={"criterion": "lastSeen"})).status_code == 200
    await system.post_indicators(
        [{"value": "severe.example", "type": "domain", "source": "criterion-src", "severity": "low"}]
    )
    assert (await stored(system, "severe.example"))["sources"][0]["severity"] == "low"


async def test_deleting_a_configuration_without_its_data(system: System, db: Pool) -> None:
    await system.configure({"name": "gone-src"})
    await system.configure({"name": "stays-src"})
    await system.post_indicators(
        [
            {"value": "only-gone.example", "type": "domain", "source": "gone-src"},
            {"value": "shared.example", "type": "domain", "source": "gone-src"},
            {"value": "shared.example", "type": "domain", "source": "stays-src"},
        ]
    )
    r = await system.api.delete("/api/cte/configurations/gone-src", params={"keepData": "false"})
    assert (r.status_code, r.json()) == (200, {"deleted": "gone-src", "indicatorsRemoved": 2})
    await system.apply_pending()
    assert await system.indicator("only-gone.example") is None
    assert [s["source"] for s in (await stored(system, "shared.example"))["sources"]] == ["stays-src"]
    assert await db.fetchval("SELECT count(*) FROM indicator_sources WHERE source = 'gone-src'") == 0
    assert (await system.api.get("/api/cte/configurations/gone-src")).status_code == 404
