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
        try:
            self._client.check_version(timeout_ms=int(timeout_s * 1000))
        except BaseException:
            self._client.close()
            raise
        self._topic_set = False
        self._versions: dict[Any, int] = {}
        self._lock = threading.Lock()  # kafka-python's client is driven by one thread at a time

    def refresh(self, deadline: float) -> None:
        """Load the topic's metadata again; KafkaTimeoutError if no answer by `deadline`."""
        with self._lock:
            cluster = self._client.cluster
            first, self._topic_set = not self._topic_set, True
            future = cluster.set_topics([self.topic]) if first else cluster.request_update()
            self._client.poll(timeout_ms=ms_left(deadline), future=future)
        if not future.is_done:
            raise Errors.KafkaTimeoutError(f"no metadata for topic {self.topic}")
        if future.failed():
            raise future.exception

    def leader(self, partition: int) -> int | None:
        with self._lock:
            node = self._client.cluster.leader_for_partition(TopicPartition(self.topic, partition))
        return None if node is None or node < 0 else int(node)

    def address(self, node: int) -> tuple[str, int]:
        with self._lock:
            broker = self._client.cluster.broker_metadata(node)
        if broker is None:
            raise Errors.LeaderNotAvailableError(f"broker {node} unknown")
        return str(broker.host), int(broker.port)

    def any_node(self) -> int | None:
        with self._lock:
            node = self._client.least_loaded_node()
        return None if node is None else int(node)

    def version(self, request: Any, low: int = 0, high: int = 99) -> int:
        """Newest version of `request` both sides speak, at most `high`, at least `low`."""
        with self._lock:
            if request not in self._versions:
                version = int(self._client.api_version(request, max_version=high))
                if version < low:
                    raise Errors.IncompatibleBrokerVersion(f"{request.__name__} v{low}+ needed")
                self._versions[request] = version
            return self._versions[request]

    def close(self) -> None:
        with self._lock:
            self._client.close()


def ms_left(deadline: float) -> int:
    return max(1, int((deadline - time.monotonic()) * 1000))
