"""Fixtures of the contract tests: every port parametrized over its adapters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
