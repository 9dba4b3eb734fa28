"""The tenant's request budget decided without I/O: whether one more call fits its sliding window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class WindowDecision:
    sent: list[datetime]  # the calls the window holds after this decision, oldest first
    wait_seconds: float  # 0: the call may go now, and is counted in ``sent``


def sliding_window(sent: Sequence[datetime], now: datetime, requests: int, period: float) -> WindowDecision:
    """Whether one more call fits ``requests`` calls in any ``period`` seconds, given when the recent
    calls went out; if not, how long until the oldest call that blocks it leaves the window."""
    recent = sorted(t for t in sent if (now - t).total_seconds() < period)
    if len(recent) < requests:
        return WindowDecision([*recent, now], 0.0)
    # A lowered budget can leave more than ``requests`` calls in the window: wait for enough to leave.
    blocking = recent[len(recent) - requests]
    return WindowDecision(recent, max(period - (now - blocking).total_seconds(), 0.001))


def rate_limit_pause(headers: Mapping[str, str], longest: float) -> float:
    """How long to hold the next call to an endpoint after an answer carrying its RateLimit headers
    (Netskope's dataexport endpoints send them): nothing while ``RateLimit-Remaining`` is above 0, else
    ``RateLimit-Reset`` seconds (at most ``longest``). Missing or unreadable headers hold nothing."""
    try:
        remaining = int(headers.get("ratelimit-remaining", ""))
        reset = float(headers.get("ratelimit-reset", ""))
    except ValueError:
        return 0.0
    if remaining > 0 or not reset > 0:
        return 0.0
    return min(reset, longest)


def credentials_rejected(status: int | None) -> bool:
    """A 401 or a 403: the tenant rejects the credentials themselves, not one call (every push and poll
    to it stops until they change)."""
    return status in (401, 403)
