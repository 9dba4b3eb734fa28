"""GET /api/cte/pipeline: each consumer's lag, from the positions it records and the topics' ends."""

from __future__ import annotations

from typing import Any

from tests.support.component import System


async def lags(system: System) -> dict[str, dict[str, Any]]:
    r = await system.api.get("/api/cte/pipeline")
    assert r.status_code == 200, r.text
    return {c["topic"].split(".", 1)[1]: c for c in r.json()["consumers"] if c["consumer"] == "rule-engine.indicators"}


async def test_the_lag_is_what_the_rule_engine_has_not_applied(system: System) -> None:
    await system.configure({"name": "lag-src"})
    await system.post_indicators([{"value": "first.example", "type": "domain", "source": "lag-src"}])
    await system.apply_pending()
    before = (await lags(system))["indicator-events.v1"]
    assert before["lag"] == 0
    assert before["partitions"] == 12
    for n in range(3):  # accepted (on the topic), not applied: one record each
        item = {"value": f"behind-{n}.example", "type": "domain", "source": "lag-src"}
        r = await system.api.post("/api/cte/indicators/", params={"wait": "false"}, json=[item])
        assert r.status_code == 201, r.text
    assert (await lags(system))["indicator-events.v1"]["lag"] == 3
    await system.apply_pending()
    after = (await lags(system))["indicator-events.v1"]
    assert after["lag"] == 0
    assert after["lastAppliedAt"] >= before["lastAppliedAt"]
