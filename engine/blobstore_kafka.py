"""Kafka adapter of the BlobStore port (kafka-python): the blob topic.

Blobs live on their own topic (`<prefix>.blobs`, the events topic's partition
count, never expiring, never compacted: a pointer names offsets), each chunk a
record keyed by the blob's digest, on the partition of the thread that first
wrote it. So the log stays the whole truth: topics alone rebuild every state,
texts included. The topic is made at the first write; appends and reads go
through engine.kafka_direct like the event log's. Driver errors are translated
as the event log translates them.
"""

from __future__ import annotations

import threading

from kafka.errors import OffsetOutOfRangeError, UnknownTopicOrPartitionError

from engine.blobs import BlobRef
from engine.blobstore import CHUNK_BYTES, BlobStore
from engine.errors import BlobError, EventLogError
from engine.eventlog_kafka import client_options, create_topic, translated
from engine.kafka_direct import DirectClient

# A fetch from a chunk's offset returns that record whole, and often its neighbours.
_FETCH_BYTES = 4 * CHUNK_BYTES


class KafkaBlobStore(BlobStore):
    def __init__(self, *, bootstrap: str, topic: str, partitions: int,
                 timeout_s: float = 30.0, client_id: str = "amber") -> None:
        self.topic, self.partitions = topic, partitions
        self._common = client_options(bootstrap, client_id, timeout_s)
        self._timeout_s = timeout_s
        self._client: DirectClient | None = None
        self._topic_ready = False
        self._lock = threading.Lock()

    def _write(self, partition: int, key: bytes, chunks: list[bytes]) -> list[int]:
        client = self._connected(writing=True)
        with translated(f"writing a blob of {len(chunks)} chunk(s) to {self.topic}"):
            return client.send([(partition, key, chunk) for chunk in chunks])

    def _read(self, ref: BlobRef) -> list[bytes]:
        client = self._connected(writing=False)
        count = self._count(client)
        if count is None or not 0 <= ref.partition < count:  # else retried until timeout
            raise self._gone(ref, "no such topic" if count is None else
                             f"the topic has {count} partitions")
        found: dict[int, bytes] = {}
        for offset in ref.offsets:
            if offset not in found:
                found.update(self._fetched(client, ref, offset))
            if offset not in found:
                raise self._gone(ref, f"no record at offset {offset}")
        return [found[offset] for offset in ref.offsets]

    def _count(self, client: DirectClient) -> int | None:
        """The topic's partitions; None only if the broker says there is no such topic (a
        broker that does not answer is raised: the step is then not taken at all)."""
        known = client.partition_count()
        if known is not None:
            return known
        with translated(f"reading the metadata of {self.topic}"):
            try:
                client.refresh()
            except UnknownTopicOrPartitionError:
                return None
        return client.partition_count()

    def _fetched(self, client: DirectClient, ref: BlobRef, offset: int) -> dict[int, bytes]:
        with translated(f"reading blob {ref.digest} from {self.topic}"):
            try:
                fetched = client.fetch(ref.partition, offset, max_bytes=_FETCH_BYTES)
            except OffsetOutOfRangeError:
                raise self._gone(ref, f"offset {offset} is not on the topic") from None
        key = ref.digest.encode("ascii")
        return {at: value for at, k, value in fetched.records if k == key}

    def _gone(self, ref: BlobRef, why: str) -> BlobError:
        return BlobError(f"blob {ref.digest} is missing from {self.topic} partition "
                         f"{ref.partition}: {why}", digest=ref.digest)

    def _connected(self, *, writing: bool) -> DirectClient:
        with self._lock:
            if self._client is None:
                with translated(f"connecting to {self.topic}"):
                    self._client = DirectClient(topic=self.topic, timeout_s=self._timeout_s,
                                                **self._common)
            if writing and not self._topic_ready:
                self._ready(self._client)
            return self._client

    def _ready(self, client: DirectClient) -> None:
        """Make the topic unless it exists (asking first: a cluster may let us write to a
        topic it made without letting us create one), and refuse one too small."""
        count = self._count(client)
        if count is None:
            create_topic(self._common, self.topic, self.partitions, self._timeout_s)
            count = self._count(client)
        if count is not None and count < self.partitions:
            raise EventLogError(f"topic {self.topic} has {count} partitions, fewer than the "
                                f"events topic's {self.partitions}: blobs go to their thread's "
                                "partition", retryable=False)
        self._topic_ready = True

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
