"""The sliding window that keeps every netskope-sink replica, together, within a tenant's request budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from netskope_sink.tenant.domain import sliding_window

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_calls_within_the_budget_go_at_once_and_are_counted() -> None:
    decision = sliding_window([at(0), at(1)], at(2), requests=3, period=5)
    assert decision.wait_seconds == 0
    assert decision.sent == [at(0), at(1), at(2)]


def test_a_full_window_waits_until_its_oldest_call_leaves() -> None:
    decision = sliding_window([at(1), at(2), at(3)], at(4), requests=3, period=5)
    assert decision.wait_seconds == 2  # at(1) leaves the window at 6
    assert decision.sent == [at(1), at(2), at(3)]  # nothing counted for a call that must wait


def test_calls_older_than_the_window_are_forgotten() -> None:
    decision = sliding_window([at(0), at(1), at(9)], at(10), requests=2, period=5)
    assert decision.wait_seconds == 0
    assert decision.sent == [at(9), at(10)]


def test_a_lowered_budget_waits_for_enough_calls_to_leave() -> None:
    # Five calls in the window and a budget of two now: the call may go once only one remains.
    sent = [at(1), at(2), at(3), at(4), at(5)]
    assert sliding_window(sent, at(6), requests=2, period=10).wait_seconds == 8  # at(4) leaves at 14


@settings(max_examples=300, deadline=None)
@given(
    requests=st.integers(min_value=1, max_value=6),
    period=st.floats(min_value=0.5, max_value=5),
    arrivals=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=80),
)
def test_no_window_ever_holds_more_than_the_budget(requests: int, period: float, arrivals: list[float]) -> None:
    """Callers (of any number of replicas) arriving at random times, each waiting as told and asking again."""
    sent: list[datetime] = []
    pending = sorted(at(a) for a in arrivals)
    went: list[datetime] = []
    while pending:
        now = pending.pop(0)
        decision = sliding_window(sent, now, requests, period)
        sent = decision.sent
        if decision.wait_seconds == 0:
            went.append(now)
        else:
            assert decision.wait_seconds > 0
            pending.append(now + timedelta(seconds=decision.wait_seconds))
            pending.sort()
    assert len(went) == len(arrivals)  # everyone gets through in the end
    window = timedelta(seconds=period)
    for i, start in enumerate(went):
        in_window = [t for t in went[i:] if t - start < window]
        assert len(in_window) <= requests, (start, in_window)
