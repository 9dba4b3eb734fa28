"""Topic names and their specifications, and the ``cte-topics`` command that creates them.

Topics are created explicitly (auto-creation is off on our brokers) so their partition counts and
configurations are decided here, once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from cte_common.settings import CommonSettings

__all__ = [
    "ALL_TOPICS",
    "CONFIG_CHANGES",
    "DEAD_LETTER",
    "INDICATOR_EVENTS",
    "SHARE_INTENTS",
    "TopicSpec",
    "Topics",
    "create_topics",
    "main",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    role: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


# Indicator events are the system's log: long retention so the read model can be rebuilt from it.
INDICATOR_EVENTS = TopicSpec(
    "indicator-events",
    partitions=12,
    configs={"retention.ms": str(30 * 24 * 3600 * 1000), "compression.type": "producer"},
)
# One record per resource key; compaction keeps the latest definition of every resource.
CONFIG_CHANGES = TopicSpec(
    "config-changes",
    partitions=1,
    configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
)
# Keyed by destination list: one sink consumer owns a list at a time.
SHARE_INTENTS = TopicSpec("share-intents", partitions=6, configs={"retention.ms": str(7 * 24 * 3600 * 1000)})
DEAD_LETTER = TopicSpec("dead-letter", partitions=1, configs={"retention.ms": str(30 * 24 * 3600 * 1000)})

ALL_TOPICS = (INDICATOR_EVENTS, CONFIG_CHANGES, SHARE_INTENTS, DEAD_LETTER)


class Topics:
    """Concrete topic names for one namespace (the ``topic_prefix`` setting)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.indicator_events = self.name(INDICATOR_EVENTS)
        self.config_changes = self.name(CONFIG_CHANGES)
        self.share_intents = self.name(SHARE_INTENTS)
        self.dead_letter = self.name(DEAD_LETTER)

    def name(self, spec: TopicSpec) -> str:
        return f"{self.prefix}.{spec.role}.v1"

    def group(self, consumer_group: str) -> str:
        """A consumer group's id in this namespace: two namespaces on one cluster never share a group."""
        return f"{self.prefix}.{consumer_group}"


async def create_topics(bootstrap: str, prefix: str, replication_factor: int = 1) -> list[str]:
    """Create every topic of the namespace that does not exist yet; return the names created."""
    topics = Topics(prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                topics.name(spec),
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                topic_configs=spec.configs,
            )
            for spec in ALL_TOPICS
            if topics.name(spec) not in existing
        ]
        if wanted:
            # A concurrent creator may win the race; the topic then exists, which is all we want.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Create the project's Kafka topics (idempotent).")
    parser.add_argument("action", choices=["create", "list"])
    args = parser.parse_args()
    settings = CommonSettings()
    topics = Topics(settings.topic_prefix)
    if args.action == "list":
        for spec in ALL_TOPICS:
            print(topics.name(spec), spec.partitions, spec.configs)  # noqa: T201
        return
    created = asyncio.run(create_topics(settings.kafka_bootstrap, settings.topic_prefix))
    print(f"topics: {len(created)} created, {len(ALL_TOPICS) - len(created)} already there")  # noqa: T201
