"""The producers' partitioner must put every key where aiokafka's default one does: records keyed
before and after the change must share a partition, or one indicator's history loses its order."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from cte_common.kafka import murmur2, partition_of


def test_murmur2_matches_aiokafka_for_every_length_and_byte() -> None:
    rnd = random.Random(7)
    keys = [bytes(rnd.randrange(256) for _ in range(n)) for n in range(130) for _ in range(20)]
    keys += [f"www.example{i}.com/path?q={i}".encode() for i in range(2000)]
    keys += ["bücher.example/ü".encode(), b"\xff" * 9, b""]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key), key


def test_partition_of_matches_the_default_partitioner() -> None:
    default = DefaultPartitioner()
    for n in (1, 6, 12, 13):
        partitions = list(range(n))
        for i in range(3000):
            key = f"value-{i}".encode()
            assert partition_of(key, partitions, partitions) == default(key, partitions, partitions)
    assert partition_of(None, [0, 1, 2], [1]) == 1
