"""The sink's pre-check of URL-list entries (cte_common.url_list, Netskope's documented grammar) wired into
the push: a value the grammar calls invalid that the canonicaliser lets in is never sent to the tenant,
takes no room under the cap, and shows as left out invalid with the "Invalid host" tag; and the entry the
SQL writes (``list_entry``) is the one the Python pre-check judged, on every documented example."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cte_common.canonical import canonicalize
from cte_common.db import Pool
from cte_common.indicators import IndicatorType
from cte_common.sharing import MIB, cost_bytes
from cte_common.url_list import entry_as_written, list_entry
from tests.support.component import System

NOW = datetime.now(UTC).replace(microsecond=0)
EXAMPLES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "netskope_url_grammar.json").read_text()
)["examples"]

# Indicators the canonicaliser accepts whose URL-list entry Netskope's grammar refuses ("Invalid host",
# "Invalid Path"): the tenant would answer them with a 400 per-entry refusal.
INVALID = {
    "0.0.0.0": "ipv4",  # noqa: S104 (a value, never bound)
    "_dmarc.precheck.example": "hostname",
    "precheck_a.example/x": "url",
    "https://precheck.example/a*b": "url",
}
VALID = ["precheck-1.example", "precheck-2.example"]  # equal lengths: equal costs


def test_the_canonicaliser_lets_the_invalid_values_in_and_the_pre_check_refuses_them() -> None:
    for value, kind in INVALID.items():
        canonical = canonicalize(IndicatorType(kind), value)
        assert list_entry(IndicatorType(kind), canonical) is None, canonical


async def test_the_sql_writes_the_entry_the_pre_check_judged_on_every_documented_example(db: Pool) -> None:
    values: list[tuple[str, str]] = []
    for example in EXAMPLES:
        values.append((example["entry"], "url"))
        if example["canonical"] is not None:
            values.append((example["canonical"], "url"))
            values.append((example["canonical"].upper(), "url"))  # a scheme in capitals is dropped too
    values += [*INVALID.items(), ("2001:db8::1", "ipv6"), ("a.example", "domain")]
    rows = await db.fetch(
        "SELECT v, t, list_entry(v, t, true) AS entry FROM unnest($1::text[], $2::text[]) AS x(v, t)",
        [v for v, _ in values],
        [t for _, t in values],
    )
    for r in rows:
        kind = IndicatorType(r["t"])
        expected = None if kind == IndicatorType.IPV6 else entry_as_written(kind, r["v"])
        assert r["entry"] == expected, r["v"]
        # The entry a valid value is pushed as, and costed on, is the SQL's.
        if list_entry(kind, r["v"]) is not None:
            assert list_entry(kind, r["v"]) == r["entry"]


@pytest.fixture(scope="module")
async def destination(system: System) -> str:
    destination = await system.netskope_destination("precheck-tenant")
    await system.configure({"name": "precheck-src", "ageAfterDays": 0})
    return destination


async def test_an_entry_the_grammar_refuses_never_reaches_the_tenant_and_is_left_out_invalid(
    system: System, destination: str
) -> None:
    # Room for the two valid values only: the invalid ones, newer (first in the order), take none.
    cap_mb = (1 + 2 * cost_bytes(VALID[0]) + cost_bytes(VALID[0]) // 2) / MIB
    sharing = await system.share(
        {
            "sourceConfiguration": "precheck-src",
            "businessRule": "All",
            "destinationConfiguration": destination,
            "action": "url",
            "parameters": {"list": "create", "name": "precheck-list", "max_url_list_cap": cap_mb},
        }
    )
    items = [
        {"value": v, "type": t, "source": "precheck-src", "lastSeen": NOW.isoformat()} for v, t in INVALID.items()
    ] + [
        {"value": v, "type": "domain", "source": "precheck-src", "lastSeen": (NOW - timedelta(hours=1)).isoformat()}
        for v in VALID
    ]
    before: int = (await system.tenant.get("/_sim/requests")).json()["total"]
    await system.post_indicators(items)
    await system.push_lists()
    state = (await system.tenant.get("/_sim/state")).json()["urllists"]["precheck-list"]
    assert set(state["pending"] or []) == set(VALID)
    # Nothing was refused entry by entry: the invalid entries were never sent.
    answered = (await system.tenant.get("/_sim/requests", params={"since": before})).json()["requests"]
    assert [c for c in answered if c["status"] == 400] == []
    r = await system.api.get(f"/api/cte/sharing/{sharing['id']}/status")
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["state"] == "ok"
    assert st["entries"] == len(VALID)
    assert st["leftOut"] == {"cap": 0, "tenantLimit": 0, "invalid": len(INVALID), "rejected": 0}
    for value, kind in INVALID.items():
        item = await system.indicator(canonicalize(IndicatorType(kind), value))
        assert item is not None
        assert "Invalid host" in item["tags"], item
        assert "Unshared" not in item["tags"]
        assert item["sharedWith"] == []
    for value in VALID:
        item = await system.indicator(value)
        assert item is not None
        assert item["sharedWith"] == [destination]
        assert "Invalid host" not in item["tags"]
