"""The producers' partitioner must put every key where aiokafka's default one, and the Java client's,
do: records keyed before and after the change must share a partition, or one indicator's history loses
its order. The batch hash (``murmur2_many``) must give every key murmur2's hash."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from cte_common.kafka import murmur2, murmur2_many, partition_groups, partition_of


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


# Apache Kafka's own vectors (UtilsTest.testMurmur2: the Java client's signed ints), and librdkafka's
# (rdmurmur2.c) for each length of tail, and the empty key.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
    b"string-f-24-chars-length": 124730809,
    b"string-fo-25-chars-length": 1269511650,
    b"string-foo-26-chars-length": 119165628,
    b"string-last-27-chars-length": 1089971754,
    b"": 275646681,
}


def _signed(h: int) -> int:
    return h - (1 << 32) if h >= 1 << 31 else h


def test_murmur2_gives_the_java_clients_hashes() -> None:
    assert {key: _signed(murmur2(key)) for key in JAVA_MURMUR2} == JAVA_MURMUR2
    many = murmur2_many(list(JAVA_MURMUR2))
    assert {key: _signed(h) for key, h in zip(JAVA_MURMUR2, many, strict=True)} == JAVA_MURMUR2
    # The Java default partitioner: toPositive(murmur2(key)) % partitions.
    assert partition_groups(["foobar"], list(range(50))) == [(16, [0])]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=60))
def test_murmur2_many_is_murmur2_of_each_key(keys: list[bytes]) -> None:
    assert murmur2_many(keys) == [murmur2(k) for k in keys]


def test_murmur2_many_on_a_batch_of_every_length() -> None:
    rnd = random.Random(11)
    keys = [bytes(rnd.randrange(256) for _ in range(n)) for n in range(200) for _ in range(7)]
    rnd.shuffle(keys)
    assert murmur2_many(keys) == [aiokafka_murmur2(k) for k in keys]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=80), st.sampled_from([1, 6, 12, 13]))
def test_partition_groups_put_each_key_where_the_default_partitioner_does(keys: list[str], count: int) -> None:
    partitions = list(range(count))
    default = DefaultPartitioner()
    groups = partition_groups(keys, partitions)
    assert [p for p, _ in groups] == sorted({p for p, _ in groups})
    placed = {i: p for p, group in groups for i in group}
    assert sorted(placed) == list(range(len(keys)))
    for i, key in enumerate(keys):
        assert placed[i] == default(key.encode(), partitions, partitions)
    for _, group in groups:
        assert group == sorted(group)
