"""What alert polling decides without I/O: which alert types a configuration polls, the tenant-side
iterator name, a page's identity, how an alert becomes indicators (the reference's
get_indicators_from_json), and the IndicatorSighting each indicator becomes, by the same rules as the
ingest-api's build_sighting (reputation override, aging criteria, criterion, internal hits). Services do
not import each other, so those rules are reproduced here; tests/unit/test_polling.py checks both give
the same event."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from cte_common.canonical import InvalidIndicator, canonicalize
from cte_common.events import Criterion, IndicatorSighting
from cte_common.indicators import IndicatorType, Severity
from cte_common.sightings import SourceConfiguration, make_sighting

ALERT_TYPES = ("malware", "malsite")
# The configuration's threatDataTypes: the alert exports to poll and the indicator types they give.
POLLED_ALERT_TYPES: dict[str, tuple[str, ...]] = {
    "Malware": ("malware",),
    "URL": ("malsite",),
    "Both": ("malware", "malsite"),
}
POLLED_KINDS: dict[str, frozenset[IndicatorType]] = {
    "malware": frozenset({IndicatorType.MD5, IndicatorType.SHA256}),
    "malsite": frozenset({IndicatorType.URL}),
}
# The ingest API's limits on a posted indicator (IndicatorIn).
MAX_VALUE_LENGTH = 8192
MAX_COMMENTS_LENGTH = 10_000
_SEVERITIES = frozenset(s.value for s in Severity)


def polled_alert_types(parameters: Mapping[str, Any]) -> tuple[str, ...]:
    """The alert exports a Netskope configuration polls (threatDataTypes, "Both" by default)."""
    return POLLED_ALERT_TYPES.get(str(parameters.get("threatDataTypes") or "Both"), ALERT_TYPES)


def iterator_index(configuration: str, alert_type: str) -> str:
    """The dataexport iterator name of a configuration and alert type: stable, so a restarted poller
    continues the same iterator, and made of letters, digits and ``_`` whatever the configuration's
    name (a digest of the name keeps two names that differ only in punctuation apart)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", configuration).strip("_")[:48] or "config"
    digest = hashlib.sha256(configuration.encode()).hexdigest()[:8]
    return f"cte_{slug}_{digest}_{alert_type}"


def page_digest(alerts: Sequence[Any]) -> str:
    """A page's identity: a resent page has the same digest as the page it repeats."""
    text = json.dumps(list(alerts), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def initial_epoch(now: datetime, days: int) -> int:
    """The epoch the iterator starts at: now - the initial range."""
    return max(0, int((now - timedelta(days=days)).timestamp()))


@dataclass(frozen=True)
class AlertIndicator:
    """One indicator of an alert, before validation: the value as the alert carries it."""

    value: str
    type: IndicatorType
    severity: Severity
    seen: datetime
    comments: str


def _text(value: object) -> str:
    return "" if value is None else str(value)


def alert_time(alert: Mapping[str, Any], now: datetime) -> datetime:
    """The alert's timestamp (epoch seconds) as first and last seen; now when it has none or a bad one."""
    ts = alert.get("timestamp")
    if isinstance(ts, bool):
        return now
    try:
        return datetime.fromtimestamp(float(ts), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return now


def alert_severity(alert: Mapping[str, Any]) -> Severity:
    text = _text(alert.get("severity")).lower()
    return Severity(text) if text in _SEVERITIES else Severity.UNKNOWN


def alert_comments(alert: Mapping[str, Any], tenant: str) -> str:
    """The reference's comments: "<tenant> - <object>[, Malware Name: n][, Malware Type: t]" for a
    malware alert, "<tenant> - <categories, joined>" for a malsite alert."""
    kind = _text(alert.get("alert_type")).lower()
    if kind == "malware":
        comments = f"{tenant} - {_text(alert.get('object'))}"
        if malware_name := alert.get("malware_name"):
            comments = f"{comments}, Malware Name: {malware_name}"
        if malware_type := alert.get("malware_type"):
            comments = f"{comments}, Malware Type: {malware_type}"
    elif kind == "malsite":
        categories = alert.get("malsite_category") or []
        if isinstance(categories, str):
            categories = [categories]
        comments = f"{tenant} - {', '.join(_text(c) for c in categories)}"
    else:
        comments = tenant
    return comments.strip()[:MAX_COMMENTS_LENGTH]


def alert_indicators(
    alert: Mapping[str, Any], tenant: str, kinds: Collection[IndicatorType], now: datetime
) -> list[AlertIndicator]:
    """The indicators the reference takes from one alert: a malware alert gives its md5 and sha256,
    and its local_md5 / local_sha256 when those differ; a malsite alert gives its url. ``tenant`` is
    the tenant's name as the comments start with it."""
    kind = _text(alert.get("alert_type")).lower()
    values: list[tuple[str, IndicatorType]] = []
    if kind == "malware":
        for indicator_type, local_key, key in (
            (IndicatorType.MD5, "local_md5", "md5"),
            (IndicatorType.SHA256, "local_sha256", "sha256"),
        ):
            if indicator_type not in kinds:
                continue
            local, remote = alert.get(local_key), alert.get(key)
            if local == remote and remote:
                values.append((_text(remote), indicator_type))
                continue
            if local:
                values.append((_text(local), indicator_type))
            if remote:
                values.append((_text(remote), indicator_type))
    elif kind == "malsite" and alert.get("url") and IndicatorType.URL in kinds:
        values.append((_text(alert["url"]), IndicatorType.URL))
    if not values:
        return []
    seen, severity, comments = alert_time(alert, now), alert_severity(alert), alert_comments(alert, tenant)
    return [AlertIndicator(v, t, severity, seen, comments) for v, t in values]


def polled_sighting(
    value: str,
    kind: IndicatorType,
    *,
    severity: Severity,
    seen: datetime,
    comments: str,
    config: SourceConfiguration,
    criterion: Criterion,
    now: datetime,
    event_id: UUID | None = None,
) -> IndicatorSighting:
    """The sighting of a canonical value reported by ``config``: what a POST of the same item would make
    (first and last seen both the alert's time, the default reputation, no tags), except that a poll is
    not an API edit (``from_api`` false)."""
    return make_sighting(
        value=value,
        kind=kind,
        config=config,
        criterion=criterion,
        now=now,
        first_seen=seen,
        last_seen=seen,
        severity=severity,
        comments=comments,
        event_id=event_id,
    )


@dataclass
class PolledPage:
    """A page of alerts as sightings, in a deterministic order (the same page gives the same list),
    and what was skipped: values that are no valid indicator of their type, by type."""

    sightings: list[IndicatorSighting] = field(default_factory=list)
    invalid: dict[str, int] = field(default_factory=dict)


def polled_page(
    alerts: Sequence[Any],
    *,
    tenant: str,
    alert_type: str,
    config: SourceConfiguration,
    criterion: Criterion,
    now: datetime,
    event_ids: Callable[[int], UUID] | None = None,
) -> PolledPage:
    """Every alert of a page as sightings. Values are canonicalised like the API's; one alert gives a
    value once (an md5 and an equal local_md5 in another case are one indicator), so each alert adds
    one hit to each indicator it carries."""
    out = PolledPage()
    kinds = POLLED_KINDS.get(alert_type, frozenset())
    for alert in alerts:
        if not isinstance(alert, Mapping):
            out.invalid["alert"] = out.invalid.get("alert", 0) + 1
            continue
        taken: set[str] = set()
        for item in alert_indicators(alert, tenant, kinds, now):
            try:
                if len(item.value) > MAX_VALUE_LENGTH:
                    raise InvalidIndicator("too long")
                value = canonicalize(item.type, item.value)
            except InvalidIndicator:
                out.invalid[item.type.value] = out.invalid.get(item.type.value, 0) + 1
                continue
            if value in taken:
                continue
            taken.add(value)
            index = len(out.sightings)
            out.sightings.append(
                polled_sighting(
                    value,
                    item.type,
                    severity=item.severity,
                    seen=item.seen,
                    comments=item.comments,
                    config=config,
                    criterion=criterion,
                    now=now,
                    event_id=event_ids(index) if event_ids else None,
                )
            )
    return out
