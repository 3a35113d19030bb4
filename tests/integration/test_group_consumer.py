"""The GroupConsumer port on both Kafka clients, and the test double the worker's unit
tests use: what the worker relies on."""

from __future__ import annotations

import time
import uuid

import pytest

from consumers.group import GroupConsumer, GroupOptions, group_consumer
from engine.eventlog import Delivery, EventLog, encode_event
from engine.eventlog_memory import InMemoryEventLog
from engine.settings import KafkaClient, Settings
from tests.eventbuild import chain
from tests.group_double import MemoryGroup
from tests.stack import Endpoints, require_confluent

pytestmark = pytest.mark.integration

_TIMEOUT_MS = 10_000


@pytest.fixture(params=["memory", "kafka-python", "confluent"])
def group(request: pytest.FixtureRequest) -> tuple[EventLog, GroupConsumer]:
    """A log and a subscribed member of a fresh group on it."""
    if request.param == "memory":
        log = InMemoryEventLog(partitions=12)
        member: GroupConsumer = MemoryGroup(log)
        member.subscribe(on_assign=lambda _: None, on_revoke=lambda _: None)
        return log, member
    if request.param == "confluent":
        require_confluent()
    kafka_log: EventLog = request.getfixturevalue("kafka_log")
    bootstrap: str = request.getfixturevalue("stack").kafka_bootstrap
    return kafka_log, _member(kafka_log, request.param, bootstrap)


def _member(log: EventLog, client: KafkaClient, bootstrap: str) -> GroupConsumer:
    options = GroupOptions(bootstrap=bootstrap, group=f"g-{uuid.uuid4().hex[:8]}",
                           topic=log.topic, partitions=log.partitions)
    consumer = group_consumer(Settings(kafka_bootstrap=bootstrap, kafka_client=client),
                              options)
    consumer.subscribe(on_assign=lambda _: None, on_revoke=lambda _: None)
    return consumer


def _timed_poll_until_records(consumer: GroupConsumer) -> tuple[list[Delivery], float]:
    for _ in range(12):  # the first polls also join the group
        t = time.monotonic()
        got = consumer.poll(timeout_ms=_TIMEOUT_MS)
        if got:
            return got, time.monotonic() - t
    return [], 0.0


def test_a_poll_returns_a_record_without_waiting_out_its_timeout(
        group: tuple[EventLog, GroupConsumer]) -> None:
    kafka_log, consumer = group
    events = chain("t-group", 2)
    try:
        kafka_log.append(events[:1])
        first, _ = _timed_poll_until_records(consumer)
        kafka_log.append(events[1:])  # the group is joined: this one is a plain fetch
        second, waited_s = _timed_poll_until_records(consumer)
    finally:
        consumer.close()

    assert [d.event for d in first + second] == events
    # A poll ends when a record is there, not when its timeout runs out (a worker's
    # resume latency is this wait): half the timeout is a wide margin for a busy box.
    assert waited_s < _TIMEOUT_MS / 1000 / 2


def test_an_event_off_its_threads_partition_reaches_a_worker_as_a_dead_letter(
        group: tuple[EventLog, GroupConsumer]) -> None:
    kafka_log, consumer = group
    events = chain("t-home", 2)
    stray = next(k for k in (f"t-stray-{i}" for i in range(100))
                 if kafka_log.partition_of(k) != kafka_log.partition_of("t-home"))
    try:
        kafka_log.append(events[:1])
        kafka_log.append_raw(stray, encode_event(events[1]))
        got: list[Delivery] = []
        for _ in range(12):  # the first polls also join the group
            got += consumer.poll(timeout_ms=_TIMEOUT_MS)
            if len(got) >= 2:
                break
    finally:
        consumer.close()

    by_key = {d.key: d for d in got}
    assert by_key["t-home"].event == events[0]
    assert by_key[stray].event is None and "belongs on partition" in str(by_key[stray].error)


def test_the_poll_interval_a_worker_asks_for_reaches_the_kafka_python_client(
        kafka_log: EventLog, stack: Endpoints) -> None:
    """librdkafka takes the same option by name (group_confluent.py) but cannot be asked
    for it back; tests/unit/test_worker_poll_interval.py checks what is asked for."""
    from consumers.group_kafka import KafkaGroupConsumer

    options = GroupOptions(bootstrap=stack.kafka_bootstrap, group=f"g-{uuid.uuid4().hex[:8]}",
                           topic=kafka_log.topic, partitions=kafka_log.partitions,
                           max_poll_interval_ms=456_000)
    member = KafkaGroupConsumer(options)
    try:
        assert member._consumer.config["max_poll_interval_ms"] == 456_000
    finally:
        member.close()
