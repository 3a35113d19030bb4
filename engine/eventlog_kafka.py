"""Kafka adapter of the EventLog port (kafka-python).

Appends are idempotent with acks=all and return only after the broker
acknowledged every record: a step is durable before the next starts. They and
the end-offset queries go through engine.kafka_direct, which sends
kafka-python's protocol messages from the calling thread (4x faster than
KafkaProducer per acknowledged append), as do bounded reads; the tailing
readers behind the projector use KafkaConsumer. The partition
is computed by us (murmur2, same as Kafka's default) so every adapter agrees
where a thread lives. Driver errors are translated here, once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka import codec as kafka_codec
from kafka.admin import NewTopic
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OffsetOutOfRangeError,
    TopicAlreadyExistsError,
)

from engine.errors import EventLogError, LogUnavailableError, SettingsError
from engine.eventlog import (
    GATHER_BYTES,
    TOPIC_CONFIG,
    Delivery,
    EventLog,
    LogReader,
    Position,
    StallWatch,
    Tail,
    await_visible,
    decode_delivery,
    every_record,
    naming,
)
from engine.kafka_direct import DirectClient, Fetched, FetchedRecord
from engine.settings import Compression, checked_compression

FETCH_BYTES = 1 << 20


def _translate(e: Exception, doing: str) -> EventLogError:
    # kafka-python 3 has no NoBrokersAvailable: an unreachable bootstrap is a
    # KafkaTimeoutError ("Unable to bootstrap"), a dropped one a KafkaConnectionError.
    if isinstance(e, KafkaTimeoutError | KafkaConnectionError):
        return LogUnavailableError(f"Kafka unreachable while {doing}: {e}")
    retryable = bool(getattr(e, "retriable", False))
    return EventLogError(f"Kafka failed while {doing}: {e!r}", retryable=retryable)


@contextlib.contextmanager
def translated(doing: str) -> Iterator[None]:
    """kafka-python's errors raised inside, as the EventLogError `_translate` makes of them."""
    try:
        yield
    except KafkaError as e:
        raise _translate(e, doing) from e


class KafkaEventLog(EventLog):
    """Events topic on a Kafka cluster; create it with `ensure_topic()`."""

    def __init__(self, *, bootstrap: str, topic: str, partitions: int = 12,
                 ack_timeout_s: float = 30.0, client_id: str = "amber",
                 compression: Compression = "none") -> None:
        super().__init__(topic=topic, partitions=partitions)
        self._compression = _available(checked_compression(compression))
        self._bootstrap = bootstrap
        self._ack_timeout_s = ack_timeout_s
        self._client_id = client_id
        self._direct_client: DirectClient | None = None
        self._connect_error: tuple[float, EventLogError] | None = None  # connect_soon's failure
        self._closed = False  # set by close(): a late background connect then gives up
        self._lock = threading.Lock()  # guards the direct client's creation

    def _common(self) -> dict[str, Any]:
        return client_options(self._bootstrap, self._client_id, self._ack_timeout_s)

    def _client(self) -> dict[str, Any]:
        """Options of consumers."""
        return {**self._common(), "metrics_enabled": False}

    def connect_soon(self, *, writes: bool = True) -> None:
        """Bootstrap on a thread of its own: a resume reads PostgreSQL meanwhile.

        Reads and appends share the client; a producer identity is asked for at
        the first append, so `writes` changes nothing here.
        """
        threading.Thread(target=self._connect_in_background, name="amber-kafka-connect",
                         daemon=True).start()

    def _connect_in_background(self) -> None:
        with contextlib.suppress(Exception):  # the first call that needs Kafka reports it
            self._direct(background=True)

    def _direct(self, *, background: bool = False) -> DirectClient:
        client = self._direct_client or self._connected(background=background)
        self.check_partitions()
        return client

    def _topic_partitions(self) -> int | None:
        # From the metadata loaded when connecting; asked again while the topic is missing
        client = self._direct_client or self._connected(background=False)
        found = client.partition_count()
        return found if found is not None else client.partition_count(reload=True)

    def _connected(self, *, background: bool) -> DirectClient:
        asked = time.monotonic()
        with self._lock:
            if background and self._closed:  # closed while this thread was starting
                raise EventLogError("the event log was closed", retryable=False)
            if self._direct_client is None:
                self._direct_client = self._connect(asked, background=background)
            return self._direct_client

    def _connect(self, asked: float, *, background: bool) -> DirectClient:
        """A new client; under the lock. A background failure is kept for the caller
        that waited for it (not made to wait twice), and for nobody who came later."""
        failed, self._connect_error = self._connect_error, None
        if failed is not None and failed[0] >= asked:
            raise failed[1]
        try:
            return DirectClient(topic=self.topic, timeout_s=self._ack_timeout_s,
                                compression=self._compression, **self._common())
        except KafkaError as e:
            error = _translate(e, "connecting to Kafka")
            if background:
                self._connect_error = (time.monotonic(), error)
            raise error from e

    def ensure_topic(self) -> None:
        """Create the topic (N partitions, never expiring) unless it exists."""
        create_topic(self._common(), self.topic, self.partitions, self._ack_timeout_s)

    def _send_all(self, records: list[tuple[str, bytes]]) -> list[Position]:
        keyed = [(self.partition_of(k), k.encode("utf-8"), v) for k, v in records]
        client = self._direct()
        with translated(f"appending {len(records)} record(s)"):
            offsets = client.send(keyed)
        return [Position(p, offset) for (p, _k, _v), offset in zip(keyed, offsets, strict=True)]

    def end_offsets(self) -> dict[int, int]:
        return self._ends(range(self.partitions))

    def end_offset(self, partition: int) -> int:
        return self._ends([partition])[partition]

    def _ends(self, partitions: Iterable[int]) -> dict[int, int]:
        client = self._direct()
        with translated("reading end offsets"):
            ends: dict[int, int] = client.end_offsets(partitions)
        return ends

    def tail(self, partition: int, start: int, *, most: int,
             thread_id: str | None = None) -> Tail:
        """One fetch answers both: it carries the end offset and the records before it.

        The end is the leader's high watermark. Right after a leader change it may
        lag an acknowledged record for a moment; a resume that acts on a head
        missing that record is then refused by its first-writer-wins read-back.
        """
        client = self._direct()
        with translated(f"reading partition {partition}"):
            try:
                first = client.fetch(partition, start, wait_ms=0,
                                     max_bytes=FETCH_BYTES if most > 0 else 1)
            except OffsetOutOfRangeError:  # the projection is past the log (topic recreated?)
                end = self.end_offset(partition)
                return Tail(end, [] if start >= end else None)
        if first.end - start > most:
            return Tail(first.end, None)
        return Tail(first.end, self._read_range(partition, first.next_offset, first.end,
                                                first.records, naming(thread_id)))

    def _read_range(self, partition: int, start: int, stop: int,
                    fetched: Iterable[FetchedRecord] = (),
                    keep: Callable[[bytes | None], bool] = every_record) -> list[Delivery]:
        """Records up to `stop`, fetched in the calling thread: those already `fetched`
        (by tail), then more from `start`; only those `keep` passes are decoded."""
        records = list(fetched)
        stall = StallWatch(partition, stop)
        while start < stop:
            more = self._fetch(partition, start, wait_ms=100)
            stall.note(progressed=more.next_offset > start)
            records.extend(more.records)
            start = more.next_offset
        return [decode_delivery(Position(partition, offset), key, value,
                                partitions=self.partitions)
                for offset, key, value in records
                if offset < stop and keep(value)]

    def _fetch(self, partition: int, offset: int, *, wait_ms: int) -> Fetched:
        client = self._direct()
        with translated(f"reading partition {partition}"):
            return client.fetch(partition, offset, max_bytes=FETCH_BYTES, wait_ms=wait_ms)

    def reader(self, start: dict[int, int], *, gather_ms: int = 0) -> LogReader:
        fetch = ({"fetch_max_wait_ms": gather_ms, "fetch_min_bytes": GATHER_BYTES}
                 if gather_ms > 0 else {"fetch_max_wait_ms": 100})
        return KafkaLogReader(common=self._client(), topic=self.topic,
                              partitions=self.partitions, start=start, **fetch)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._connect_error = None
            if self._direct_client is not None:
                self._direct_client.close()
                self._direct_client = None


def client_options(bootstrap: str, client_id: str, timeout_s: float) -> dict[str, Any]:
    """Options every kafka-python client accepts (the admin client has no metrics_enabled).

    bootstrap_timeout_ms bounds the constructors: kafka-python 3 otherwise waits 30 s
    for an unreachable bootstrap whatever the request timeout.
    """
    timeout_ms = int(timeout_s * 1000)
    return {"bootstrap_servers": bootstrap, "client_id": client_id,
            "request_timeout_ms": timeout_ms, "bootstrap_timeout_ms": timeout_ms}


def create_topic(common: dict[str, Any], topic: str, partitions: int, timeout_s: float) -> None:
    """Create `topic` (`partitions`, never expiring) unless it exists; return once served."""
    with translated("connecting the admin client"):
        admin = KafkaAdminClient(**common)
    try:
        new = NewTopic(topic, partitions, 1, topic_configs=TOPIC_CONFIG)
        with translated(f"creating topic {topic}"):
            try:
                admin.create_topics([new])
            except TopicAlreadyExistsError:
                return  # an existing topic is served already: nothing to wait for
        with translated(f"describing topic {topic}"):
            await_visible(lambda: _partition_count(admin, topic), topic, timeout_s)
    finally:
        admin.close()


def _partition_count(admin: KafkaAdminClient, topic: str) -> int:
    [described] = admin.describe_topics([topic])
    return 0 if described.get("error_code") else len(described.get("partitions") or [])


def _available(compression: Compression) -> Compression:
    """Fail at construction, not at the first append, when the codec is not installed."""
    if compression == "zstd" and not kafka_codec.has_zstd():
        raise SettingsError("AMBER_KAFKA_COMPRESSION", "zstd needs the zstandard package: "
                            "pip install 'kafka-python[zstd]'")
    return compression


def _consumer(common: dict[str, Any], **extra: Any) -> KafkaConsumer:
    # A fresh consumer's first poll otherwise sleeps retry_backoff_ms (100) up to
    # twice while metadata loads: measured 90 ms of a cold `amber resume`.
    options = {"retry_backoff_ms": 10, **extra}
    with translated("connecting a consumer"):
        return KafkaConsumer(group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", **common, **options)


def deliveries(batches: dict[TopicPartition, list[Any]], *, partitions: int) -> list[Delivery]:
    """A KafkaConsumer.poll() result decoded, in offset order per partition."""
    return [decode_delivery(Position(r.partition, r.offset), r.key, r.value,
                            partitions=partitions)
            for tp in sorted(batches, key=lambda t: t.partition) for r in batches[tp]]


class KafkaLogReader(LogReader):
    """Manually assigned partitions, seeked to the given offsets; no group, no commits."""

    def __init__(self, *, common: dict[str, Any], topic: str, partitions: int,
                 start: dict[int, int], fetch_max_wait_ms: int = 100,
                 fetch_min_bytes: int = 1) -> None:
        self._consumer = _consumer(common, fetch_max_wait_ms=fetch_max_wait_ms,
                                   fetch_min_bytes=fetch_min_bytes, max_poll_records=5000)
        self._topic, self._partitions = topic, partitions
        self._tps: dict[int, TopicPartition] = {}
        self.reseek(start)

    def reseek(self, start: dict[int, int]) -> None:
        """Point this cursor at other partitions/offsets without reconnecting."""
        self._tps = {p: TopicPartition(self._topic, p) for p in start}
        self._consumer.assign(list(self._tps.values()))
        for partition, offset in start.items():
            self._consumer.seek(self._tps[partition], offset)

    def park(self) -> None:
        """Stop fetching until the next reseek (drops whatever was prefetched)."""
        self.reseek({})

    def poll(self, *, max_records: int = 500, timeout_s: float = 1.0) -> list[Delivery]:
        with translated("polling"):
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000),
                                          max_records=max_records)
        return deliveries(batches, partitions=self._partitions)

    def positions(self) -> dict[int, int]:
        with translated("reading positions"):
            return {p: self._consumer.position(tp) for p, tp in self._tps.items()}

    def close(self) -> None:
        self._consumer.close()
