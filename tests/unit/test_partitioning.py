"""Thread → partition must equal Kafka's default partitioner, for every adapter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from engine.partitioning import murmur2, partition_for


@pytest.mark.parametrize(("key", "expected"), [
    # The vectors of Kafka's own Java test (UtilsTest.testMurmur2), as signed ints.
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_matches_the_java_client_vectors(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@given(st.binary(max_size=64))
def test_murmur2_matches_kafka_python_on_random_bytes(key: bytes) -> None:
    assert murmur2(key) & 0x7FFFFFFF == kafka_murmur2(key) & 0x7FFFFFFF
    assert -(2**31) <= murmur2(key) < 2**31


@given(st.text(max_size=40), st.integers(min_value=1, max_value=256))
def test_partition_for_matches_kafkas_default_partitioner(thread_id: str, partitions: int) -> None:
    expected = (kafka_murmur2(thread_id.encode("utf-8")) & 0x7FFFFFFF) % partitions

    assert partition_for(thread_id, partitions) == expected


def test_partition_for_spreads_threads_over_every_partition() -> None:
    used = {partition_for(f"thread-{i}", 12) for i in range(500)}

    assert used == set(range(12))
