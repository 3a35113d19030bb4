"""The GroupConsumer port: a member of a Kafka consumer group, as the worker needs it.

Adapters: group_kafka.py (kafka-python, the default) and group_confluent.py
(librdkafka, with AMBER_KAFKA_CLIENT=confluent). Offsets are committed only
when the worker says so: never automatically.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from engine.eventlog import Delivery
from engine.settings import Settings

PartitionsCallback = Callable[[set[int]], None]


KAFKA_MAX_POLL_INTERVAL_MS = 300_000  # the Kafka clients' own default


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupOptions:
    bootstrap: str
    group: str
    topic: str
    partitions: int  # the topic's: an event off its thread's partition is a dead letter
    # The broker answers a fetch as soon as a record lands, so a long wait costs no
    # latency; a 20 ms poll kept each idle worker at 7.6% of a core.
    fetch_wait_ms: int = 500
    max_records: int = 2000
    # A dead member's partitions move after 10 s, not the default 45 s.
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # Longer than a batch plus its slowest bounded node (worker.poll_interval_ms): a
    # member that does not poll within it is dropped and its partitions move.
    max_poll_interval_ms: int = KAFKA_MAX_POLL_INTERVAL_MS


class GroupConsumer(ABC):
    """Subscribed to one topic; rebalance callbacks run inside poll()."""

    @abstractmethod
    def subscribe(self, *, on_assign: PartitionsCallback, on_revoke: PartitionsCallback) -> None:
        ...

    @abstractmethod
    def poll(self, *, timeout_ms: int) -> list[Delivery]:
        """Decoded records, in offset order per partition; [] if none arrived."""

    @abstractmethod
    def assignment(self) -> set[int]: ...

    @abstractmethod
    def commit(self, next_offsets: dict[int, int]) -> None:
        """Commit synchronously; raises GroupCommitError if the group moved on."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group."""


class GroupCommitError(Exception):
    """A commit the coordinator refused (usually: a rebalance took the partition)."""


def group_consumer(settings: Settings, options: GroupOptions) -> GroupConsumer:
    """The adapter AMBER_KAFKA_CLIENT names (imported only when chosen)."""
    if settings.kafka_client == "confluent":
        try:
            from consumers.group_confluent import ConfluentGroupConsumer
        except ImportError as e:
            from consumers.checkpointer import confluent_missing

            raise confluent_missing(e) from None
        return ConfluentGroupConsumer(options)
    from consumers.group_kafka import KafkaGroupConsumer

    return KafkaGroupConsumer(options)
