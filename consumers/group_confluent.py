"""GroupConsumer on librdkafka (confluent-kafka): AMBER_KAFKA_CLIENT=confluent."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumers.group import GroupCommitError, GroupConsumer, GroupOptions, PartitionsCallback
from engine.eventlog import Delivery, Position, decode_delivery
from engine.eventlog_confluent import fetched

log = logging.getLogger("amber.kafka")


class ConfluentGroupConsumer(GroupConsumer):
    def __init__(self, options: GroupOptions) -> None:
        self._options = options
        self._consumer = Consumer({
            "bootstrap.servers": options.bootstrap, "group.id": options.group,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": options.fetch_wait_ms,
            "session.timeout.ms": options.session_timeout_ms,
            "heartbeat.interval.ms": options.heartbeat_interval_ms,
            "max.poll.interval.ms": options.max_poll_interval_ms,
            "client.id": f"amber-worker-{options.group}", "logger": log,
        })

    def subscribe(self, *, on_assign: PartitionsCallback, on_revoke: PartitionsCallback) -> None:
        def assigned(_: Any, partitions: list[TopicPartition]) -> None:
            on_assign({tp.partition for tp in partitions})

        def revoked(_: Any, partitions: list[TopicPartition]) -> None:
            on_revoke({tp.partition for tp in partitions})

        self._consumer.subscribe([self._options.topic], on_assign=assigned, on_revoke=revoked)

    def poll(self, *, timeout_ms: int) -> list[Delivery]:
        out: list[Delivery] = []
        for m in fetched(self._consumer, self._options.max_records, timeout_ms / 1000):
            error, partition, offset = m.error(), m.partition(), m.offset()
            if error is not None or partition is None or offset is None:
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra={"error": str(error)})
                continue
            out.append(decode_delivery(Position(partition, offset), m.key(), m.value() or b"",
                                       partitions=self._options.partitions))
        out.sort(key=lambda d: (d.position.partition, d.position.offset))
        return out

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self._consumer.assignment()}

    def commit(self, next_offsets: dict[int, int]) -> None:
        offsets = [TopicPartition(self._options.topic, p, o) for p, o in next_offsets.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            raise GroupCommitError(str(e)) from e

    def close(self) -> None:
        self._consumer.close()
