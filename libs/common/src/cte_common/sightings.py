"""How a source configuration shapes a sighting: Override Reputation and Aging Criteria, resolved
when the sighting is made, whoever makes it (the API for a POST, the Netskope poller for an alert)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from cte_common.events import Criterion, IndicatorSighting, TagsStrategy
from cte_common.indicators import IndicatorType, Severity

__all__ = [
    "DEFAULT_REPUTATION",
    "AgingCriteria",
    "AgingSpan",
    "AgingUnit",
    "SightingPolicy",
    "SourceConfiguration",
    "make_sighting",
]

AgingUnit = Literal["days", "hours", "minutes"]
_UNIT_SECONDS = {"days": 86_400, "hours": 3_600, "minutes": 60}
# A reported indicator's reputation when the reporter gives none (the reference's default).
DEFAULT_REPUTATION = 5


class AgingSpan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: int = Field(ge=0, le=525_600)  # 0: never expires
    unit: AgingUnit = "days"

    def delta(self) -> timedelta | None:
        return timedelta(seconds=self.value * _UNIT_SECONDS[self.unit]) if self.value else None


class AgingCriteria(AgingSpan):
    """Aging beyond the reference's whole days: a unit, the base of the count (the ingest time as in
    the reference, or the sighting's first or last seen time, like MineMeld's ``last_seen+30d``), and
    per-type overrides (URLs for 7 days, hashes for 180, say)."""

    base: Literal["ingest", "firstSeen", "lastSeen"] = "ingest"
    perType: dict[IndicatorType, AgingSpan] = Field(default_factory=dict)

    def for_type(self, kind: IndicatorType) -> timedelta | None:
        return self.perType[kind].delta() if kind in self.perType else self.delta()


class SourceConfiguration(BaseModel):
    """What a sighting needs of the configuration that reported it (a row of ``configurations``)."""

    name: str
    plugin: str
    active: bool = True
    age_after_days: int = 90
    reputation: int = 0
    tags_aggregate_strategy: TagsStrategy = "append"
    aging: AgingCriteria | None = None

    def aging_criteria(self) -> AgingCriteria:
        return self.aging or AgingCriteria(value=self.age_after_days, unit="days")


class SightingPolicy:
    """What a configuration decides for every sighting it reports, resolved once for many sightings
    (a POST's batch): the expiry from its aging criteria, the reputation override, the event's fields
    that come from the configuration. :func:`make_sighting` and the ingest-api's batch path both use it."""

    __slots__ = ("_aging", "_spans", "internal", "name", "override", "tags_strategy")

    def __init__(self, config: SourceConfiguration) -> None:
        self.name = config.name
        self._aging = config.aging_criteria()
        self._spans: dict[IndicatorType, timedelta | None] = {}
        self.override = config.reputation if 1 <= config.reputation <= 10 else None
        self.internal = config.plugin == "netskope"
        self.tags_strategy: TagsStrategy = config.tags_aggregate_strategy

    def expires_at(
        self, kind: IndicatorType, now: datetime, first_seen: datetime, last_seen: datetime
    ) -> datetime | None:
        """Without an expiry from the reporter: the aging span counted from its base; None (never) for a
        span of 0 (the project's reading of the reference's ambiguous "0")."""
        try:
            span = self._spans[kind]
        except KeyError:
            span = self._spans[kind] = self._aging.for_type(kind)
        if span is None:
            return None
        base = self._aging.base
        return (now if base == "ingest" else first_seen if base == "firstSeen" else last_seen) + span

    def reputation(self, reported: int | None) -> int:
        """Override Reputation (1..10) replaces the reported reputation, 0 keeps it."""
        return self.override if self.override is not None else (reported or DEFAULT_REPUTATION)


def make_sighting(
    *,
    value: str,
    kind: IndicatorType,
    config: SourceConfiguration,
    criterion: Criterion,
    now: datetime,
    first_seen: datetime,
    last_seen: datetime,
    expires_at: datetime | None = None,
    reputation: int | None = None,
    severity: Severity = Severity.UNKNOWN,
    tags: list[str] | None = None,
    comments: str = "",
    extended_information: str = "",
    test: bool = False,
    from_api: bool = False,
    event_id: UUID | None = None,
    safe: bool = False,
    active: bool = True,
) -> IndicatorSighting:
    """The sighting with the configuration's effects resolved (:class:`SightingPolicy`), so replaying it
    needs no configuration."""
    policy = SightingPolicy(config)
    if expires_at is None:
        expires_at = policy.expires_at(kind, now, first_seen, last_seen)
    return IndicatorSighting(
        event_id=event_id or uuid4(),
        occurred_at=now,
        value=value,
        type=kind,
        source=config.name,
        reputation=policy.reputation(reputation),
        severity=severity,
        tags=tags or [],
        comments=comments,
        extended_information=extended_information,
        first_seen=first_seen,
        last_seen=last_seen,
        expires_at=expires_at,
        internal=policy.internal,
        test=test,
        criterion=criterion,
        tags_strategy=policy.tags_strategy,
        from_api=from_api,
        safe=safe,
        active=active,
    )
