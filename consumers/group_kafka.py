"""GroupConsumer on kafka-python."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumers.group import GroupCommitError, GroupConsumer, GroupOptions, PartitionsCallback
from engine.eventlog import Delivery
from engine.eventlog_kafka import deliveries


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_assign: PartitionsCallback, on_revoke: PartitionsCallback) -> None:
        self._on_assign, self._on_revoke = on_assign, on_revoke

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._on_revoke({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._on_assign({tp.partition for tp in assigned})


class KafkaGroupConsumer(GroupConsumer):
    def __init__(self, options: GroupOptions) -> None:
        self._options = options
        self._consumer = KafkaConsumer(
            bootstrap_servers=options.bootstrap, group_id=options.group,
            enable_auto_commit=False, auto_offset_reset="earliest", metrics_enabled=False,
            fetch_max_wait_ms=options.fetch_wait_ms, max_poll_records=options.max_records,
            session_timeout_ms=options.session_timeout_ms,
            heartbeat_interval_ms=options.heartbeat_interval_ms,
            max_poll_interval_ms=options.max_poll_interval_ms,
            client_id=f"amber-worker-{options.group}")

    def subscribe(self, *, on_assign: PartitionsCallback, on_revoke: PartitionsCallback) -> None:
        self._consumer.subscribe([self._options.topic], listener=_Listener(on_assign, on_revoke))

    def poll(self, *, timeout_ms: int) -> list[Delivery]:
        return deliveries(self._consumer.poll(timeout_ms=timeout_ms,
                                              max_records=self._options.max_records),
                          partitions=self._options.partitions)

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self._consumer.assignment()}

    def commit(self, next_offsets: dict[int, int]) -> None:
        offsets = {TopicPartition(self._options.topic, p): OffsetAndMetadata(o, "", -1)
                   for p, o in next_offsets.items()}
        try:
            self._consumer.commit(offsets)
        except KafkaError as e:
            raise GroupCommitError(repr(e)) from e

    def close(self) -> None:
        self._consumer.close()
