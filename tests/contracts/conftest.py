"""Fixtures of the contract tests: every port parametrized over its adapters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.blobstore import BlobStore
from engine.blobstore_memory import MemoryBlobStore
from engine.eventlog import EventLog
from engine.eventlog_memory import InMemoryEventLog


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration),
                        pytest.param("confluent", marks=pytest.mark.integration)])
def log(request: pytest.FixtureRequest) -> Iterator[EventLog]:
    if request.param == "memory":
        memory = InMemoryEventLog(partitions=12)
        yield memory
        memory.close()
    elif request.param == "kafka":
        yield request.getfixturevalue("kafka_log")
    else:
        yield request.getfixturevalue("confluent_log")


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def blob_store(request: pytest.FixtureRequest) -> Iterator[BlobStore]:
    if request.param == "memory":
        yield MemoryBlobStore()
        return
    from engine.blobstore_kafka import KafkaBlobStore

    stack = request.getfixturevalue("stack")
    prefix = request.getfixturevalue("topic_prefix")
    store = KafkaBlobStore(bootstrap=stack.kafka_bootstrap, topic=f"{prefix}.blobs",
                           partitions=12)
    yield store
    store.close()
