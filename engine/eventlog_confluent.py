"""Kafka adapter of the EventLog port on librdkafka (confluent-kafka), the optional fast one.

Same contract and same bytes as `eventlog_kafka.KafkaEventLog`: an idempotent
producer with acks=all, the partition computed by us (murmur2, Kafka's default)
and given explicitly, the same topic configuration. The two adapters read each
other's records. Install with the `fast` extra; choose it with
AMBER_KAFKA_CLIENT=confluent.

Every blocking call is bounded by `ack_timeout_s`: librdkafka never fails at
construction, so an unreachable broker surfaces as a timed-out delivery, a
timed-out metadata/offset request or a failed admin future, and each becomes a
LogUnavailableError. librdkafka's own log lines go to the `amber.kafka` logger
instead of stderr.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

# NewTopic's documented home; the stubs declare it in cimpl only.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewTopic,
    OffsetSpec,
)

from engine.errors import EventLogError, LogUnavailableError
from engine.eventlog import (
    GATHER_BYTES,
    TOPIC_CONFIG,
    Delivery,
    EventLog,
    LogReader,
    Position,
    await_visible,
    decode_delivery,
)
from engine.settings import Compression, checked_compression

T = TypeVar("T")
_LOG = logging.getLogger("amber.kafka")
_LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]

# Codes that mean "the broker could not be reached or did not answer in time".
_UNAVAILABLE = frozenset({
    KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TIMED_OUT_QUEUE,
    KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
    KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT, KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
})
# A topic or leader not ready yet (right after creation, during a leader change). The
# leader-epoch pair comes back from a ListOffsets sent just after a topic is created
# (seen once in a fresh-clone run), and librdkafka does not flag it retriable.
_NOT_READY = frozenset({
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION,
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_LEADER_EPOCH, KafkaError.FENCED_LEADER_EPOCH,
})
# Consumer-side notices librdkafka recovers from by itself (as kafka-python does silently).
_TRANSIENT_READ = _UNAVAILABLE | _NOT_READY | {KafkaError._PARTITION_EOF}


def _translate_error(err: KafkaError, doing: str) -> EventLogError:
    if err.code() in _UNAVAILABLE:
        return LogUnavailableError(f"Kafka unreachable while {doing}: {err.str()}")
    return EventLogError(f"Kafka failed while {doing}: {err.name()}: {err.str()}",
                         retryable=err.retriable())


def _translate(e: KafkaException, doing: str) -> EventLogError:
    err = e.args[0] if e.args else None
    if isinstance(err, KafkaError):
        return _translate_error(err, doing)
    return EventLogError(f"Kafka failed while {doing}: {e!r}", retryable=False)


def _retrying(call: Callable[[float], T], *, timeout_s: float, doing: str) -> T:
    """`call(remaining seconds)`, retried on transient errors until `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            return call(max(0.001, deadline - time.monotonic()))
        except KafkaException as e:
            err = e.args[0] if e.args else None
            transient = isinstance(err, KafkaError) and (
                err.code() in _UNAVAILABLE | _NOT_READY or err.retriable())
            if not transient or time.monotonic() + delay >= deadline:
                raise _translate(e, doing) from e
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _swallow_error(err: KafkaError) -> None:
    """Global client errors (broker down...) are reported by the call that needs the broker."""
    _LOG.debug("librdkafka: %s", err)


class _Batch:
    """Delivery reports of one append call, filled by whichever thread serves the queue."""

    __slots__ = ("errors", "offsets", "pending", "wake")

    def __init__(self, size: int) -> None:
        self.offsets: list[Position | None] = [None] * size
        self.errors: list[KafkaError | None] = [None] * size
        self.pending = size
        self.wake = threading.Event()  # set when complete, or when it is this batch's turn to poll


class ConfluentEventLog(EventLog):
    """Events topic on a Kafka cluster through librdkafka; create it with `ensure_topic()`."""

    def __init__(self, *, bootstrap: str, topic: str, partitions: int = 12,
                 ack_timeout_s: float = 30.0, client_id: str = "amber",
                 replication_factor: int = 1, linger_ms: float = 0.0,
                 compression: Compression = "none") -> None:
        super().__init__(topic=topic, partitions=partitions)
        self._compression = checked_compression(compression)  # librdkafka has every codec
        self._bootstrap = bootstrap
        self._ack_timeout_s = ack_timeout_s
        self._client_id = client_id
        self._replication = replication_factor
        self._linger_ms = linger_ms
        self._producer: Producer | None = None
        self._admin: AdminClient | None = None
        self._watermarks: Consumer | None = None
        self._lock = threading.Lock()  # lazy creation and close
        # Delivery reports are served by one appending thread at a time (the poller); the
        # others sleep on their batch's event until it completes or the poller hands over.
        self._reports = threading.Lock()
        self._polling = False
        self._waiting: set[_Batch] = set()

    # --- configuration -------------------------------------------------------
    def _common(self) -> dict[str, Any]:
        """Options of every librdkafka client, all bounded by the ack timeout."""
        timeout_ms = max(10, int(self._ack_timeout_s * 1000))
        return {"bootstrap.servers": self._bootstrap, "client.id": self._client_id,
                "socket.timeout.ms": timeout_ms, "socket.connection.setup.timeout.ms": timeout_ms,
                "reconnect.backoff.max.ms": 1000, "logger": _LOG, "error_cb": _swallow_error}

    def _get_producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                timeout_ms = max(10, int(self._ack_timeout_s * 1000))
                self._producer = Producer({
                    **self._common(), "enable.idempotence": True, "acks": "all",
                    "linger.ms": self._linger_ms, "message.timeout.ms": timeout_ms,
                    "compression.type": self._compression,
                    "request.timeout.ms": timeout_ms,
                })
            return self._producer

    def _consumer(self, **extra: Any) -> Consumer:
        # group.id is required by the client but never used: partitions are assigned by
        # hand, nothing joins a group and nothing is committed.
        return Consumer({**self._common(), "group.id": f"{self._client_id}-unmanaged",
                         "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "auto.offset.reset": "earliest", **extra})

    # --- admin ---------------------------------------------------------------
    def _get_admin(self) -> AdminClient:
        with self._lock:
            if self._admin is None:
                self._admin = AdminClient(self._common())
            admin = self._admin
        admin.poll(0)  # serve queued log lines and client errors (kept bounded)
        return admin

    def ensure_topic(self) -> None:
        """Create the topic (N partitions, never expiring) unless it exists."""
        admin = self._get_admin()
        spec = NewTopic(self.topic, num_partitions=self.partitions,
                        replication_factor=self._replication, config=dict(TOPIC_CONFIG))
        futures = admin.create_topics([spec], operation_timeout=self._ack_timeout_s,
                                      request_timeout=self._ack_timeout_s)
        try:
            futures[self.topic].result(timeout=self._ack_timeout_s + 1)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return  # an existing topic is served already: nothing to wait for
            raise _translate(e, f"creating topic {self.topic}") from e
        except TimeoutError as e:
            raise LogUnavailableError(f"Kafka unreachable while creating topic {self.topic}: "
                                      f"no answer in {self._ack_timeout_s}s") from e
        await_visible(lambda: self._partition_count(admin), self.topic, self._ack_timeout_s)

    def _partition_count(self, client: AdminClient | Consumer) -> int:
        try:
            listed = client.list_topics(self.topic, timeout=self._ack_timeout_s)
            found = listed.topics.get(self.topic)
        except KafkaException as e:
            raise _translate(e, f"describing topic {self.topic}") from e
        return 0 if found is None or found.error is not None else len(found.partitions)

    # --- appending -----------------------------------------------------------
    def _send_all(self, records: list[tuple[str, bytes]]) -> list[Position]:
        if not records:
            return []
        self.check_partitions()
        producer = self._get_producer()
        doing = f"appending {len(records)} record(s)"
        # message.timeout.ms guarantees a report (maybe _MSG_TIMED_OUT) by then; the grace
        # covers the scheduling of librdkafka's own timers.
        deadline = time.monotonic() + self._ack_timeout_s + 1.0
        batch = _Batch(len(records))
        for i, (key, value) in enumerate(records):
            self._produce(producer, batch, i, key, value, deadline, doing)
        self._await(producer, batch, deadline)
        if batch.pending:
            raise LogUnavailableError(f"Kafka unreachable while {doing}: no acknowledgement "
                                      f"in {self._ack_timeout_s}s")
        for err in batch.errors:
            if err is not None:
                if err.fatal():  # e.g. the idempotent producer lost its sequence: start over
                    self._drop_producer(producer)
                raise _translate_error(err, doing)
        return [p for p in batch.offsets if p is not None]

    def _produce(self, producer: Producer, batch: _Batch, i: int, key: str, value: bytes,
                 deadline: float, doing: str) -> None:
        def report(err: KafkaError | None, msg: Message) -> None:
            with self._reports:
                if err is not None:
                    batch.errors[i] = err
                else:
                    batch.offsets[i] = Position(msg.partition() or 0, msg.offset() or 0)
                batch.pending -= 1
                if not batch.pending:
                    batch.wake.set()

        while True:
            try:
                producer.produce(self.topic, value=value, key=key.encode("utf-8"),
                                 partition=self.partition_of(key), on_delivery=report)
                return
            except BufferError:  # the local queue is full: let reports drain it, then retry
                if time.monotonic() >= deadline:
                    raise LogUnavailableError(f"Kafka unreachable while {doing}: "
                                              "the producer queue stayed full") from None
                producer.poll(0.05)
            except KafkaException as e:
                raise _translate(e, doing) from e

    def _await(self, producer: Producer, batch: _Batch, deadline: float) -> None:
        """Serve delivery reports until this batch has all of its own (or the deadline)."""
        while True:
            with self._reports:
                if not batch.pending or time.monotonic() >= deadline:
                    self._waiting.discard(batch)
                    return
                poller = not self._polling
                if poller:
                    self._polling = True
                    self._waiting.discard(batch)
                else:
                    self._waiting.add(batch)
            if not poller:
                batch.wake.wait(max(0.0, deadline - time.monotonic()))
                batch.wake.clear()  # the state is re-read under the lock right after
                continue
            try:
                while batch.pending and time.monotonic() < deadline:
                    # Returns once it served reports (ours or other callers'), at most 0.5 s.
                    producer.poll(max(0.0, min(deadline - time.monotonic(), 0.5)))
            finally:
                with self._reports:
                    self._polling = False
                    # Hand over to one caller still waiting, if any (no thundering herd).
                    successor = next((b for b in self._waiting if b.pending), None)
                    if successor is not None:
                        successor.wake.set()

    def _drop_producer(self, producer: Producer) -> None:
        with self._lock:
            if self._producer is producer:
                self._producer = None

    # --- reading -------------------------------------------------------------
    def end_offsets(self) -> dict[int, int]:
        # One ListOffsets request for every partition (per-partition watermark queries
        # cost a round trip each: ~9x slower for 12 partitions).
        self.check_partitions()
        admin = self._get_admin()
        request = {TopicPartition(self.topic, p): _LATEST for p in range(self.partitions)}

        def list_latest(timeout_s: float) -> dict[int, int]:
            futures = admin.list_offsets(request, request_timeout=timeout_s)
            try:
                return {tp.partition: f.result(timeout=timeout_s + 1).offset
                        for tp, f in futures.items()}
            except TimeoutError as e:  # the request timeout should have answered first
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT)) from e

        return _retrying(list_latest, timeout_s=self._ack_timeout_s, doing="reading end offsets")

    def end_offset(self, partition: int) -> int:
        # Every resume asks for its thread's partition. A watermark query blocks in
        # librdkafka; the admin client's futures cost two thread hand-offs (~0.4 ms).
        self.check_partitions()
        tp = TopicPartition(self.topic, partition)

        def high(timeout_s: float) -> int:
            return int(self._get_watermarks().get_watermark_offsets(
                tp, timeout=timeout_s, cached=False)[1])

        return _retrying(high, timeout_s=self._ack_timeout_s, doing="reading an end offset")

    def connect_soon(self, *, writes: bool = True) -> None:
        """librdkafka connects on its own threads as soon as a client exists."""
        self._get_watermarks()
        if writes:
            self._get_producer()

    def _topic_partitions(self) -> int | None:
        return self._partition_count(self._get_watermarks()) or None  # one metadata request

    def _get_watermarks(self) -> Consumer:
        with self._lock:
            if self._watermarks is None:
                self._watermarks = self._consumer()
            return self._watermarks

    def _bounded_reader(self, start: dict[int, int]) -> LogReader:
        # librdkafka fetches in the background, and a new assignment waits for the
        # fetch in flight: a long-polling one (waiting at the end of the partition
        # for new records) would add fetch.wait.max.ms to every read. The records
        # of a bounded read already exist, so this cursor never long-polls, and
        # read() parks it between reads so that it does not fetch at all when idle.
        return self._new_reader(start, fetch_wait_ms=0)

    def reader(self, start: dict[int, int], *, gather_ms: int = 0) -> LogReader:
        if gather_ms > 0:
            return self._new_reader(start, fetch_wait_ms=gather_ms, min_bytes=GATHER_BYTES)
        return self._new_reader(start, fetch_wait_ms=100)

    def _new_reader(self, start: dict[int, int], *, fetch_wait_ms: int,
                    min_bytes: int = 1) -> ConfluentLogReader:
        consumer = self._consumer(**{"fetch.wait.max.ms": fetch_wait_ms,
                                     "fetch.min.bytes": min_bytes})
        try:
            # librdkafka connects lazily: ask for the topic's metadata so a dead broker
            # fails here, bounded, like the kafka-python adapter's constructor.
            consumer.list_topics(self.topic, timeout=self._ack_timeout_s)
        except KafkaException as e:
            consumer.close()
            raise _translate(e, "connecting a consumer") from e
        return ConfluentLogReader(consumer, topic=self.topic, partitions=self.partitions,
                                  start=start)

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
            watermarks, self._watermarks = self._watermarks, None
            self._admin = None  # no close(): librdkafka releases it with the object
        if watermarks is not None:
            watermarks.close()
        if producer is not None:
            producer.flush(min(5.0, self._ack_timeout_s))
        self._close_reused_reader()


def fetched(consumer: Consumer, max_records: int, timeout_s: float) -> list[Message]:
    """Up to `max_records` messages, as soon as one is there (or [] after the timeout).

    consume(n, t) waits the whole timeout unless n records arrive (an idle worker
    sat out every 250 ms poll), so wait for the first one only, then take
    whatever else is already fetched without waiting.
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(max_records - 1, timeout=0)] if max_records > 1 else [first]


class ConfluentLogReader(LogReader):
    """Manually assigned partitions at the given offsets; no group, no commits.

    The position of a partition is the offset after the last record handed out
    (librdkafka itself drops records fetched for an earlier assignment).
    """

    def __init__(self, consumer: Consumer, *, topic: str, partitions: int,
                 start: dict[int, int]) -> None:
        self._consumer = consumer
        self._topic, self._partitions = topic, partitions
        self._next: dict[int, int] = {}
        self.reseek(start)

    def reseek(self, start: dict[int, int]) -> None:
        """Point this cursor at other partitions/offsets without reconnecting."""
        self._next = dict(start)
        try:
            self._consumer.assign([TopicPartition(self._topic, p, o) for p, o in start.items()])
        except KafkaException as e:
            raise _translate(e, "assigning partitions") from e

    def park(self) -> None:
        """Stop fetching until the next reseek (drops whatever was prefetched)."""
        try:
            self._consumer.unassign()
        except KafkaException as e:
            raise _translate(e, "unassigning partitions") from e
        self._next = {}

    def poll(self, *, max_records: int = 500, timeout_s: float = 1.0) -> list[Delivery]:
        try:
            messages = fetched(self._consumer, max_records, timeout_s)
        except KafkaException as e:
            raise _translate(e, "polling") from e
        out: list[Delivery] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() in _TRANSIENT_READ or err.retriable():
                    _LOG.debug("consumer notice: %s", err)
                    continue
                raise _translate_error(err, "polling")
            partition, offset = msg.partition(), msg.offset()
            if partition is None or offset is None or partition not in self._next:
                continue
            self._next[partition] = offset + 1
            out.append(decode_delivery(Position(partition, offset), msg.key(), msg.value() or b"",
                                       partitions=self._partitions))
        out.sort(key=lambda d: d.position)  # offset order per partition, partitions grouped
        return out

    def positions(self) -> dict[int, int]:
        # Tracked here rather than asked of consumer.position(): right after an assign()
        # librdkafka may still report the previous assignment's position for a while.
        return dict(self._next)

    def close(self) -> None:
        self._consumer.close()
