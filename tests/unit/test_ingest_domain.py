"""The ingest-api's pure rules: batch validation, configuration effects, tokens and scopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ager.domain import Dispatched
from ingest_api.access.domain import granted_scopes, issue_token, read_token
from ingest_api.configurations.schemas import AgingCriteria, ConfigurationRow
from ingest_api.dashboards.repository import dashboard_ids, dashboard_query
from ingest_api.indicators.domain import build_sighting, list_status_fields, validate_batch, value_candidates
from ingest_api.indicators.repository import sort_clause
from ingest_api.tags.domain import applied_on

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def config(**kw: object) -> ConfigurationRow:
    base: dict[str, object] = {
        "name": "DW",
        "plugin": "api_source",
        "active": True,
        "age_after_days": 90,
        "reputation": 0,
        "tags_aggregate_strategy": "append",
    }
    base.update(kw)
    return ConfigurationRow.model_validate(base)


def test_validate_batch_reports_every_bad_item_and_keeps_none_of_them() -> None:
    raw = [
        {"value": "Example.COM.", "type": "domain", "source": "DW"},
        {"value": "abc", "type": "md5", "source": "DW"},
        {"value": "x.example", "type": "domain", "source": "other"},
        {"value": "x.example", "type": "colour", "source": "DW"},
        {
            "value": "x.example",
            "type": "domain",
            "source": "DW",
            "firstSeen": "2026-02-01",
            "lastSeen": "2026-01-01",
        },
        {"value": "x.example", "type": "domain", "source": "DW", "extendedInformation": "ftp://x"},
        42,
    ]
    items, errors = validate_batch(raw, {"DW"})
    assert items[0].value == "example.com"
    assert {(e["index"], e["field"]) for e in errors} == {
        (1, "value"),
        (2, "source"),
        (3, "type"),
        (4, None),
        (5, "extendedInformation"),
        (6, None),
    }


def test_naive_times_are_utc() -> None:
    items, errors = validate_batch(
        [{"value": "1.2.3.4", "type": "ipv4", "source": "DW", "lastSeen": "2026-01-01T00:00:00"}], {"DW"}
    )
    assert not errors
    assert items[0].lastSeen == datetime(2026, 1, 1, tzinfo=UTC)


def test_override_reputation_and_aging() -> None:
    [item], _ = validate_batch([{"value": "1.2.3.4", "type": "ipv4", "source": "DW", "reputation": 3}], {"DW"})
    keep = build_sighting(item, config(reputation=0), "lastSeen", NOW)
    assert keep.reputation == 3
    assert keep.expires_at == NOW + timedelta(days=90)
    override = build_sighting(item, config(reputation=8, age_after_days=0), "lastSeen", NOW)
    assert override.reputation == 8
    assert override.expires_at is None
    assert override.from_api
    assert not override.internal
    assert build_sighting(item, config(plugin="netskope"), "firstSeen", NOW).internal


def test_given_expiry_wins_over_aging() -> None:
    given = "2027-01-01T00:00:00Z"
    [item], _ = validate_batch([{"value": "1.2.3.4", "type": "ipv4", "source": "DW", "expiresAt": given}], {"DW"})
    assert build_sighting(item, config(), "lastSeen", NOW).expires_at == datetime(2027, 1, 1, tzinfo=UTC)


def test_tokens_round_trip_and_refuse_forgery_and_expiry() -> None:
    key = "k" * 40
    tok = issue_token("client", ["cte_read"], key, timedelta(minutes=120), datetime.now(UTC))
    claims = read_token(tok, key)
    assert claims is not None
    assert claims.sub == "client"
    assert claims.scopes == ["cte_read"]
    assert read_token(tok, "other" * 10) is None
    old = issue_token("client", ["cte_read"], key, timedelta(minutes=1), datetime.now(UTC) - timedelta(hours=1))
    assert read_token(old, key) is None
    assert read_token("garbage", key) is None


def test_scopes_requested_must_be_a_subset() -> None:
    assert granted_scopes(None, ["cte_read", "cte_write"]) == ["cte_read", "cte_write"]
    assert granted_scopes("cte_read", ["cte_read", "cte_write"]) == ["cte_read"]
    assert granted_scopes("cte_read admin", ["cte_read", "cte_write"]) is None


def test_sort_clause_is_whitelisted() -> None:
    assert sort_clause("value; DROP TABLE indicators", True) == "ORDER BY i.value"
    assert "DESC" in sort_clause("sources.lastSeen", False)


def test_ager_does_not_republish_until_the_grace_period_passed() -> None:
    d = Dispatched(redispatch_after_seconds=30)
    due = [("a", NOW), ("b", NOW)]
    assert d.select(due, now=0) == due
    d.mark(due, now=0)
    assert d.select([*due, ("c", NOW)], now=10) == [("c", NOW)]
    assert d.select(due, now=31) == due


def test_dashboard_sql_groups_by_whitelisted_fields_only() -> None:
    sql = dashboard_query(["type", "sources.source"], None, "true", "$1")
    assert "JOIN indicator_sources s" in sql
    assert "count(DISTINCT i.value)" in sql
    assert "sum(i.external_hits)" in dashboard_query(["value"], None, "true", "$1")
    assert "sum(s.internal_hits)" in dashboard_query(["sources.source"], "internalHits", "true", "$1")
    assert dashboard_ids(["type", "sources.lastSeen"]) == ["type", "lastSeen"]
    for bad_group, bad_count in ((["type; DROP TABLE x"], None), (["type"], "value")):
        try:
            dashboard_query(bad_group, bad_count, "true", "$1")
        except ValueError:
            continue
        raise AssertionError("accepted a field outside the whitelist")


def test_value_candidates_cover_the_canonical_spellings() -> None:
    assert "www.example.com" in value_candidates("WWW.Example.com")
    assert "WWW.Example.com" in value_candidates("WWW.Example.com")
    assert value_candidates("b53f3c0cd32d7f20849850768da6431e5f876b7bfa61db0aa0700b02873393fa")[0].islower()


def test_applied_on() -> None:
    assert (applied_on(0, 5), applied_on(2, 5), applied_on(5, 5), applied_on(0, 0)) == ("none", "some", "all", "none")


def test_aging_criteria_units_base_and_per_type_overrides() -> None:
    aging = AgingCriteria.model_validate(
        {
            "value": 30,
            "unit": "days",
            "base": "lastSeen",
            "perType": {"url": {"value": 7, "unit": "days"}, "md5": {"value": 90, "unit": "minutes"}},
        }
    )
    cfg = config(aging=aging)
    seen = "2026-05-01T00:00:00Z"
    [url, md5, ip], _ = validate_batch(
        [
            {"value": "a.example/x", "type": "url", "source": "DW", "lastSeen": seen},
            {"value": "0" * 32, "type": "md5", "source": "DW", "lastSeen": seen},
            {"value": "1.2.3.4", "type": "ipv4", "source": "DW", "lastSeen": seen},
        ],
        {"DW"},
    )
    base = datetime(2026, 5, 1, tzinfo=UTC)
    assert build_sighting(url, cfg, "lastSeen", NOW).expires_at == base + timedelta(days=7)
    assert build_sighting(md5, cfg, "lastSeen", NOW).expires_at == base + timedelta(minutes=90)
    assert build_sighting(ip, cfg, "lastSeen", NOW).expires_at == base + timedelta(days=30)
    hourly = config(aging=AgingCriteria(value=2, unit="hours"))  # the ingest time by default
    assert build_sighting(ip, hourly, "lastSeen", NOW).expires_at == NOW + timedelta(hours=2)
    never = config(aging=AgingCriteria(value=0))
    assert build_sighting(ip, never, "lastSeen", NOW).expires_at is None


def test_the_list_statuses_give_the_tags_shared_with_and_each_source_destinations() -> None:
    lists = [
        {"source": "feed", "destination": "ns-a", "status": "shared"},
        {"source": "feed", "destination": "ns-b", "status": "left_out"},
        {"source": "other", "destination": "ns-b", "status": "pending"},
        {"source": "other", "destination": "ns-b", "status": "rejected"},
        {"source": "feed", "destination": "ns-c", "status": "unfit"},
    ]
    tags, shared_with, destinations = list_status_fields(lists)
    assert tags == ["Unshared", "Invalid host"]
    assert shared_with == ["ns-a"]
    assert destinations == {
        "feed": [
            {"name": "ns-a", "status": "shared"},
            {"name": "ns-b", "status": "failed"},
            {"name": "ns-c", "status": "failed"},
        ],
        # Two lists of one destination: the best status shows.
        "other": [{"name": "ns-b", "status": "pending"}],
    }
    assert list_status_fields([]) == ([], [], {})
