"""``cte-dlq``: inspect and replay the dead-letter topic.

Consumers park records they cannot decode there, with headers naming the consumer, the reason and
where the record came from (topic, partition, offset). ``list`` shows them; ``replay`` publishes the
chosen ones (all, or those from one consumer or origin topic) back to the topic they came from, with
their original key, once the cause is fixed. Replay never removes anything from the dead-letter topic:
it is a log; the consumers' positions make a replayed record that was already applied a no-op.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from cte_common.kafka import Outgoing, make_broker, publish_all
from cte_common.settings import CommonSettings
from cte_common.topics import DEAD_LETTER, Topics

__all__ = [
    "DeadLetter",
    "main",
    "read_dead_letters",
    "replay",
]


@dataclass(frozen=True)
class DeadLetter:
    offset: int
    key: bytes
    value: bytes
    consumer: str
    reason: str
    topic: str
    partition: int
    origin_offset: int

    def summary(self) -> dict[str, object]:
        return {
            "offset": self.offset,
            "consumer": self.consumer,
            "reason": self.reason,
            "origin": f"{self.topic}[{self.partition}]@{self.origin_offset}",
            "key": self.key.decode(errors="replace"),
            "value": self.value[:200].decode(errors="replace"),
        }


async def read_dead_letters(bootstrap: str, topics: Topics) -> list[DeadLetter]:
    """Every record on the dead-letter topic, from the start, without joining a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        if topics.dead_letter not in await consumer.topics():
            return letters
        # The topic is created with its specification's partition count (cte-topics).
        partitions = [TopicPartition(topics.dead_letter, p) for p in range(DEAD_LETTER.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp: end for tp, end in (await consumer.end_offsets(partitions)).items() if end > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            for tp, records in batch.items():
                for r in records:
                    letters.append(_letter(r))
                    if r.offset + 1 >= remaining.get(tp, 0):
                        remaining.pop(tp, None)
    finally:
        await consumer.stop()
    return letters


def _letter(r: Any) -> DeadLetter:
    headers = {k: v.decode(errors="replace") for k, v in (r.headers or ())}
    return DeadLetter(
        offset=r.offset,
        key=r.key or b"",
        value=r.value or b"",
        consumer=headers.get("dlq-consumer", ""),
        reason=headers.get("dlq-reason", ""),
        topic=headers.get("dlq-topic", ""),
        partition=int(headers.get("dlq-partition", "-1")),
        origin_offset=int(headers.get("dlq-offset", "-1")),
    )


async def replay(settings: CommonSettings, *, consumer: str | None, topic: str | None) -> int:
    topics = Topics(settings.topic_prefix)
    chosen = [
        d
        for d in await read_dead_letters(settings.kafka_bootstrap, topics)
        if (consumer is None or d.consumer == consumer) and (topic is None or d.topic == topic) and d.topic
    ]
    broker = make_broker(settings, client_id="cte-dlq")
    await broker.start()
    try:
        for origin in sorted({d.topic for d in chosen}):
            await publish_all(broker, origin, (Outgoing(d.key, d.value) for d in chosen if d.topic == origin))
    finally:
        await broker.stop()
    return len(chosen)


async def _list(settings: CommonSettings) -> list[dict[str, object]]:
    return [d.summary() for d in await read_dead_letters(settings.kafka_bootstrap, Topics(settings.topic_prefix))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="print every dead letter as one JSON object per line")
    rp = sub.add_parser("replay", help="publish dead letters back to the topic they came from")
    rp.add_argument("--consumer", help="only those parked by this consumer")
    rp.add_argument("--topic", help="only those that came from this topic")
    args = parser.parse_args()
    settings = CommonSettings()
    if args.action == "list":
        for item in asyncio.run(_list(settings)):
            print(json.dumps(item))  # noqa: T201
    else:
        n = asyncio.run(replay(settings, consumer=args.consumer, topic=args.topic))
        print(f"replayed {n} dead letters")  # noqa: T201
