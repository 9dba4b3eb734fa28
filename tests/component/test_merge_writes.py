"""How the rule-engine writes a batch's merge, against real Kafka and PostgreSQL: new rows copied in and
loaded rows updated (no upsert), tags of any text written as they are, a source entry that a batch did
not change left as it was, and the same read model whatever the batch boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cte_common.db import Pool
from cte_common.envelope import envelope_values
from cte_common.events import IndicatorSighting, IndicatorTagEdit, encode
from cte_common.indicators import IndicatorType
from cte_common.kafka import Outgoing, publish_all
from tests.support.component import System

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ODD_TAGS = ['quote"d', "back\\slash", "{brace,comma}", "NULL", "sp ace", "ünï", '\\"both']


def sighting(value: str, source: str, *, tags: list[str] | None = None, at: datetime = NOW) -> IndicatorSighting:
    return IndicatorSighting(
        value=value,
        type=IndicatorType.DOMAIN,
        source=source,
        first_seen=at,
        last_seen=at,
        tags=tags or [],
        from_api=True,
    )


async def publish(system: System, *events: IndicatorSighting | IndicatorTagEdit) -> None:
    """The events as one envelope keyed by the first one's value (all of them one indicator's)."""
    [(_, envelope)] = envelope_values([encode(e) for e in events])
    await publish_all(
        system.broker, system.topics.indicator_events, [Outgoing(key=events[0].value.encode(), value=envelope)]
    )


async def test_tags_of_any_text_are_written_as_they_are(system: System, db: Pool) -> None:
    value = "odd-tags.example"
    await publish(system, sighting(value, "MW1", tags=ODD_TAGS))
    await system.apply_pending()
    assert await db.fetchval("SELECT tags FROM indicator_sources WHERE value = $1", value) == ODD_TAGS
    # Updated the same way: a tag edit on the loaded entry.
    await publish(system, IndicatorTagEdit(value=value, source="MW1", add=["new,one"], remove=["NULL"]))
    await system.apply_pending()
    expected = [t for t in ODD_TAGS if t != "NULL"] + ["new,one"]
    assert await db.fetchval("SELECT tags FROM indicator_sources WHERE value = $1", value) == expected


async def test_a_source_entry_the_batch_did_not_change_is_not_rewritten(system: System, db: Pool) -> None:
    value = "two-sources-one-write.example"
    await publish(system, sighting(value, "MW1"), sighting(value, "MW2"))
    await system.apply_pending()
    entries = (
        "SELECT source, xmin::text AS version, internal_hits + external_hits AS hits, last_seen "
        "FROM indicator_sources WHERE value = $1"
    )
    before = {r["source"]: r for r in await db.fetch(entries, value)}
    later = NOW + timedelta(hours=1)
    await publish(system, sighting(value, "MW2", at=later))
    await system.apply_pending()
    after = {r["source"]: r for r in await db.fetch(entries, value)}
    assert after["MW1"]["version"] == before["MW1"]["version"], "MW1's entry was left as it was"
    assert after["MW2"]["version"] != before["MW2"]["version"]
    assert (after["MW2"]["hits"], after["MW2"]["last_seen"]) == (2, later)
    row = await db.fetchrow(
        "SELECT internal_hits + external_hits AS hits, first_seen, last_seen FROM indicators WHERE value = $1", value
    )
    assert (row["hits"], row["first_seen"], row["last_seen"]) == (3, NOW, later)


async def test_new_and_loaded_rows_in_one_batch(system: System, db: Pool) -> None:
    """One batch holds a value sighted before (an update) and values never seen (inserts), one of them
    sighted twice within the batch (inserted once, with both sightings merged)."""
    seen, fresh, twice = "seen-before.example", "never-seen.example", "twice-in-batch.example"
    await publish(system, sighting(seen, "MW1"))
    await system.apply_pending()
    await publish(system, sighting(seen, "MW1", at=NOW + timedelta(minutes=5)))
    await publish(system, sighting(fresh, "MW1"))
    await publish(system, sighting(twice, "MW1"), sighting(twice, "MW2", tags=["t"]))
    await system.apply_pending()
    rows = {
        r["value"]: r
        for r in await db.fetch(
            "SELECT value, internal_hits + external_hits AS hits FROM indicators WHERE value = ANY($1::text[])",
            [seen, fresh, twice],
        )
    }
    assert {v: r["hits"] for v, r in rows.items()} == {seen: 2, fresh: 1, twice: 2}
    sources = await db.fetch("SELECT source, tags FROM indicator_sources WHERE value = $1 ORDER BY source", twice)
    assert [(r["source"], r["tags"]) for r in sources] == [("MW1", []), ("MW2", ["t"])]
