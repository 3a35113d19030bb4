"""Idempotent appends, end offsets and fetches sent from the calling thread (kafka-python).

The kafka-python adapter appends and reads through here instead of
KafkaProducer and KafkaConsumer (see engine.kafka_wire for the numbers).
Requests go straight to each partition's leader over a BrokerChannel;
engine.kafka_cluster keeps the topic's metadata.

Each call borrows a lane (connections, producer id, sequence numbers) from a
small pool, so concurrent callers append in parallel as separate producers
would and none waits behind another's round trip; the pool holds as many lanes
as calls have been in flight at once, at most MAX_IDLE_LANES of them idle.

Idempotence as KafkaProducer does it: a producer id per lane, a sequence number
per partition, one batch in flight per partition, and a retry resends the very
same bytes, so a broker that appended a batch whose answer was lost drops the
repeat. If the broker forgets the producer (its id or epoch refused, a sequence
out of order) a new id is taken and the batch rebuilt: a repeat is then
possible, and harmless, since the acceptance rule rejects a second copy of an
event. Every call gives up at its deadline with the last error; a call that
gives up with a batch whose fate is unknown drops its lane's producer id, so
the next batch cannot carry the same sequence number and be taken by the
broker for a repeat of the lost one. A call of several rounds (over
BATCH_BYTES) that fails may leave its first rounds written.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import kafka.errors as Errors
from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
)
from kafka.protocol.producer import (
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProduceRequest,
    ProduceResponse,
)
from kafka.record import MemoryRecords
from kafka.record.default_records import DefaultRecordBatchBuilder

from engine.kafka_cluster import ClusterView, ms_left
from engine.kafka_wire import BrokerChannel
from engine.settings import Compression

# Produce v13 and Fetch v13 name topics by id; brokers that speak them also speak v12.
_PRODUCE_VERSIONS = (3, 12)
_FETCH_VERSIONS = (4, 12)
# Well under the broker's default message.max.bytes (1 MiB) per batch.
BATCH_BYTES = 512 * 1024
_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 1.0
MAX_IDLE_LANES = 16
_CODECS: dict[Compression, int] = {"none": DefaultRecordBatchBuilder.CODEC_NONE,
                                   "gzip": DefaultRecordBatchBuilder.CODEC_GZIP,
                                   "zstd": DefaultRecordBatchBuilder.CODEC_ZSTD}
# The broker must answer a produce (if only with REQUEST_TIMED_OUT) before we stop
# listening: an answer lost to our own deadline leaves the batch's fate unknown.
_BROKER_SHARE = 0.75
_LATEST = -1  # ListOffsets timestamp meaning "the next offset to be written"
# The broker no longer knows this producer's id, epoch or sequence: take a new id.
_NEW_IDENTITY = (Errors.OutOfOrderSequenceNumberError, Errors.UnknownProducerIdError,
                 Errors.InvalidProducerEpochError)

Records = list[tuple[bytes, bytes]]


FetchedRecord = tuple[int, bytes | None, bytes]  # offset, key, value


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one fetch found on a partition: records from the offset asked, and the end."""

    records: list[FetchedRecord]
    end: int  # the high watermark: next offset to be written
    next_offset: int  # where the next fetch starts (past control batches too)


@dataclass(frozen=True, slots=True)
class _Batch:
    records: Records
    payload: bytes


class DirectClient:
    """Appends to a topic, reads its end offsets and records; thread-safe."""

    def __init__(self, *, topic: str, client_id: str, timeout_s: float,
                 compression: Compression = "none", **client: Any) -> None:
        codec = _CODECS[compression]  # before connecting: a bad name leaves nothing open
        self._cluster = ClusterView(topic=topic, timeout_s=timeout_s, client_id=client_id,
                                    **client)
        try:
            # The broker answered (ClusterView bootstrapped); a topic created a moment ago
            # may still be missing from its metadata, and each call waits for it anyway.
            with contextlib.suppress(Errors.KafkaError):
                self._cluster.refresh(time.monotonic() + timeout_s)
        except BaseException:
            self._cluster.close()
            raise
        self._timeout_s = timeout_s
        self._lane_args = (self._cluster, client_id, timeout_s, codec)
        self._idle: list[_Lane] = []
        self._closed = False
        self._lock = threading.Lock()  # guards _idle and _closed

    @contextlib.contextmanager
    def _lane(self) -> Iterator[_Lane]:
        """A lane no other call is using, returned to the pool afterwards."""
        with self._lock:
            if self._closed:
                raise Errors.KafkaConnectionError("the Kafka client is closed")
            lane = self._idle.pop() if self._idle else None
        lane = lane or _Lane(*self._lane_args)
        try:
            yield lane
        finally:
            with self._lock:
                keep = not self._closed and len(self._idle) < MAX_IDLE_LANES
                if keep:
                    self._idle.append(lane)
            if not keep:
                lane.close()

    def partition_count(self, *, reload: bool = False) -> int | None:
        """The topic's partitions as last loaded (`reload`: ask the broker again first);
        None while the topic does not exist."""
        if reload:
            with contextlib.suppress(Errors.KafkaError):  # the caller's next call says why
                self._cluster.refresh(time.monotonic() + self._timeout_s)
        return self._cluster.partition_count()

    def refresh(self) -> None:
        """Load the topic's metadata again; kafka-python's error if that fails
        (UnknownTopicOrPartitionError: the broker answered that there is no such topic)."""
        self._cluster.refresh(time.monotonic() + self._timeout_s)

    def send(self, records: Sequence[tuple[int, bytes, bytes]]) -> list[int]:
        """Append (partition, key, value) records in order; the offset of each, once acked."""
        with self._lane() as lane:
            return lane.send(records)

    def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        """Next offset to be written, per partition (the high watermark)."""
        with self._lane() as lane:
            return lane.end_offsets(partitions)

    def fetch(self, partition: int, offset: int, *, max_bytes: int, wait_ms: int = 0) -> Fetched:
        """Records from `offset` on: about `max_bytes` of them, at least one if any exist.

        With `wait_ms`, the broker holds an answer that would be empty that long.
        """
        with self._lane() as lane:
            return lane.fetch(partition, offset, max_bytes=max_bytes, wait_ms=wait_ms)

    def close(self) -> None:
        """Close idle lanes now and busy ones when their call returns."""
        with self._lock:
            self._closed = True
            lanes, self._idle = self._idle, []
        for lane in lanes:
            lane.close()
        self._cluster.close()


class _Lane:
    """Connections and a producer identity, used by one call at a time."""

    def __init__(self, cluster: ClusterView, client_id: str, timeout_s: float,
                 codec: int) -> None:
        self._meta = cluster
        self._codec = codec
        self._topic = cluster.topic
        self._client_id = client_id
        self._timeout_s = timeout_s
        self._channels: dict[int, BrokerChannel] = {}
        self._producer_id, self._epoch = -1, -1
        self._sequence: dict[int, int] = defaultdict(int)

    # -- appends ---------------------------------------------------------------

    def send(self, records: Sequence[tuple[int, bytes, bytes]]) -> list[int]:
        by_partition: dict[int, Records] = defaultdict(list)
        for partition, key, value in records:
            by_partition[partition].append((key, value))
        deadline = time.monotonic() + self._timeout_s
        if self._producer_id < 0:
            self._new_identity(deadline)
        try:
            offsets = self._append_rounds(by_partition, deadline)
        except BaseException:
            self._producer_id = -1  # some batch may or may not be in the log
            raise
        each = {p: iter(listed) for p, listed in offsets.items()}
        return [next(each[partition]) for partition, _key, _value in records]

    def _append_rounds(self, by_partition: dict[int, Records],
                       deadline: float) -> dict[int, list[int]]:
        """Offsets of every record, per partition; batches past BATCH_BYTES go in later rounds."""
        offsets: dict[int, list[int]] = defaultdict(list)
        rounds = {p: _chunks(recs) for p, recs in by_partition.items()}
        while rounds:
            this = {p: chunks.pop(0) for p, chunks in rounds.items()}
            for p, first in self._deliver(this, deadline).items():
                offsets[p].extend(range(first, first + len(this[p])))
            rounds = {p: chunks for p, chunks in rounds.items() if chunks}
        return offsets

    def _deliver(self, pending: dict[int, Records], deadline: float) -> dict[int, int]:
        batches = {p: self._build(p, recs) for p, recs in pending.items()}
        offsets: dict[int, int] = {}
        while batches:
            errors = self._per_leader(batches, self._produce, deadline, offsets)
            for p in offsets:
                if p in batches:
                    self._sequence[p] += len(batches.pop(p).records)
            if batches:
                self._recover(errors, deadline)
                if any(isinstance(e, _NEW_IDENTITY) for e in errors.values()):
                    self._new_identity(deadline)
                    batches = {p: self._build(p, b.records) for p, b in batches.items()}
        return offsets

    def _build(self, partition: int, records: Records) -> _Batch:
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=self._codec, is_transactional=False,
            producer_id=self._producer_id, producer_epoch=self._epoch,
            base_sequence=self._sequence[partition] & 0x7FFFFFFF, batch_size=1 << 30)
        now_ms = int(time.time() * 1000)
        for i, (key, value) in enumerate(records):
            builder.append(i, now_ms, key, value, [])
        return _Batch(records, bytes(builder.build()))

    def _produce(self, node: int, batches: dict[int, _Batch], deadline: float) -> dict[int, Any]:
        topic = ProduceRequest.TopicProduceData
        parts = [topic.PartitionProduceData(index=p, records=b.payload) for p, b in batches.items()]
        broker_ms = max(1, int(ms_left(deadline) * _BROKER_SHARE))
        request = ProduceRequest(transactional_id=None, acks=-1, timeout_ms=broker_ms,
                                 topic_data=[topic(name=self._topic, partition_data=parts)])
        version = self._meta.version(ProduceRequest, *_PRODUCE_VERSIONS)
        response = self._channel(node).call(request, ProduceResponse, version=version,
                                            deadline=deadline)
        return {r.index: _outcome(r.error_code, r.base_offset, r.error_message)
                for t in response.responses for r in t.partition_responses}

    def _new_identity(self, deadline: float) -> None:
        while True:
            node = self._meta.any_node()
            try:
                if node is None:
                    raise Errors.NodeNotReadyError("no broker to ask for a producer id")
                self._producer_id, self._epoch = self._init_producer_id(node, deadline)
                self._sequence.clear()
                return
            except Errors.KafkaError as e:
                self._recover({-1: e}, deadline)

    def _init_producer_id(self, node: int, deadline: float) -> tuple[int, int]:
        request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=0,
                                        producer_id=-1, producer_epoch=-1)
        response = self._channel(node).call(
            request, InitProducerIdResponse, deadline=deadline,
            version=self._meta.version(InitProducerIdRequest))
        if response.error_code:
            raise Errors.for_code(response.error_code)()
        return int(response.producer_id), int(response.producer_epoch)

    # -- end offsets -----------------------------------------------------------

    def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        ends: dict[int, int] = self._answered(dict.fromkeys(partitions), self._list_offsets)
        return ends

    def _list_offsets(self, node: int, parts: dict[int, None], deadline: float) -> dict[int, Any]:
        topic = ListOffsetsRequest.ListOffsetsTopic
        asked = [topic.ListOffsetsPartition(partition_index=p, current_leader_epoch=-1,
                                            timestamp=_LATEST) for p in parts]
        request = ListOffsetsRequest(replica_id=-1, isolation_level=0,
                                     timeout_ms=ms_left(deadline),
                                     topics=[topic(name=self._topic, partitions=asked)])
        response = self._channel(node).call(request, ListOffsetsResponse, deadline=deadline,
                                            version=self._meta.version(ListOffsetsRequest,
                                                                       low=1))
        return {r.partition_index: _outcome(r.error_code, r.offset, None)
                for t in response.topics for r in t.partitions}

    # -- records ------------------------------------------------------------------

    def fetch(self, partition: int, offset: int, *, max_bytes: int, wait_ms: int) -> Fetched:
        found: Fetched = self._answered({partition: (offset, max_bytes, wait_ms)},
                                        self._fetch)[partition]
        return found

    def _fetch(self, node: int, parts: dict[int, tuple[int, int, int]],
               deadline: float) -> dict[int, Any]:
        topic = FetchRequest.FetchTopic
        asked = [topic.FetchPartition(partition=p, current_leader_epoch=-1, fetch_offset=offset,
                                      last_fetched_epoch=-1, log_start_offset=-1,
                                      partition_max_bytes=most)
                 for p, (offset, most, _wait) in parts.items()]
        wait_ms = max(wait for _o, _m, wait in parts.values())
        request = FetchRequest(replica_id=-1, max_wait_ms=wait_ms, min_bytes=1 if wait_ms else 0,
                               max_bytes=sum(most for _o, most, _w in parts.values()),
                               isolation_level=0, session_id=0, session_epoch=-1,
                               topics=[topic(topic=self._topic, partitions=asked)],
                               forgotten_topics_data=[], rack_id="")
        response = self._channel(node).call(request, FetchResponse, deadline=deadline,
                                            version=self._meta.version(FetchRequest,
                                                                       *_FETCH_VERSIONS))
        if getattr(response, "error_code", 0):  # v7+: the whole request was refused
            raise _error(response.error_code, None)
        return {r.partition_index: _fetched(r, parts[r.partition_index][0])
                for t in response.responses for r in t.partitions}

    # -- routing and recovery ----------------------------------------------------

    def _answered(self, items: dict[int, Any],
                  call: Callable[[int, dict[int, Any], float], dict[int, Any]]) -> dict[int, Any]:
        """`call`'s answer for every item, asking again for those that failed until
        `_recover` gives up (a leader moving, a broker restarting)."""
        deadline = time.monotonic() + self._timeout_s
        answers: dict[int, Any] = {}
        while items:
            errors = self._per_leader(items, call, deadline, answers)
            items = {p: item for p, item in items.items() if p not in answers}
            if items:
                self._recover(errors, deadline)
        return answers

    def _per_leader(self, items: dict[int, Any],
                    call: Callable[[int, dict[int, Any], float], dict[int, Any]],
                    deadline: float, results: dict[int, Any]) -> dict[int, Exception]:
        """One request per leader for `items`; fills `results`, returns what failed."""
        errors: dict[int, Exception] = {}
        for node, group in self._by_leader(items, errors).items():
            try:
                answers = call(node, group, deadline)
            except Errors.KafkaError as e:
                errors.update(dict.fromkeys(group, e))
                continue
            for p in group:
                answer = answers.get(p, Errors.UnknownTopicOrPartitionError(f"partition {p}"))
                if isinstance(answer, Exception):
                    errors[p] = answer
                else:
                    results[p] = answer
        return errors

    def _by_leader(self, items: dict[int, Any],
                   errors: dict[int, Exception]) -> dict[int, dict[int, Any]]:
        groups: dict[int, dict[int, Any]] = defaultdict(dict)
        for p, item in items.items():
            node = self._meta.leader(p)
            if node is None:
                errors[p] = self._meta.no_leader(p)
            else:
                groups[node][p] = item
        return groups

    def _recover(self, errors: dict[int, Exception], deadline: float) -> None:
        """Raise the first error that retrying cannot mend, or any once time is up.

        Otherwise back off (longer the longer the call has been failing: a topic
        that does not exist should not cost a metadata request every 50 ms).
        """
        first = next(iter(errors.values()), Errors.KafkaTimeoutError("nothing answered"))
        for error in errors.values():
            if not (getattr(error, "retriable", False) or isinstance(error, _NEW_IDENTITY)):
                raise error
        remaining = deadline - time.monotonic()
        if remaining < _BACKOFF_S:
            raise first
        failing_s = self._timeout_s - remaining
        backoff = min(_MAX_BACKOFF_S, max(_BACKOFF_S, failing_s / 4), remaining - _BACKOFF_S / 2)
        time.sleep(backoff)  # a leader moving or a broker restarting takes a while
        if any(getattr(e, "invalid_metadata", False) for e in errors.values()):
            self._refresh(deadline)

    def _refresh(self, deadline: float) -> None:
        with contextlib.suppress(Errors.KafkaError):  # the retry after reports what is wrong
            self._meta.refresh(deadline)

    def _channel(self, node: int) -> BrokerChannel:
        address = self._meta.address(node)
        channel = self._channels.get(node)
        if channel is None or channel.address != address:
            if channel is not None:
                channel.close()
            channel = self._channels[node] = BrokerChannel(*address, client_id=self._client_id)
        return channel

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()


def _outcome(code: int, value: int, message: str | None) -> int | Exception:
    return int(value) if code == 0 else _error(code, message)


def _error(code: int, message: str | None) -> Exception:
    error: Exception = Errors.for_code(code)(*([message] if message else []))
    return error


def _fetched(answer: Any, offset: int) -> Fetched | Exception:
    if answer.error_code:
        return _error(answer.error_code, None)
    records: list[FetchedRecord] = []
    batches = MemoryRecords(bytes(answer.records or b""))
    next_offset = offset
    while (batch := batches.next_batch()) is not None:
        if not batch.validate_crc():
            corrupt: Exception = Errors.CorruptRecordError(
                f"batch at offset {batch.base_offset} fails its CRC")
            return corrupt
        next_offset = max(next_offset, batch.next_offset)
        if not getattr(batch, "is_control_batch", False):
            records.extend((r.offset, r.key, r.value) for r in batch if r.offset >= offset)
    return Fetched(records, int(answer.high_watermark), next_offset)


def _chunks(records: Records) -> list[Records]:
    """Records split so that no batch but a single oversized record exceeds BATCH_BYTES."""
    chunks: list[Records] = [[]]
    size = 0
    for key, value in records:
        cost = len(key) + len(value) + DefaultRecordBatchBuilder.MAX_RECORD_OVERHEAD
        if chunks[-1] and size + cost > BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append((key, value))
        size += cost
    return chunks


