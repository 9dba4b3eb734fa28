"""The reference's input model: ``safe`` and ``active`` honoured, keys the reference ignores ignored (and
counted), our own field-level errors for bad values kept."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from cte_common.db import Pool
from tests.support.component import System

PATH = "/api/cte/indicators/"


@pytest.fixture(scope="module", autouse=True)
async def source(system: System) -> None:
    await system.configure({"name": "CEIN"})
    await system.apply_pending()


def _ignored(field: str) -> float:
    return REGISTRY.get_sample_value("cte_ingest_ignored_fields_total", {"field": field}) or 0.0


async def test_safe_and_active_are_honoured(system: System, db: Pool) -> None:
    body = [
        {"value": "safe.cein.example", "type": "domain", "source": "CEIN", "safe": True},
        {"value": "inactive.cein.example", "type": "domain", "source": "CEIN", "active": False},
    ]
    r = await system.api.post(PATH, json=body)
    assert r.status_code == 201, r.text
    assert [(i["safe"], i["active"]) for i in r.json()] == [(True, True), (False, False)]
    await system.apply_pending()
    rows = {
        r["value"]: (r["safe"], r["active"])
        for r in await db.fetch("SELECT value, safe, active FROM indicators WHERE value LIKE '%.cein.example'")
    }
    assert rows == {"safe.cein.example": (True, True), "inactive.cein.example": (False, False)}
    safe = await system.indicator("safe.cein.example")
    assert safe is not None
    assert safe["safe"] is True
    # Merged as the reference merges active: true if the stored or the new one is.
    await system.post_indicators([{"value": "inactive.cein.example", "type": "domain", "source": "CEIN"}])
    await system.post_indicators([{"value": "safe.cein.example", "type": "domain", "source": "CEIN", "safe": False}])
    again = {
        r["value"]: (r["safe"], r["active"])
        for r in await db.fetch("SELECT value, safe, active FROM indicators WHERE value LIKE '%.cein.example'")
    }
    assert again == {"safe.cein.example": (True, True), "inactive.cein.example": (False, True)}


async def test_an_indicator_read_by_get_can_be_sent_back(system: System) -> None:
    await system.post_indicators([{"value": "roundtrip.cein.example", "type": "domain", "source": "CEIN"}])
    item = await system.indicator("roundtrip.cein.example")
    assert item is not None
    before = _ignored("internalHits"), _ignored("sources"), _ignored("other")
    # Sent back as a new sighting (seen now: without its stored times, which would not replace the metadata).
    back = {**item, "source": "CEIN", "reputation": 8, "somethingElse": 1}
    del back["firstSeen"], back["lastSeen"]
    r = await system.api.post(PATH, json=[back])
    assert r.status_code == 201, r.text
    r = await system.api.patch(PATH, json=back)
    assert r.status_code == 201, r.text
    await system.apply_pending()
    after = _ignored("internalHits"), _ignored("sources"), _ignored("other")
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 2]
    item = await system.indicator("roundtrip.cein.example")
    assert item is not None
    assert (item["externalHits"], item["sources"][0]["reputation"]) == (3, 8)


async def test_bad_values_are_still_refused_with_their_field(system: System) -> None:
    body = [{"value": "bad.cein.example", "type": "domain", "source": "CEIN", "reputation": 11, "ignored": 1}]
    r = await system.api.post(PATH, json=body)
    assert r.status_code == 422
    assert [(e["index"], e["field"]) for e in r.json()["detail"]] == [(0, "reputation")]
    r = await system.api.post(PATH, json=[{**body[0], "reputation": 5, "safe": "maybe"}])
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["detail"]] == ["safe"]


async def test_a_retraction_is_told_from_an_indicator(system: System) -> None:
    await system.post_indicators([{"value": "retracted.cein.example", "type": "domain", "source": "CEIN"}])
    r = await system.api.patch(PATH, json={"value": "retracted.cein.example", "source": "CEIN", "retracted": True})
    assert (r.status_code, r.json()) == (201, True)
    await system.apply_pending()
    item = await system.indicator("retracted.cein.example")
    assert item is not None
    assert item["sources"][0]["retracted"] is True


async def test_a_url_with_a_wildcard_label_is_accepted(system: System) -> None:
    r = await system.api.post(PATH, json=[{"value": "*.Wild.cein.example", "type": "url", "source": "CEIN"}])
    assert r.status_code == 201, r.text
    assert r.json()[0]["value"] == "*.wild.cein.example"
    r = await system.api.post(PATH, json=[{"value": "*wild.cein.example", "type": "url", "source": "CEIN"}])
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "value"
    await system.apply_pending()
