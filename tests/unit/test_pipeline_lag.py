"""Consumer lag from recorded positions and the topics' offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest_api.pipeline.domain import consumer_lags

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_lag_counts_every_partition_from_the_recorded_position_or_the_first_offset_held() -> None:
    positions = [
        {"consumer": "c", "topic": "t", "partition": 0, "next_offset": 10, "updated_at": T0},
        {"consumer": "c", "topic": "t", "partition": 1, "next_offset": 3, "updated_at": T0 + timedelta(seconds=5)},
    ]
    # Partition 2 never recorded: everything still held (from 4, retention dropped 0..3) is behind.
    offsets = {("t", 0): (0, 10), ("t", 1): (5, 9), ("t", 2): (4, 6), ("other", 0): (0, 100)}
    [lag] = consumer_lags(positions, offsets)
    assert (lag.consumer, lag.topic, lag.lag, lag.partitions) == ("c", "t", 0 + 4 + 2, 3)
    assert lag.lastAppliedAt == T0 + timedelta(seconds=5)


def test_a_position_past_the_end_is_no_negative_lag() -> None:
    positions = [{"consumer": "c", "topic": "t", "partition": 0, "next_offset": 12, "updated_at": T0}]
    assert consumer_lags(positions, {("t", 0): (0, 10)})[0].lag == 0
