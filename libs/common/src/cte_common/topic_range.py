"""Reading a topic from recorded offsets to its end, outside any consumer group.

A writer that cannot make a publish and its own record of it one transaction records where the topic
ends before it publishes (``end_offsets``); after an interruption it reads from there to the end
(``scan``) to learn which of its records landed. Offsets are keyed by partition number as text, so
they can be stored as JSON.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

__all__ = ["RangeRecord", "TopicRange"]


class RangeRecord(Protocol):
    """What a scan shows of each record (aiokafka's ConsumerRecord)."""

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class TopicRange:
    """One topic's end offsets, and its records from given offsets to the ends as of the read."""

    def __init__(self, bootstrap: str, topic: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.client_id = client_id
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        # One consumer for every caller: its assignment must not change under a running scan.
        self._lock = asyncio.Lock()

    async def _ready(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self.client_id)
            await admin.start()
            try:
                described = await admin.describe_topics([self.topic])
            finally:
                await admin.close()
            partitions = sorted(p["partition"] for t in described if t["topic"] == self.topic for p in t["partitions"])
            if not partitions:
                raise RuntimeError(f"topic {self.topic} has no partitions")
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                client_id=self.client_id,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            self._partitions = [TopicPartition(self.topic, p) for p in partitions]
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def end_offsets(self) -> dict[str, int]:
        """Where every partition ends now: any record sent after this lands at or after it."""
        async with self._lock:
            consumer = await self._ready()
            ends = await consumer.end_offsets(self._partitions)
            return {str(tp.partition): int(offset) for tp, offset in ends.items()}

    async def scan(
        self, since: Mapping[str, int], visit: Callable[[RangeRecord], None], *, limit_seconds: float, what: str
    ) -> None:
        """Show ``visit`` every record of the partitions in ``since``, from its offset there to the
        partition's end as of this call. Raises TimeoutError (naming ``what`` was read for) when that
        takes longer than ``limit_seconds``."""
        async with self._lock:
            consumer = await self._ready()
            tps = [TopicPartition(self.topic, int(p)) for p in since]
            ends = await consumer.end_offsets(tps)
            todo = {tp: int(ends[tp]) for tp in tps if ends[tp] > since[str(tp.partition)]}
            if not todo:
                return
            consumer.assign(list(todo))
            try:
                for tp in todo:
                    consumer.seek(tp, since[str(tp.partition)])
                deadline = time.monotonic() + limit_seconds
                while todo:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"reading {self.topic} for {what} took longer than {limit_seconds} s")
                    batches = await consumer.getmany(*todo, timeout_ms=500)
                    for tp, records in batches.items():
                        for record in records:
                            if record.offset >= todo.get(tp, 0):
                                continue
                            visit(record)
                    for tp in list(todo):
                        if await consumer.position(tp) >= todo[tp]:
                            del todo[tp]
            finally:
                consumer.assign([])
