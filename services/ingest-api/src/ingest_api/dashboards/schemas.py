"""Answers of ``/api/cte/dashboards/`` and ``/api/cte/dashboard/pull``.

Both are open by design: a dashboard's groups are keyed by the fields asked for, the pull counts by the
types and sources that exist. What is fixed is modelled; the open keys are typed by what they can hold.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

from pydantic import BaseModel, Field

from cte_common.indicators import IndicatorType

# What a grouped field can hold: text, a number, a flag or a time (expiresAt and reputation can be null).
GroupValue: TypeAlias = str | int | bool | datetime | None


class DashboardGroupOut(BaseModel):
    """One group of GET /api/cte/dashboards/: the grouped fields' values (keyed by field name without
    ``sources.``), and the count of its indicators or the sum of their hits."""

    # "_id" as in the reference (MongoDB's $group); a Python attribute cannot start with an underscore.
    id: dict[str, GroupValue] = Field(alias="_id")
    count: int


class PullCountsOut(BaseModel):
    """The source entries of one type and source, by retraction."""

    retractedCount: int
    unretractedCount: int
    allCount: int


# GET /api/cte/dashboard/pull: indicator type -> source -> counts.
PullOut: TypeAlias = dict[IndicatorType, dict[str, PullCountsOut]]


class SharingCountsOut(BaseModel):
    """One type's counts of GET /api/cte/dashboard/sharing: what the rule selects from the source, what
    the sharings of that rule and source (to the destination) share, and the difference."""

    filteredCount: int
    sharedCount: int
    misMatchCount: int


# GET /api/cte/dashboard/sharing: indicator type -> counts.
SharingOut: TypeAlias = dict[IndicatorType, SharingCountsOut]
