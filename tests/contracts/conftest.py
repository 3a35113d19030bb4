"""Fixtures of the contract tests: every port parametrized over its adapters."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator

import pytest

from engine.eventlog import EventLog
from engine.eventlog_memory import InMemoryEventLog

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


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


@pytest.fixture
def confluent_log(request: pytest.FixtureRequest) -> Iterator[EventLog]:
    """A ConfluentEventLog on a fresh topic with 12 partitions (the `fast` extra).

    The `test` extra installs confluent-kafka, so CI always runs it; elsewhere a
    missing package skips, saying how to install it.
    """
    if importlib.util.find_spec("confluent_kafka") is None:
        if IN_CI:
            pytest.fail("confluent-kafka is not installed in CI (it is in the `test` extra)")
        pytest.skip("confluent-kafka not installed: pip install -e '.[fast]'")
    from engine.eventlog_confluent import ConfluentEventLog

    stack = request.getfixturevalue("stack")
    prefix = request.getfixturevalue("topic_prefix")
    log = ConfluentEventLog(bootstrap=stack.kafka_bootstrap, topic=f"{prefix}.events",
                            partitions=12, client_id=f"amber-test-{uuid.uuid4().hex[:6]}")
    log.ensure_topic()
    yield log
    log.close()
