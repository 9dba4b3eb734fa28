"""The event ids of a request sent with an Idempotency-Key: the same on every retry, distinct per
sender, key and place, and told apart from every producer's random ids."""

from __future__ import annotations

from uuid import uuid4

from cte_common.keyed_events import is_keyed, keyed_event_id


def test_the_same_request_gets_the_same_ids() -> None:
    assert keyed_event_id("client:a", "k1", 0) == keyed_event_id("client:a", "k1", 0)


def test_ids_differ_by_sender_key_and_place() -> None:
    ids = {
        keyed_event_id(p, k, i)
        for p in ("client:a", "user:a", "client:a\x00k1")
        for k in ("k1", "k2", "")
        for i in (0, 1, 10)
    }
    assert len(ids) == 27


def test_keyed_ids_are_told_from_random_ones() -> None:
    assert is_keyed(keyed_event_id("client:a", "k", 3))
    assert not any(is_keyed(uuid4()) for _ in range(100))
