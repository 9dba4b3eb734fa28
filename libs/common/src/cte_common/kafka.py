"""Kafka plumbing: the broker every service builds, and keyed publishing that waits for acks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import RecordMetadata
from faststream.kafka import KafkaBroker

from cte_common.settings import CommonSettings


@dataclass(frozen=True)
class Outgoing:
    key: bytes
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


def make_broker(settings: CommonSettings, *, client_id: str, middlewares: Sequence[Any] = ()) -> KafkaBroker:
    # Idempotent producer with acks=all: a publish that returned is durable on the broker and a
    # retried send cannot duplicate it. linger_ms lets concurrent sends share a batch.
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=30_000,
        middlewares=middlewares,
        graceful_timeout=30.0,
        allow_auto_create_topics=False,
    )


async def publish_all(broker: KafkaBroker, topic: str, messages: Iterable[Outgoing]) -> list[RecordMetadata]:
    """Send every message, keyed, and return once the broker has acknowledged all of them.

    Sends are issued without awaiting each one, so they batch per partition; the acks are awaited
    together. If any send fails the exception propagates and the caller must not report success.
    """
    futures = [
        await broker.publish(m.value, topic, key=m.key, headers=m.headers or None, no_confirm=True) for m in messages
    ]
    if not futures:
        return []
    return list(await asyncio.gather(*futures))
