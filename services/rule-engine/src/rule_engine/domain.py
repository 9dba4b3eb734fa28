"""Merging indicator events into indicator state. Pure: no I/O, so every rule is unit-tested.

The merge follows the reference's reconciliation (section 1.4 of the domain notes) with the
project's decisions: ``expires_at`` None means "never expires"; the top-level first/last seen are
the min/max over sources; the top-level reputation, severity and comments stay the first sighting's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property

from cte_common.events import (
    AnyIndicatorEvent,
    IndicatorDelete,
    IndicatorExpire,
    IndicatorRetraction,
    IndicatorSighting,
    IndicatorTagEdit,
    ShareIntentRecord,
    SightingEvent,
    event_id_stream,
)
from cte_common.indicator_schema import IndicatorView
from cte_common.indicators import SEVERITY_RANK, IndicatorType, Severity
from cte_common.sharing import AllowEntry, Evaluator, SharingDef

# A sighting as the model or, from an envelope, as msgspec decoded it (cte_common.envelope).
Sighting = IndicatorSighting | SightingEvent


# Slots: a batch creates thousands of these, and reads their fields many times over.
@dataclass(slots=True)
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


@dataclass(slots=True)
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
    safe: bool = False
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


def _replaces_metadata(entry: SourceEntry, ev: Sighting) -> bool:
    if ev.criterion == "firstSeen":
        return ev.first_seen < entry.first_seen
    if ev.criterion == "highestSeverity":
        new_rank, old_rank = SEVERITY_RANK[ev.severity], SEVERITY_RANK[entry.severity]
        return new_rank > old_rank or (new_rank == old_rank and ev.last_seen > entry.last_seen)
    return ev.last_seen > entry.last_seen


def _new_entry(ev: Sighting) -> SourceEntry:
    return SourceEntry(
        source=ev.source,
        first_seen=ev.first_seen,
        last_seen=ev.last_seen,
        reputation=ev.reputation,
        severity=ev.severity,
        comments=ev.comments,
        extended_information=ev.extended_information,
        tags=list(dict.fromkeys(ev.tags)) if ev.tags else [],
        internal_hits=1 if ev.internal else 0,
        external_hits=0 if ev.internal else 1,
    )


def apply_sighting(state: IndicatorState | None, ev: Sighting) -> IndicatorState:
    # A source may report it inactive (the reference's input ``active``), else it is while not expired.
    sighting_active = ev.active and (ev.expires_at is None or ev.expires_at > ev.occurred_at)
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
            safe=ev.safe,
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
        safe=state.safe or ev.safe,
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
    # The indicator's dates are its current sources': a filter on the sources' lastSeen is answered from
    # the indicator's own column (cte_common.query.sql), which must stay the latest of them.
    return replace(
        state,
        sources=sources,
        dropped_sources=True,
        first_seen=min(e.first_seen for e in sources.values()),
        last_seen=max(e.last_seen for e in sources.values()),
    )


class Deleted:
    """Marks an indicator deleted in the result of :func:`apply_events`."""


DELETED = Deleted()


def apply_events(
    states: dict[str, IndicatorState], events: Sequence[AnyIndicatorEvent | SightingEvent]
) -> dict[str, IndicatorState | Deleted]:
    """Fold a batch of events, in order, over the loaded states; return only what changed."""
    changed: dict[str, IndicatorState | Deleted] = {}
    for ev in events:
        known = changed.get(ev.value, states.get(ev.value))
        current = None if isinstance(known, Deleted) else known
        result: IndicatorState | Deleted | None
        # By kind, not isinstance: isinstance against a pydantic model goes through ABCMeta, about a
        # microsecond per check and event.
        if ev.kind == "sighting":
            result = apply_sighting(current, ev)
        elif ev.kind == "expire":
            result = apply_expire(current, ev)
        elif ev.kind == "retraction":
            result = apply_retraction(current, ev)
        elif ev.kind == "tags":
            result = apply_tag_edit(current, ev)
        else:
            result = apply_delete(current, ev)
        if result is not None:
            changed[ev.value] = result
    return changed


def in_order(
    changed: dict[str, IndicatorState | Deleted], values: Sequence[str]
) -> dict[str, IndicatorState | Deleted]:
    """``changed`` in the order of ``values`` (each value of ``changed`` is among them)."""
    return {v: changed[v] for v in values if v in changed}


# --- sharing decisions --------------------------------------------------------------------------


def indicator_view(state: IndicatorState) -> IndicatorView:
    """The indicator's filterable fields, which the filter language and the sharing decision read: a plain
    dict (one per indicator of every batch), its names checked by the type of cte_common's schema."""
    return {
        "value": state.value,
        "type": state.type.value,
        "test": state.test,
        "safe": state.safe,
        "active": state.active,
        "expiresAt": state.expires_at,
        "internalHits": state.internal_hits,
        "externalHits": state.external_hits,
        "sharedWith": [],
        "sources": [
            {
                "source": e.source,
                "reputation": e.reputation,
                "severity": e.severity.value,
                "comments": e.comments,
                "extendedInformation": e.extended_information,
                "tags": e.tags,
                "firstSeen": e.first_seen,
                "lastSeen": e.last_seen,
                "internalHits": e.internal_hits,
                "externalHits": e.external_hits,
                "retracted": e.retracted,
            }
            for e in state.sources.values()
        ],
    }


@dataclass(frozen=True)
class Announced:
    """What the sink was last told about one (sharing, value): in the list with this priority and cost."""

    priority: float
    cost: int
    list_key: str = ""


@dataclass
class DecisionChanges:
    """The outcome of deciding a batch: decision rows to write and delete, and the intents to publish."""

    # sharing, value, list, priority, cost, and whether the row exists (an update) or not (an insert)
    upserts: list[tuple[int, str, str, float, int, bool]] = field(default_factory=list)
    deletes: list[tuple[int, str]] = field(default_factory=list)
    intents: list[ShareIntentRecord] = field(default_factory=list)
    outcomes: dict[tuple[int, str], int] = field(default_factory=dict)
    allow_hits: dict[int, int] = field(default_factory=dict)


def decide_batch(
    catalog: Catalog,
    evaluator: Evaluator,
    states: Mapping[str, IndicatorState | Deleted | None],
    announced: Mapping[str, Mapping[int, Announced]],
    now: datetime,
    *,
    before: Mapping[str, IndicatorState] | None = None,
    count_allow_hits: bool = True,
) -> DecisionChanges:
    """Decide every sharing that could concern each value and keep only the changes of decision.

    A sharing concerns a value when its source reports the value now, or the value is in its list now
    (it may have to leave). Muted rules are frozen: their sharings' decisions do not change.
    """
    out = DecisionChanges()
    ids = event_id_stream()

    def removal(list_key: str, value: str, kind: IndicatorType) -> ShareIntentRecord:
        return ShareIntentRecord(
            event_id=next(ids), occurred_at=now, list_key=list_key, value=value, type=kind, add=False
        )

    for value, state in states.items():
        current = announced.get(value, {})
        alive = state if isinstance(state, IndicatorState) else None
        # A deleted indicator's remove intents carry the type it had.
        kind = alive.type if alive is not None else (before or {}).get(value, _UNKNOWN).type
        view = indicator_view(alive) if alive is not None else None
        concerned = set(current)
        if alive is not None:
            for source in alive.sources:
                concerned.update(catalog.sharings_of_source.get(source, ()))
        for sharing_id in sorted(concerned):
            sharing = catalog.by_id.get(sharing_id)
            if sharing is not None and sharing.rule.muted_at(now):
                continue
            decision = evaluator.decide(sharing, view) if sharing is not None and view is not None else None
            if decision is not None:
                key = (sharing_id, decision.outcome)
                out.outcomes[key] = out.outcomes.get(key, 0) + 1
                if decision.allow_entry is not None and count_allow_hits:
                    out.allow_hits[decision.allow_entry] = out.allow_hits.get(decision.allow_entry, 0) + 1
            prior = current.get(sharing_id)
            if decision is not None and decision.selected and sharing is not None:
                if prior is not None and prior.list_key and prior.list_key != sharing.list_key:
                    # The sharing now targets another list: leave the old one.
                    out.intents.append(removal(prior.list_key, value, kind))
                    prior = None
                if prior is None or prior.priority != decision.priority or prior.cost != decision.cost:
                    out.upserts.append(
                        (sharing_id, value, sharing.list_key, decision.priority, decision.cost, sharing_id in current)
                    )
                    out.intents.append(
                        ShareIntentRecord(
                            event_id=next(ids),
                            occurred_at=now,
                            list_key=sharing.list_key,
                            value=value,
                            type=kind,
                            add=True,
                            priority=decision.priority,
                            cost_bytes=decision.cost,
                        )
                    )
            elif prior is not None:
                out.deletes.append((sharing_id, value))
                list_key = prior.list_key or (
                    sharing.list_key if sharing is not None else catalog.orphan_lists.get(sharing_id, "")
                )
                if list_key:
                    out.intents.append(removal(list_key, value, kind))
    return out


class _Unknown:
    type = IndicatorType.URL  # only for a value deleted before it was ever loaded: the sink ignores type


_UNKNOWN = _Unknown()


@dataclass
class Catalog:
    """The sharing configurations, their rules and the allow-list, as the rule-engine evaluates them."""

    sharings: list[SharingDef] = field(default_factory=list)
    allow: list[AllowEntry] = field(default_factory=list)
    # Lists of sharings that were deleted while their decisions remain: they must be emptied.
    orphan_lists: dict[int, str] = field(default_factory=dict)
    fingerprint: str = ""

    @cached_property
    def by_id(self) -> dict[int, SharingDef]:
        # Read for every value and sharing of a batch; the catalog is replaced, never changed, on reload.
        return {s.id: s for s in self.sharings}

    @cached_property
    def sharings_of_source(self) -> dict[str, list[int]]:
        """The ids of the sharings of each source: every value of a batch asks for its sources'."""
        out: dict[str, list[int]] = {}
        for s in self.sharings:
            out.setdefault(s.source, []).append(s.id)
        return out

    def muted_sharings(self, now: datetime) -> list[int]:
        """The sharings whose rule is muted at ``now``: their decisions stay as they are, even those of
        indicators that no longer exist, until the rule is unmuted."""
        return [s.id for s in self.sharings if s.rule.muted_at(now)]
