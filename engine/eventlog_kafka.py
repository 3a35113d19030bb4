"""Kafka adapter of the EventLog port (kafka-python).

Appends use an idempotent producer with acks=all and return only after the
broker acknowledged every record: a step is durable before the next starts.
The partition is computed by us (murmur2, same as Kafka's default) so every
adapter agrees where a thread lives. Driver errors are translated here, once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
)

from engine.errors import EventLogError, LogUnavailableError
from engine.eventlog import (
    GATHER_BYTES,
    TOPIC_CONFIG,
    Delivery,
    EventLog,
    LogReader,
    Position,
    decode_delivery,
)


def _translate(e: Exception, doing: str) -> EventLogError:
    # kafka-python 3 has no NoBrokersAvailable: an unreachable bootstrap is a
    # KafkaTimeoutError ("Unable to bootstrap"), a dropped one a KafkaConnectionError.
    if isinstance(e, KafkaTimeoutError | KafkaConnectionError):
        return LogUnavailableError(f"Kafka unreachable while {doing}: {e}")
    retryable = bool(getattr(e, "retriable", False))
    return EventLogError(f"Kafka failed while {doing}: {e!r}", retryable=retryable)


class KafkaEventLog(EventLog):
    """Events topic on a Kafka cluster; create it with `ensure_topic()`."""

    def __init__(self, *, bootstrap: str, topic: str, partitions: int = 12,
                 ack_timeout_s: float = 30.0, client_id: str = "amber") -> None:
        super().__init__(topic=topic, partitions=partitions)
        self._bootstrap = bootstrap
        self._ack_timeout_s = ack_timeout_s
        self._client_id = client_id
        self._producer: KafkaProducer | None = None
        self._meta: KafkaConsumer | None = None
        # One producer per log, shared by threads; the metadata consumer is not thread-safe.
        self._lock = threading.Lock()

    def _common(self) -> dict[str, Any]:
        """Options every kafka-python client accepts (the admin client has no metrics_enabled).

        bootstrap_timeout_ms bounds the constructors: kafka-python 3 otherwise waits 30 s
        for an unreachable bootstrap whatever the request timeout.
        """
        timeout_ms = int(self._ack_timeout_s * 1000)
        return {"bootstrap_servers": self._bootstrap, "client_id": self._client_id,
                "request_timeout_ms": timeout_ms, "bootstrap_timeout_ms": timeout_ms}

    def _client(self) -> dict[str, Any]:
        """Options of producers and consumers."""
        return {**self._common(), "metrics_enabled": False}

    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = KafkaProducer(
                        acks="all", enable_idempotence=True, linger_ms=0,
                        max_block_ms=int(self._ack_timeout_s * 1000), **self._client())
                except KafkaError as e:
                    raise _translate(e, "connecting the producer") from e
            return self._producer

    def ensure_topic(self) -> None:
        """Create the topic (N partitions, never expiring) unless it exists."""
        try:
            admin = KafkaAdminClient(**self._common())
        except KafkaError as e:
            raise _translate(e, "connecting the admin client") from e
        try:
            topic = NewTopic(self.topic, self.partitions, 1, topic_configs=TOPIC_CONFIG)
            admin.create_topics([topic])
        except TopicAlreadyExistsError:
            pass
        except KafkaError as e:
            raise _translate(e, f"creating topic {self.topic}") from e
        finally:
            admin.close()

    def _send_all(self, records: list[tuple[str, bytes]]) -> list[Position]:
        producer = self._get_producer()
        try:
            futures = [producer.send(self.topic, key=k.encode("utf-8"), value=v,
                                     partition=self.partition_of(k)) for k, v in records]
            producer.flush(timeout=self._ack_timeout_s)
            metas = [f.get(timeout=self._ack_timeout_s) for f in futures]
        except KafkaError as e:
            raise _translate(e, f"appending {len(records)} record(s)") from e
        return [Position(m.partition, m.offset) for m in metas]

    def _get_meta(self) -> KafkaConsumer:
        if self._meta is None:
            self._meta = _consumer(self._client())
        return self._meta

    def end_offsets(self) -> dict[int, int]:
        return self._ends(range(self.partitions))

    def end_offset(self, partition: int) -> int:
        return self._ends([partition])[partition]

    def _ends(self, partitions: Iterable[int]) -> dict[int, int]:
        tps = [TopicPartition(self.topic, p) for p in partitions]
        try:
            with self._lock:
                ends = self._get_meta().end_offsets(tps)
        except KafkaError as e:
            raise _translate(e, "reading end offsets") from e
        return {tp.partition: off for tp, off in ends.items()}

    def reader(self, start: dict[int, int], *, gather_ms: int = 0) -> LogReader:
        fetch = ({"fetch_max_wait_ms": gather_ms, "fetch_min_bytes": GATHER_BYTES}
                 if gather_ms > 0 else {"fetch_max_wait_ms": 100})
        return KafkaLogReader(common=self._client(), topic=self.topic, start=start, **fetch)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
            if self._meta is not None:
                self._meta.close()
                self._meta = None
        self._close_reused_reader()


def _consumer(common: dict[str, Any], **extra: Any) -> KafkaConsumer:
    try:
        # A fresh consumer's first poll otherwise sleeps retry_backoff_ms (100) up to
        # twice while metadata loads: measured 90 ms of a cold `amber resume`.
        options = {"retry_backoff_ms": 10, **extra}
        return KafkaConsumer(group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", **common, **options)
    except KafkaError as e:
        raise _translate(e, "connecting a consumer") from e


def deliveries(batches: dict[TopicPartition, list[Any]]) -> list[Delivery]:
    """A KafkaConsumer.poll() result decoded, in offset order per partition."""
    return [decode_delivery(Position(r.partition, r.offset), r.key, r.value)
            for tp in sorted(batches, key=lambda t: t.partition) for r in batches[tp]]


class KafkaLogReader(LogReader):
    """Manually assigned partitions, seeked to the given offsets; no group, no commits."""

    def __init__(self, *, common: dict[str, Any], topic: str, start: dict[int, int],
                 fetch_max_wait_ms: int = 100, fetch_min_bytes: int = 1) -> None:
        self._consumer = _consumer(common, fetch_max_wait_ms=fetch_max_wait_ms,
                                   fetch_min_bytes=fetch_min_bytes, max_poll_records=5000)
        self._topic = topic
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
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000),
                                          max_records=max_records)
        except KafkaError as e:
            raise _translate(e, "polling") from e
        return deliveries(batches)

    def positions(self) -> dict[int, int]:
        try:
            return {p: self._consumer.position(tp) for p, tp in self._tps.items()}
        except KafkaError as e:
            raise _translate(e, "reading positions") from e

    def close(self) -> None:
        self._consumer.close()
