"""Alert polling's models: an iterator to poll (read from a configuration row), its checkpoint, and a
page of the tenant's alert export."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cte_common.sightings import SourceConfiguration
from netskope_sink.alerts.domain import iterator_index, page_digest, polled_alert_types
from netskope_sink.tenant.schemas import TenantConnection


@dataclass
class Checkpoint:
    configuration: str
    alert_type: str
    tenant: str
    index_name: str
    started: bool
    start_epoch: int | None
    last_timestamp: int | None
    pages: int
    alerts: int
    indicators: int
    page_digest: str | None
    pending: bool
    pending_digest: str | None
    pending_offsets: dict[str, int] | None
    pending_at: datetime | None
    next_sent: bool
    due_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Checkpoint:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def page_tag(self) -> str:
        """The name of the next page to take, carried by its records' headers."""
        return f"{self.index_name}/{self.start_epoch}/{self.pages + 1}"


@dataclass(frozen=True)
class Target:
    """One iterator to poll: a configuration and an alert type, on the configuration's tenant."""

    config: SourceConfiguration
    alert_type: str
    connection: TenantConnection
    initial_range_days: int

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def tenant(self) -> str:
        return self.connection.tenant

    @property
    def verify(self) -> bool:
        return self.connection.verify

    @property
    def proxy(self) -> bool:
        return self.connection.proxy

    @property
    def index(self) -> str:
        return iterator_index(self.config.name, self.alert_type)

    @property
    def lock_name(self) -> str:
        return f"poll:{self.alert_type}:{self.config.name}"

    @property
    def comments_tenant(self) -> str:
        # The reference's comments start with the tenant's tenantName (its URL), spaces removed.
        return self.connection.base_url.replace(" ", "")


def targets_from_rows(rows: Iterable[Any]) -> list[Target]:
    out = []
    for r in rows:
        parameters = r["parameters"] or {}
        config = SourceConfiguration.model_validate(
            {k: r[k] for k in ("name", "plugin", "active", "age_after_days", "reputation", "tags_aggregate_strategy")}
            | {"aging": r["aging"]}
        )
        connection = TenantConnection.from_row(r)
        days = parameters.get("initialRangeDays")
        for alert_type in polled_alert_types(parameters):
            out.append(
                Target(
                    config=config,
                    alert_type=alert_type,
                    connection=connection,
                    initial_range_days=int(days if isinstance(days, int) else r["initial_range_days"]),
                )
            )
    return out


@dataclass(frozen=True)
class Page:
    alerts: list[Any]
    wait_time: int
    timestamp_hwm: int | None
    digest: str

    @classmethod
    def from_answer(cls, body: dict[str, Any]) -> Page:
        alerts = list(body.get("result") or [])
        try:
            wait = int(body.get("wait_time") or 0)
        except (TypeError, ValueError):
            wait = 0
        try:
            hwm: int | None = int(body["timestamp_hwm"])
        except (KeyError, TypeError, ValueError):
            hwm = None
        return cls(alerts, wait, hwm, page_digest(alerts))
