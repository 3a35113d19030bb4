"""Where a topic's partitions live, from kafka-python's network client; thread-safe.

The direct client (engine.kafka_direct) sends its requests itself; this view
only bootstraps, loads the topic's metadata when asked and answers which broker
leads a partition, at which address, speaking which API versions.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import kafka.errors as Errors
from kafka.net.compat import KafkaNetClient
from kafka.structs import TopicPartition


class ClusterView:
    """One topic's leaders and the brokers' API versions."""

    def __init__(self, *, topic: str, timeout_s: float, **client: Any) -> None:
        self.topic = topic
        self._client = KafkaNetClient(**client)
        # Asking for a topic's metadata must never create it with the broker's defaults
        # (one partition, a week's retention): the events topic is made by ensure_topic.
        self._client.cluster.config["allow_auto_create_topics"] = False
        try:
            self._client.check_version(timeout_ms=int(timeout_s * 1000))
        except BaseException:
            self._client.close()
            raise
        self._topic_set = False
        self._versions: dict[Any, int] = {}
        # kafka-python's client is driven by one thread at a time; the metadata it
        # keeps is read without this lock, so a refresh never stalls other calls.
        self._poll_lock = threading.Lock()

    def refresh(self, deadline: float) -> None:
        """Load the topic's metadata again; KafkaTimeoutError if no answer by `deadline`."""
        with self._poll_lock:
            cluster = self._client.cluster
            future = cluster.request_update() if self._topic_set else \
                cluster.set_topics([self.topic])
            self._topic_set = True
            self._client.poll(timeout_ms=ms_left(deadline), future=future)
        if not future.is_done:
            raise Errors.KafkaTimeoutError(f"no metadata for topic {self.topic}")
        if future.failed():
            raise future.exception

    def partition_count(self) -> int | None:
        """How many partitions the topic has, as last loaded; None if it was not found."""
        known = self._client.cluster.partitions_for_topic(self.topic)
        return None if known is None else len(known)

    def leader(self, partition: int) -> int | None:
        node = self._client.cluster.leader_for_partition(TopicPartition(self.topic, partition))
        return None if node is None or node < 0 else int(node)

    def no_leader(self, partition: int) -> Exception:
        """Why `partition` has no leader: retriable unless the partition cannot exist."""
        known = self._client.cluster.partitions_for_topic(self.topic)
        why: Exception
        if known is None:
            why = Errors.UnknownTopicOrPartitionError(
                f"topic {self.topic} not found (ensure_topic() creates it, as `amber start` does)")
        elif partition >= len(known):
            why = Errors.KafkaConfigurationError(
                f"topic {self.topic} has {len(known)} partitions, so no partition {partition}: "
                "AMBER_PARTITIONS must match the topic")
        else:
            why = Errors.LeaderNotAvailableError(f"{self.topic}-{partition} has no leader")
        return why

    def address(self, node: int) -> tuple[str, int]:
        broker = self._client.cluster.broker_metadata(node)
        if broker is None:
            raise Errors.LeaderNotAvailableError(f"broker {node} unknown")
        return str(broker.host), int(broker.port)

    def any_node(self) -> int | None:
        with self._poll_lock:
            node = self._client.least_loaded_node()
        return None if node is None else int(node)

    def version(self, request: Any, low: int = 0, high: int = 99) -> int:
        """Newest version of `request` both sides speak, at most `high`, at least `low`."""
        known = self._versions.get(request)
        if known is not None:
            return known
        version = int(self._client.api_version(request, max_version=high))
        if version < low:
            raise Errors.IncompatibleBrokerVersion(f"{request.__name__} v{low}+ needed")
        self._versions[request] = version
        return version

    def close(self) -> None:
        with self._poll_lock:
            self._client.close()


def ms_left(deadline: float) -> int:
    return max(1, int((deadline - time.monotonic()) * 1000))
