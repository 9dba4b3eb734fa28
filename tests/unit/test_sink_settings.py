"""The sink's settings refuse a flush concurrency its database pool cannot serve."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from netskope_sink.settings import Settings


def test_the_defaults_leave_room_for_the_streams() -> None:
    settings = Settings()
    assert 2 * settings.flush_concurrency < settings.db_pool_max


def test_streams_that_could_take_the_whole_pool_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"flush_concurrency \(4\).*db_pool_max \(8\)"):
        Settings(flush_concurrency=4, db_pool_max=8)
    assert Settings(flush_concurrency=3, db_pool_max=7).flush_concurrency == 3
