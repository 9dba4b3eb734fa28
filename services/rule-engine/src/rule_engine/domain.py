"""Merging indicator events into indicator state. Pure: no I/O, so every rule is unit-tested.

The merge follows the reference's reconciliation (section 1.4 of the domain notes) with the
project's decisions: ``expires_at`` None means "never expires"; the top-level first/last seen are
the min/max over sources; the top-level reputation, severity and comments stay the first sighting's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from cte_common.events import (
    AnyIndicatorEvent,
    IndicatorDelete,
    IndicatorExpire,
    IndicatorRetraction,
    IndicatorSighting,
    IndicatorTagEdit,
)
from cte_common.indicators import SEVERITY_RANK, IndicatorType, Severity


@dataclass
class SourceEntry:
    source: str
    first_seen: datetime
    last_seen: datetime
    reputation: int | None
    severity: Severity
    comments: str = ""
    extended_information: str = ""
    tags: list[str] = field(default_factory=list)
    internal_hits: int = 0
    external_hits: int = 0
    retracted: bool = False


@dataclass
class IndicatorState:
    value: str
    type: IndicatorType
    source: str
    first_seen: datetime
    last_seen: datetime
    reputation: int | None
    severity: Severity
    comments: str
    extended_information: str
    expires_at: datetime | None
    active: bool = True
    test: bool = False
    internal_hits: int = 0
    external_hits: int = 0
    sources: dict[str, SourceEntry] = field(default_factory=dict)
    # Set when a source's entry was removed, so the repository deletes its row.
    dropped_sources: bool = False


def _merge_tags(old: list[str], new: list[str], strategy: str) -> list[str]:
    if strategy == "overwrite":
        return list(dict.fromkeys(new))
    return list(dict.fromkeys([*old, *new]))


def _later_expiry(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return None
    return max(a, b)


def _replaces_metadata(entry: SourceEntry, ev: IndicatorSighting) -> bool:
    if ev.criterion == "firstSeen":
        return ev.first_seen < entry.first_seen
    if ev.criterion == "highestSeverity":
        new_rank, old_rank = SEVERITY_RANK[ev.severity], SEVERITY_RANK[entry.severity]
        return new_rank > old_rank or (new_rank == old_rank and ev.last_seen > entry.last_seen)
    return ev.last_seen > entry.last_seen


def _new_entry(ev: IndicatorSighting) -> SourceEntry:
    return SourceEntry(
        source=ev.source,
        first_seen=ev.first_seen,
        last_seen=ev.last_seen,
        reputation=ev.reputation,
        severity=ev.severity,
        comments=ev.comments,
        extended_information=ev.extended_information,
        tags=list(dict.fromkeys(ev.tags)),
        internal_hits=1 if ev.internal else 0,
        external_hits=0 if ev.internal else 1,
    )


def apply_sighting(state: IndicatorState | None, ev: IndicatorSighting) -> IndicatorState:
    sighting_active = ev.expires_at is None or ev.expires_at > ev.occurred_at
    if state is None:
        return IndicatorState(
            value=ev.value,
            type=ev.type,
            source=ev.source,
            first_seen=ev.first_seen,
            last_seen=ev.last_seen,
            reputation=ev.reputation,
            severity=ev.severity,
            comments=ev.comments,
            extended_information=ev.extended_information,
            expires_at=ev.expires_at,
            active=sighting_active,
            test=ev.test,
            internal_hits=1 if ev.internal else 0,
            external_hits=0 if ev.internal else 1,
            sources={ev.source: _new_entry(ev)},
        )
    sources = dict(state.sources)
    entry = sources.get(ev.source)
    if entry is None:
        sources[ev.source] = _new_entry(ev)
    else:
        merged = replace(
            entry,
            first_seen=min(entry.first_seen, ev.first_seen),
            last_seen=max(entry.last_seen, ev.last_seen),
            internal_hits=entry.internal_hits + (1 if ev.internal else 0),
            external_hits=entry.external_hits + (0 if ev.internal else 1),
            # A new sighting from a source withdraws that source's retraction (reference behaviour).
            retracted=False,
        )
        if _replaces_metadata(entry, ev):
            merged.reputation = ev.reputation
            merged.severity = ev.severity
            merged.comments = ev.comments
            merged.extended_information = ev.extended_information
            merged.tags = _merge_tags(entry.tags, ev.tags, ev.tags_strategy)
        elif ev.from_api:
            # The API is an explicit edit: its comments and tags apply whatever the criterion says.
            merged.comments = ev.comments
            merged.tags = _merge_tags(entry.tags, ev.tags, ev.tags_strategy)
        sources[ev.source] = merged
    return replace(
        state,
        first_seen=min(state.first_seen, ev.first_seen),
        last_seen=max(state.last_seen, ev.last_seen),
        expires_at=_later_expiry(state.expires_at, ev.expires_at),
        active=state.active or sighting_active,
        internal_hits=state.internal_hits + (1 if ev.internal else 0),
        external_hits=state.external_hits + (0 if ev.internal else 1),
        sources=sources,
    )


def apply_expire(state: IndicatorState | None, ev: IndicatorExpire) -> IndicatorState | None:
    """Deactivate if still due; None when the command no longer applies (gone, inactive, extended)."""
    if state is None or not state.active or state.expires_at is None or state.expires_at > ev.due_at:
        return None
    return replace(state, active=False)


def apply_retraction(state: IndicatorState | None, ev: IndicatorRetraction) -> IndicatorState | None:
    """Set one source's retraction flag; None when it does not apply (no such indicator or source)."""
    if state is None or ev.source not in state.sources or state.sources[ev.source].retracted == ev.retracted:
        return None
    sources = dict(state.sources)
    sources[ev.source] = replace(sources[ev.source], retracted=ev.retracted)
    return replace(state, sources=sources)


def apply_tag_edit(state: IndicatorState | None, ev: IndicatorTagEdit) -> IndicatorState | None:
    """Remove, then add, tags on one source's entry or on all of them; None when nothing changes."""
    if state is None:
        return None
    targets = [ev.source] if ev.source is not None else list(state.sources)
    sources = dict(state.sources)
    removed = set(ev.remove)
    changed = False
    for name in targets:
        entry = sources.get(name)
        if entry is None:
            continue
        tags = list(dict.fromkeys([*(t for t in entry.tags if t not in removed), *ev.add]))
        if tags != entry.tags:
            sources[name] = replace(entry, tags=tags)
            changed = True
    return replace(state, sources=sources) if changed else None


def apply_delete(state: IndicatorState | None, ev: IndicatorDelete) -> IndicatorState | Deleted | None:
    """Delete the indicator, or one source's entry; the indicator goes with its last source."""
    if state is None:
        return None
    if ev.source is None:
        return DELETED
    if ev.source not in state.sources:
        return None
    sources = {k: v for k, v in state.sources.items() if k != ev.source}
    if not sources:
        return DELETED
    return replace(state, sources=sources, dropped_sources=True)


class Deleted:
    """Marks an indicator deleted in the result of :func:`apply_events`."""


DELETED = Deleted()


def apply_events(
    states: dict[str, IndicatorState], events: Sequence[AnyIndicatorEvent]
) -> dict[str, IndicatorState | Deleted]:
    """Fold a batch of events, in order, over the loaded states; return only what changed."""
    changed: dict[str, IndicatorState | Deleted] = {}
    for ev in events:
        known = changed.get(ev.value, states.get(ev.value))
        current = None if isinstance(known, Deleted) else known
        result: IndicatorState | Deleted | None
        if isinstance(ev, IndicatorSighting):
            result = apply_sighting(current, ev)
        elif isinstance(ev, IndicatorExpire):
            result = apply_expire(current, ev)
        elif isinstance(ev, IndicatorRetraction):
            result = apply_retraction(current, ev)
        elif isinstance(ev, IndicatorTagEdit):
            result = apply_tag_edit(current, ev)
        else:
            result = apply_delete(current, ev)
        if result is not None:
            changed[ev.value] = result
    return changed
