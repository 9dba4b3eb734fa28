"""The read model's merge rules (rule_engine.domain), per the reference's reconciliation criteria."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cte_common.events import (
    IndicatorDelete,
    IndicatorExpire,
    IndicatorRetraction,
    IndicatorSighting,
    IndicatorTagEdit,
)
from cte_common.indicators import IndicatorType, Severity
from rule_engine.domain import (
    DELETED,
    IndicatorState,
    apply_delete,
    apply_events,
    apply_expire,
    apply_retraction,
    apply_sighting,
    apply_tag_edit,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sighting(**kw: Any) -> IndicatorSighting:
    base: dict[str, Any] = {
        "value": "evil.example",
        "type": IndicatorType.DOMAIN,
        "source": "feed-a",
        "reputation": 5,
        "severity": Severity.LOW,
        "first_seen": T0,
        "last_seen": T0,
        "occurred_at": T0,
        "expires_at": T0 + timedelta(days=30),
    }
    base.update(kw)
    return IndicatorSighting(**base)


def test_first_sighting_creates_indicator_with_one_source() -> None:
    state = apply_sighting(None, sighting(tags=["a", "a", "b"]))
    assert state.active
    assert state.external_hits == 1
    assert state.internal_hits == 0
    assert list(state.sources) == ["feed-a"]
    assert state.sources["feed-a"].tags == ["a", "b"]


def test_second_source_adds_an_entry_and_top_level_spans_both() -> None:
    s1 = apply_sighting(None, sighting())
    later = T0 + timedelta(days=2)
    s2 = apply_sighting(s1, sighting(source="feed-b", first_seen=later, last_seen=later, internal=True))
    assert set(s2.sources) == {"feed-a", "feed-b"}
    assert (s2.internal_hits, s2.external_hits) == (1, 1)
    assert (s2.first_seen, s2.last_seen) == (T0, later)
    assert s2.source == "feed-a"  # the first reporter stays the top-level source


def test_last_seen_criterion_replaces_metadata_only_when_newer() -> None:
    s1 = apply_sighting(None, sighting(severity=Severity.LOW, tags=["old"]))
    newer = T0 + timedelta(hours=1)
    s2 = apply_sighting(s1, sighting(last_seen=newer, severity=Severity.HIGH, reputation=9, tags=["new"]))
    entry = s2.sources["feed-a"]
    assert (entry.severity, entry.reputation, entry.tags) == (Severity.HIGH, 9, ["old", "new"])
    older = T0 - timedelta(hours=1)
    s3 = apply_sighting(s2, sighting(first_seen=older, last_seen=older, severity=Severity.UNKNOWN, tags=["x"]))
    entry = s3.sources["feed-a"]
    assert entry.severity == Severity.HIGH
    assert entry.tags == ["old", "new"]
    assert entry.first_seen == older
    assert entry.external_hits == 3


def test_first_seen_criterion_keeps_oldest_metadata() -> None:
    s1 = apply_sighting(None, sighting(criterion="firstSeen", comments="first"))
    newer = T0 + timedelta(days=1)
    s2 = apply_sighting(s1, sighting(criterion="firstSeen", first_seen=newer, last_seen=newer, comments="later"))
    assert s2.sources["feed-a"].comments == "first"
    assert s2.sources["feed-a"].last_seen == newer
    older = T0 - timedelta(days=1)
    s3 = apply_sighting(s2, sighting(criterion="firstSeen", first_seen=older, last_seen=older, comments="oldest"))
    assert s3.sources["feed-a"].comments == "oldest"


def test_highest_severity_criterion() -> None:
    s1 = apply_sighting(None, sighting(criterion="highestSeverity", severity=Severity.HIGH, comments="high"))
    later = T0 + timedelta(days=1)
    s2 = apply_sighting(
        s1, sighting(criterion="highestSeverity", severity=Severity.LOW, last_seen=later, comments="low")
    )
    assert s2.sources["feed-a"].severity == Severity.HIGH
    assert s2.sources["feed-a"].comments == "high"
    s3 = apply_sighting(s2, sighting(criterion="highestSeverity", severity=Severity.CRITICAL, comments="crit"))
    assert s3.sources["feed-a"].severity == Severity.CRITICAL


def test_overwrite_tags_strategy() -> None:
    s1 = apply_sighting(None, sighting(tags=["a", "b"]))
    s2 = apply_sighting(s1, sighting(last_seen=T0 + timedelta(seconds=1), tags=["c"], tags_strategy="overwrite"))
    assert s2.sources["feed-a"].tags == ["c"]


def test_api_sighting_applies_comments_and_tags_even_when_older() -> None:
    s1 = apply_sighting(None, sighting(comments="a", tags=["x"]))
    s2 = apply_sighting(s1, sighting(from_api=True, comments="edited", tags=["y"]))
    assert s2.sources["feed-a"].comments == "edited"
    assert s2.sources["feed-a"].tags == ["x", "y"]


def test_expiry_merge_none_means_never_and_later_wins() -> None:
    s1 = apply_sighting(None, sighting(expires_at=T0 + timedelta(days=1)))
    s2 = apply_sighting(s1, sighting(expires_at=T0 + timedelta(days=5)))
    assert s2.expires_at == T0 + timedelta(days=5)
    s3 = apply_sighting(s2, sighting(expires_at=T0 + timedelta(days=2)))
    assert s3.expires_at == T0 + timedelta(days=5)
    s4 = apply_sighting(s3, sighting(expires_at=None))
    assert s4.expires_at is None


def test_expire_applies_only_while_still_due() -> None:
    due = T0 + timedelta(days=1)
    state = apply_sighting(None, sighting(expires_at=due))
    expired = apply_expire(state, IndicatorExpire(value=state.value, due_at=due))
    assert expired is not None
    assert not expired.active
    assert apply_expire(expired, IndicatorExpire(value=state.value, due_at=due)) is None  # already inactive
    extended = apply_sighting(state, sighting(expires_at=due + timedelta(days=3)))
    assert apply_expire(extended, IndicatorExpire(value=state.value, due_at=due)) is None  # re-sighted
    assert apply_expire(None, IndicatorExpire(value="gone", due_at=due)) is None


def test_resighting_reactivates_and_unretracts() -> None:
    due = T0 + timedelta(days=1)
    state = apply_sighting(None, sighting(expires_at=due))
    state.sources["feed-a"].retracted = True
    expired = apply_expire(state, IndicatorExpire(value=state.value, due_at=due))
    assert expired is not None
    again = apply_sighting(expired, sighting(occurred_at=due + timedelta(hours=1), expires_at=due + timedelta(days=9)))
    assert again.active
    assert not again.sources["feed-a"].retracted


def test_apply_events_folds_in_order_and_returns_only_changes() -> None:
    due = T0 + timedelta(days=1)
    events = [
        sighting(expires_at=due),
        sighting(source="feed-b", expires_at=due),
        IndicatorExpire(value="evil.example", due_at=due),
        IndicatorExpire(value="unknown.example", due_at=due),
    ]
    changed = apply_events({}, events)
    assert list(changed) == ["evil.example"]
    state = changed["evil.example"]
    assert isinstance(state, IndicatorState)
    assert state.external_hits == 2
    assert not state.active


def test_retraction_sets_one_source_and_ignores_no_ops() -> None:
    state = apply_sighting(apply_sighting(None, sighting()), sighting(source="feed-b"))
    retracted = apply_retraction(state, IndicatorRetraction(value=state.value, source="feed-b", retracted=True))
    assert retracted is not None
    assert retracted.sources["feed-b"].retracted
    assert not retracted.sources["feed-a"].retracted
    again = IndicatorRetraction(value=state.value, source="feed-b", retracted=True)
    assert apply_retraction(retracted, again) is None
    other = IndicatorRetraction(value=state.value, source="nobody", retracted=True)
    assert apply_retraction(state, other) is None


def test_tag_edit_on_one_source_or_all() -> None:
    state = apply_sighting(apply_sighting(None, sighting(tags=["a", "b"])), sighting(source="feed-b", tags=["b"]))
    one = apply_tag_edit(state, IndicatorTagEdit(value=state.value, source="feed-a", remove=["b"], add=["c"]))
    assert one is not None
    assert (one.sources["feed-a"].tags, one.sources["feed-b"].tags) == (["a", "c"], ["b"])
    everywhere = apply_tag_edit(state, IndicatorTagEdit(value=state.value, remove=["b"]))
    assert everywhere is not None
    assert (everywhere.sources["feed-a"].tags, everywhere.sources["feed-b"].tags) == (["a"], [])
    assert apply_tag_edit(state, IndicatorTagEdit(value=state.value, remove=["zzz"])) is None


def test_delete_whole_indicator_or_one_source() -> None:
    state = apply_sighting(apply_sighting(None, sighting()), sighting(source="feed-b"))
    assert apply_delete(state, IndicatorDelete(value=state.value)) is DELETED
    one = apply_delete(state, IndicatorDelete(value=state.value, source="feed-a"))
    assert isinstance(one, IndicatorState)
    assert list(one.sources) == ["feed-b"]
    assert one.dropped_sources
    assert apply_delete(one, IndicatorDelete(value=state.value, source="feed-b")) is DELETED
    assert apply_delete(None, IndicatorDelete(value="x")) is None


def test_dropping_a_source_takes_its_dates_out_of_the_indicators() -> None:
    # The indicator's dates are its current sources': filters on the sources' lastSeen read its own.
    early, late = T0 - timedelta(days=3), T0 + timedelta(days=2)
    state = apply_sighting(
        apply_sighting(None, sighting(first_seen=early, last_seen=T0)),
        sighting(source="feed-b", first_seen=T0, last_seen=late),
    )
    assert (state.first_seen, state.last_seen) == (early, late)
    without_b = apply_delete(state, IndicatorDelete(value=state.value, source="feed-b"))
    assert isinstance(without_b, IndicatorState)
    assert (without_b.first_seen, without_b.last_seen) == (early, T0)
    without_a = apply_delete(state, IndicatorDelete(value=state.value, source="feed-a"))
    assert isinstance(without_a, IndicatorState)
    assert (without_a.first_seen, without_a.last_seen) == (T0, late)


def test_events_after_a_delete_in_the_same_batch_start_afresh() -> None:
    events = [sighting(), IndicatorDelete(value="evil.example"), sighting(source="feed-b")]
    changed = apply_events({}, events)
    state = changed["evil.example"]
    assert isinstance(state, IndicatorState)
    assert list(state.sources) == ["feed-b"]
    assert state.external_hits == 1
