"""The kafka-python adapter's direct path (engine.kafka_direct) on a real broker.

What KafkaProducer did for us and the direct client now does itself: keep an
append idempotent across a lost answer, take a new producer id when the broker
forgets ours, split what does not fit one batch, give up at the deadline when
the broker goes away. The port contract (tests/contracts) covers the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaConfigurationError

from engine import eventlog_kafka, kafka_wire
from engine.errors import EventLogError, LogUnavailableError, SettingsError
from engine.eventlog import Delivery, Position, decode_delivery
from engine.eventlog_kafka import FETCH_BYTES, KafkaEventLog
from engine.kafka_direct import BATCH_BYTES, DirectClient
from tests.eventbuild import chain
from tests.processes import free_port
from tests.stack import Endpoints
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
_PRODUCE = 0  # Kafka's api key of ProduceRequest


@pytest.fixture
def log(stack: Endpoints, topic_prefix: str) -> Iterator[KafkaEventLog]:
    log = KafkaEventLog(bootstrap=stack.kafka_bootstrap, topic=f"{topic_prefix}.events",
                        partitions=12, ack_timeout_s=5.0)
    log.ensure_topic()
    yield log
    log.close()


def _records(log: KafkaEventLog, key: str) -> list[bytes]:
    return [d.raw for d in log.read(log.partition_of(key)) if d.key == key]


def test_an_append_whose_answer_was_lost_is_sent_again_and_kept_once(
        log: KafkaEventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    log.append_raw("t-lost", b"first")  # the producer id is taken before the fault
    exchange = kafka_wire.BrokerChannel._exchange
    lost: list[bytes] = []

    def answer_lost_once(self: kafka_wire.BrokerChannel, frame: bytes, deadline: float) -> bytes:
        body = exchange(self, frame, deadline)  # the broker appended and answered...
        if int.from_bytes(frame[4:6], "big") == _PRODUCE and not lost:
            lost.append(body)
            raise ConnectionResetError("answer lost")  # ...but the answer never arrives
        return body

    monkeypatch.setattr(kafka_wire.BrokerChannel, "_exchange", answer_lost_once)
    position = log.append_raw("t-lost", b"second")

    assert lost, "the fault was not injected"
    assert _records(log, "t-lost") == [b"first", b"second"]
    assert log.end_offset(position.partition) == position.offset + 1


def test_a_producer_id_the_broker_refuses_is_replaced_and_the_append_kept_once(
        log: KafkaEventLog) -> None:
    first = log.append_raw("t-forgot", b"first")
    lane = log._direct()._idle[-1]  # the lane the next call borrows
    before = lane._producer_id
    lane._sequence[first.partition] += 7  # as if the broker had lost our last batches

    position = log.append_raw("t-forgot", b"second")

    assert lane._producer_id != before
    assert position.offset == first.offset + 1
    assert _records(log, "t-forgot") == [b"first", b"second"]


@pytest.mark.timeout(60)
def test_after_an_append_of_unknown_fate_the_next_one_is_not_taken_for_a_repeat(
        log: KafkaEventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    log.append_raw("t-fate", b"first")
    exchange = kafka_wire.BrokerChannel._exchange

    def answers_never_arrive(self: kafka_wire.BrokerChannel, frame: bytes,
                             deadline: float) -> bytes:
        body = exchange(self, frame, deadline)
        if int.from_bytes(frame[4:6], "big") == _PRODUCE:
            raise TimeoutError("answer lost")  # appended, but we never learn it
        return body

    monkeypatch.setattr(kafka_wire.BrokerChannel, "_exchange", answers_never_arrive)
    with pytest.raises(LogUnavailableError):
        log.append_raw("t-fate", b"second")  # gives up at the 5 s ack timeout
    monkeypatch.setattr(kafka_wire.BrokerChannel, "_exchange", exchange)

    log.append_raw("t-fate", b"third")  # one record again: with the same sequence, a "repeat"

    assert _records(log, "t-fate") == [b"first", b"second", b"third"]


def test_calls_share_a_few_lanes_instead_of_one_per_thread(log: KafkaEventLog) -> None:
    log.append_raw("t-lanes", b"warm")
    client = log._direct()
    pool = list(client._idle)

    for i in range(20):  # short-lived threads, one after another, as a server's pool makes
        worker = threading.Thread(target=log.append_raw, args=("t-lanes", f"{i}".encode()))
        worker.start()
        worker.join(timeout=30)

    assert client._idle == pool  # the one lane was lent and returned 20 times
    assert len(_records(log, "t-lanes")) == 21


def test_a_tail_longer_than_one_fetch_comes_back_whole(log: KafkaEventLog) -> None:
    start = log.end_offset(log.partition_of("t-long"))
    size = 300 * 1024
    values = [f"{i}:".encode().ljust(size, b".") for i in range(2 * FETCH_BYTES // size + 2)]
    log._send_all([("t-long", v) for v in values])

    tail = log.tail(log.partition_of("t-long"), start, most=len(values))

    assert tail.end == start + len(values)
    assert tail.records is not None and [d.raw for d in tail.records] == values


def _tombstone(stack: Endpoints, log: KafkaEventLog, key: str) -> int:
    """A record with a null value, as another producer (or a compaction tool) writes it."""
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    try:
        sent = producer.send(log.topic, key=key.encode(), value=None,
                             partition=log.partition_of(key))
        return int(sent.get(timeout=30).offset)
    finally:
        producer.close()


def test_a_tail_for_one_thread_decodes_none_of_the_other_threads_records(
        stack: Endpoints, log: KafkaEventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """~15 µs each: a resume under load would decode every thread's unprojected events."""
    mine = "t-decode-0"
    others = [t for t in (f"t-decode-{i}" for i in range(1, 400))
              if log.partition_of(t) == log.partition_of(mine)][:5]
    start = log.append(chain(mine, 1))[0].offset
    log.append([e for t in others for e in chain(t, 2)])
    tombstone = _tombstone(stack, log, mine)  # undecodable: a dead letter for every reader
    decoded: list[int] = []

    def counted(position: Position, key: bytes | None, raw: bytes, *,
                partitions: int | None) -> Delivery:
        decoded.append(position.offset)
        return decode_delivery(position, key, raw, partitions=partitions)

    monkeypatch.setattr(eventlog_kafka, "decode_delivery", counted)
    tail = log.tail(log.partition_of(mine), start, most=20, thread_id=mine)

    assert tail.records is not None
    assert [(d.position.offset, d.event is None) for d in tail.records] == [
        (start, False), (tombstone, True)]
    assert decoded == [start, tombstone]


def test_more_than_a_batch_and_a_fetch_goes_in_order_with_every_offset(
        log: KafkaEventLog) -> None:
    value_bytes = 100 * 1024
    per_key = 2 * max(BATCH_BYTES, FETCH_BYTES) // value_bytes + 1
    keys = ["t-big-a", next(f"t-big-{i}" for i in range(100)
                            if log.partition_of(f"t-big-{i}") != log.partition_of("t-big-a"))]
    records = [(k, f"{k}:{i}:".encode().ljust(value_bytes, b".")) for i in range(per_key)
               for k in keys]

    positions = log._send_all(records)

    for key in keys:
        mine = [(p, v) for p, (k, v) in zip(positions, records, strict=True) if k == key]
        offsets = [p.offset for p, _v in mine]
        assert offsets == list(range(offsets[0], offsets[0] + per_key))
        read = list(log.read(log.partition_of(key), offsets[0]))
        assert [(d.position, d.raw) for d in read] == mine


def test_a_record_over_the_brokers_limit_is_a_permanent_error_and_nothing_is_written(
        log: KafkaEventLog) -> None:
    partition = log.partition_of("t-huge")
    before = log.end_offset(partition)

    with pytest.raises(EventLogError) as caught:
        log.append_raw("t-huge", b"x" * (2 * 1024 * 1024))

    assert not caught.value.retryable
    assert "MessageSizeTooLarge" in str(caught.value) or "RecordListTooLarge" in str(caught.value)
    assert log.end_offset(partition) == before
    assert log.append_raw("t-huge", b"small").offset == before  # and the client still works


@pytest.mark.timeout(60)
def test_a_broker_lost_mid_session_is_unavailable_at_the_deadline(
        stack: Endpoints, topic_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    log = KafkaEventLog(bootstrap=stack.kafka_bootstrap, topic=f"{topic_prefix}.events",
                        ack_timeout_s=1.0)
    log.ensure_topic()
    try:
        log.append_raw("t-gone", b"before")
        client = log._direct()
        gone = ("127.0.0.1", free_port())
        monkeypatch.setattr(client._cluster, "address", lambda node: gone)
        began = time.monotonic()

        with pytest.raises(LogUnavailableError) as caught:
            log.append_raw("t-gone", b"after")

        assert caught.value.retryable
        assert 0.9 < time.monotonic() - began < 10
    finally:
        log.close()


def _dead_with_counted_connects(monkeypatch: pytest.MonkeyPatch,
                                hold: threading.Event | None = None,
                                ) -> tuple[KafkaEventLog, list[str]]:
    """A log on a closed port; its connection attempts are listed by thread name."""
    import engine.eventlog_kafka as adapter

    attempts: list[str] = []
    real = adapter.DirectClient

    def counted(**kwargs: object) -> DirectClient:
        attempts.append(threading.current_thread().name)
        if hold is not None and threading.current_thread().name == "amber-kafka-connect":
            hold.wait(timeout=30)
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(adapter, "DirectClient", counted)
    dead = KafkaEventLog(bootstrap=f"127.0.0.1:{free_port()}", topic="amber-dead.events",
                         ack_timeout_s=1.0)
    return dead, attempts


def _connecting() -> threading.Thread:
    return next(t for t in threading.enumerate() if t.name == "amber-kafka-connect")


@pytest.mark.timeout(60)
def test_a_call_that_waited_for_a_failed_background_connect_gets_its_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    hold = threading.Event()
    dead, attempts = _dead_with_counted_connects(monkeypatch, hold)
    try:
        dead.connect_soon()
        wait_until(lambda: bool(attempts), 10, "the background attempt to begin (holding the lock)")
        hold.set()  # it now fails after the 1 s ack timeout, while we wait for it

        with pytest.raises(LogUnavailableError):
            dead.append_raw("t-dead", b"x")

        assert attempts == ["amber-kafka-connect"]  # not waited out a second time
    finally:
        dead.close()


@pytest.mark.timeout(60)
def test_a_background_connect_that_failed_earlier_is_not_held_against_a_later_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    dead, attempts = _dead_with_counted_connects(monkeypatch)
    try:
        dead.connect_soon()
        _connecting().join(timeout=30)  # failed before anybody asked

        with pytest.raises(LogUnavailableError):
            dead.append_raw("t-dead", b"x")

        assert attempts == ["amber-kafka-connect", "MainThread"]  # the call tried for itself
    finally:
        dead.close()


def test_metadata_requests_never_create_a_topic(log: KafkaEventLog) -> None:
    # Brokers create a topic on a metadata request unless told not to (or configured
    # so): the events topic must only ever come from ensure_topic().
    request = log._direct()._cluster._client.cluster.metadata_request()
    assert request.allow_auto_topic_creation is False


def test_a_partition_past_the_topics_count_is_a_permanent_error_at_once(
        stack: Endpoints, log: KafkaEventLog) -> None:
    wider = KafkaEventLog(bootstrap=stack.kafka_bootstrap, topic=log.topic, partitions=24,
                          ack_timeout_s=10.0)
    key = next(f"t-wide-{i}" for i in range(1000) if wider.partition_of(f"t-wide-{i}") >= 12)
    began = time.monotonic()
    try:
        # refused when connecting, before any partition is asked for
        with pytest.raises(SettingsError, match=r"AMBER_PARTITIONS.* has 12 partitions"):
            wider.append_raw(key, b"x")
    finally:
        wider.close()

    assert time.monotonic() - began < 5  # not retried until the 10 s timeout


def test_the_client_asked_for_a_partition_past_the_topics_count_fails_at_once(
        stack: Endpoints, log: KafkaEventLog) -> None:
    # e.g. the topic lost partitions under a running process (recreated smaller)
    client = DirectClient(topic=log.topic, client_id="amber-test", timeout_s=10.0,
                          bootstrap_servers=stack.kafka_bootstrap)
    began = time.monotonic()
    try:
        with pytest.raises(KafkaConfigurationError, match="has 12 partitions"):
            client.send([(12, b"t-wide", b"x")])
    finally:
        client.close()
    assert time.monotonic() - began < 5


def test_a_missing_topic_is_named_when_the_ack_timeout_runs_out(
        stack: Endpoints, topic_prefix: str) -> None:
    absent = KafkaEventLog(bootstrap=stack.kafka_bootstrap, topic=f"{topic_prefix}.absent",
                           ack_timeout_s=1.0)
    try:
        with pytest.raises(EventLogError) as caught:
            absent.append_raw("t-absent", b"x")
    finally:
        absent.close()

    assert "not found" in str(caught.value) and f"{topic_prefix}.absent" in str(caught.value)


def test_a_broker_back_within_the_ack_timeout_is_waited_for(
        log: KafkaEventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    log.append_raw("t-back", b"before")
    client = log._direct()
    real_address = client._cluster.address
    gone = ("127.0.0.1", free_port())
    refused: list[int] = []

    def away_for_a_while(node: int) -> tuple[str, int]:
        if len(refused) < 3:  # as a restarting broker refuses connections for a moment
            refused.append(node)
            return gone
        return real_address(node)

    for lane in client._idle:
        lane.close()  # the next request must connect again
    monkeypatch.setattr(client._cluster, "address", away_for_a_while)

    log.append_raw("t-back", b"after")

    assert len(refused) == 3
    assert _records(log, "t-back") == [b"before", b"after"]


def test_a_client_made_before_its_topic_exists_appends_once_the_topic_does(
        stack: Endpoints, topic_prefix: str) -> None:
    log = KafkaEventLog(bootstrap=stack.kafka_bootstrap, topic=f"{topic_prefix}.late",
                        ack_timeout_s=10.0)
    try:
        log._direct()  # metadata without the topic: as right after it was created elsewhere
        log.ensure_topic()

        position = log.append_raw("t-late", b"first")

        assert _records(log, "t-late") == [b"first"] and position.offset == 0
    finally:
        log.close()
