"""The Kafka adapter on a real broker: load, topic configuration, a dead broker."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from engine.acceptance import accepted_history
from engine.delta import State, set_op
from engine.errors import EventLogError, LogUnavailableError, SettingsError
from engine.eventlog import Delivery
from engine.eventlog_confluent import ConfluentEventLog
from engine.eventlog_kafka import KafkaEventLog
from engine.events import Event
from engine.settings import Compression
from tests import scratch
from tests.eventbuild import chain, step
from tests.factories import prose
from tests.processes import free_port
from tests.stack import Endpoints

pytestmark = pytest.mark.integration

RealLog = KafkaEventLog | ConfluentEventLog


def _adapter(name: str, bootstrap: str, topic: str, ack_timeout_s: float = 30.0,
             compression: Compression = "none") -> RealLog:
    kind = ConfluentEventLog if name == "confluent" else KafkaEventLog
    return kind(bootstrap=bootstrap, topic=topic, ack_timeout_s=ack_timeout_s,
                compression=compression)


@pytest.fixture(params=["kafka-python", "confluent"])
def real_log(request: pytest.FixtureRequest, stack: Endpoints,
             topic_prefix: str) -> Iterator[RealLog]:
    """Each real Kafka adapter, on a fresh topic it created itself."""
    log = _adapter(request.param, stack.kafka_bootstrap, f"{topic_prefix}.events")
    log.ensure_topic()
    yield log
    log.close()


THREADS = 50
EVENTS_PER_THREAD = 20


def test_1000_events_from_50_concurrent_threads_read_back_complete_and_chained(
        real_log: RealLog) -> None:
    kafka_log = real_log
    written = {f"load-{i:02d}": chain(f"load-{i:02d}", EVENTS_PER_THREAD, writer=f"w{i}")
               for i in range(THREADS)}
    failures: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def writer(events: list[Event]) -> None:
        try:
            start.wait(timeout=30)
            for event in events:  # durable before proceeding: each append waits for its ack
                kafka_log.append([event])
        except BaseException as e:  # collected, asserted in the test thread below
            failures.append(e)

    workers = [threading.Thread(target=writer, args=(events,)) for events in written.values()]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=90)
    assert failures == []
    assert sum(kafka_log.end_offsets().values()) == THREADS * EVENTS_PER_THREAD

    by_thread: dict[str, list[Delivery]] = defaultdict(list)
    for partition in range(kafka_log.partitions):
        for delivery in kafka_log.read(partition):
            by_thread[delivery.key or ""].append(delivery)

    assert set(by_thread) == set(written)
    for tid, events in written.items():
        deliveries = by_thread[tid]
        assert all(d.error is None for d in deliveries)
        assert {d.position.partition for d in deliveries} == {kafka_log.partition_of(tid)}
        read_back = [d.event for d in deliveries if d.event]
        assert read_back == events, tid
        history = accepted_history(read_back)
        assert history.accepted == events and history.rejected == [], tid
    sample = sorted(written)[::17]
    for tid in sample:  # the per-thread read path agrees with the partition scan
        assert [d.event for d in kafka_log.read_thread(tid)] == written[tid]


def test_the_topic_has_12_partitions_and_never_expires(
        real_log: RealLog, stack: Endpoints) -> None:
    kafka_log = real_log
    kafka_log.ensure_topic()  # a second time: nothing changes
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, request_timeout_ms=15000)
    try:
        described = admin.describe_topics([kafka_log.topic])
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, kafka_log.topic)])
    finally:
        admin.close()

    assert len(described[0]["partitions"]) == 12
    topic_config = configs["topic"][kafka_log.topic]
    assert topic_config["retention.ms"]["value"] == "-1"
    assert topic_config["cleanup.policy"]["value"] == "delete"


def test_ensure_topic_is_idempotent(kafka_log: KafkaEventLog) -> None:
    kafka_log.append(chain("t-idem", 1))

    kafka_log.ensure_topic()

    assert [d.event for d in kafka_log.read_thread("t-idem")] == chain("t-idem", 1)


def _dead_log(adapter: str) -> RealLog:
    """An adapter pointed at a port nothing listens on, with a 1 s ack timeout."""
    return _adapter(adapter, f"127.0.0.1:{free_port()}", "amber-dead.events", 1.0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("adapter", ["kafka-python", "confluent"])
@pytest.mark.parametrize("operation", ["append", "append_raw", "end_offsets", "end_offset",
                                       "reader", "ensure_topic"])
def test_a_dead_broker_is_a_typed_retryable_error_not_a_hang(adapter: str, operation: str) -> None:
    dead = _dead_log(adapter)
    calls: dict[str, Callable[[], object]] = {
        "append": lambda: dead.append(chain("t-dead", 1)),
        "append_raw": lambda: dead.append_raw("t-dead", b"x"),
        "end_offsets": dead.end_offsets,
        "end_offset": lambda: dead.end_offset(0),
        "reader": lambda: dead.reader({0: 0}),
        "ensure_topic": dead.ensure_topic,
    }
    began = time.monotonic()
    try:
        with pytest.raises(EventLogError) as caught:
            calls[operation]()
    finally:
        dead.close()

    assert isinstance(caught.value, LogUnavailableError)
    assert caught.value.retryable
    assert time.monotonic() - began < 15  # bounded by the ack timeout, not kafka's 30 s default


@pytest.mark.parametrize("adapter", ["kafka-python", "confluent"])
@pytest.mark.parametrize("counted", [6, 24])
def test_a_process_counting_other_partitions_than_the_topic_is_refused_and_writes_nothing(
        adapter: str, counted: int, stack: Endpoints, real_log: RealLog) -> None:
    # one such process would put threads where the others never read
    kind = ConfluentEventLog if adapter == "confluent" else KafkaEventLog
    wrong = kind(bootstrap=stack.kafka_bootstrap, topic=real_log.topic, partitions=counted)
    expected = rf"AMBER_PARTITIONS.* is {counted}, but topic .* has 12 partitions"
    try:
        with pytest.raises(SettingsError, match=expected):
            wrong.append(chain("t-miscounted", 1))
        with pytest.raises(SettingsError, match=expected):
            wrong.end_offsets()
    finally:
        wrong.close()
    assert set(real_log.end_offsets().values()) == {0}


@pytest.mark.parametrize("adapter", ["kafka-python", "confluent"])
def test_a_topic_made_by_another_process_after_connecting_is_checked_too(
        adapter: str, stack: Endpoints, topic_prefix: str) -> None:
    kind = ConfluentEventLog if adapter == "confluent" else KafkaEventLog
    topic = f"{topic_prefix}.events"
    early = kind(bootstrap=stack.kafka_bootstrap, topic=topic, partitions=6)
    maker = KafkaEventLog(bootstrap=stack.kafka_bootstrap, topic=topic)
    try:
        early.check_partitions()  # no topic yet: nothing to compare
        maker.ensure_topic()  # 12 partitions
        with pytest.raises(SettingsError, match=r"is 6, but topic .* has 12 partitions"):
            early.append(chain("t-early", 1))
        assert set(maker.end_offsets().values()) == {0}
    finally:
        early.close()
        maker.close()


def test_a_projector_counting_other_partitions_refuses_to_start(
        stack: Endpoints, real_log: RealLog, pg_url: str) -> None:
    from projector.runner import Projector

    narrow = KafkaEventLog(bootstrap=stack.kafka_bootstrap, topic=real_log.topic, partitions=6)
    try:
        with pytest.raises(SettingsError, match="AMBER_PARTITIONS"):
            Projector(log=narrow, database_url=pg_url).open()
    finally:
        narrow.close()


def _wordy_thread(thread_id: str, n: int) -> list[Event]:
    """Events carrying ~20 KB of prose each: what model output in a state looks like."""
    rng = random.Random(7)
    events: list[Event] = []
    state: State = {}
    for seq in range(n):
        text = prose(rng, 3000)
        event, state = step(events[-1] if events else None, state, [set_op("text", text)],
                            thread_id=thread_id, node=None if seq == 0 else "draft")
        events.append(event)
    return events


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
@pytest.mark.parametrize("adapter", ["kafka-python", "confluent"])
def test_compressed_appends_read_back_the_same_from_a_third_of_the_space(
        adapter: str, codec: Compression, stack: Endpoints, topic_prefix: str) -> None:
    events = _wordy_thread("wordy", 30)
    stored: dict[str, int] = {}
    for used in ("none", codec):
        topic = f"{topic_prefix}.{used}"
        log = _adapter(adapter, stack.kafka_bootstrap, topic, compression=used)
        other = _adapter("confluent" if adapter == "kafka-python" else "kafka-python",
                         stack.kafka_bootstrap, topic)
        try:
            log.ensure_topic()
            partition = {p.partition for e in events for p in log.append([e])}.pop()
            assert [d.event for d in log.read(partition)] == events
            assert [d.event for d in other.read(partition)] == events  # any client decodes
        finally:
            log.close()
            other.close()
        stored[used] = scratch.topic_bytes(stack.kafka_bootstrap, topic)
    assert stored[codec] * 3 < stored["none"], stored
