"""A consumer group of one over an InMemoryEventLog, for unit tests of the worker shell.

It owns every partition, keeps what was committed, and rebalances when told to
(revoke all, then assign them again from the committed offsets, as Kafka's
eager protocol does). tests/integration/test_group_consumer.py holds it to the
GroupConsumer contract beside the two Kafka adapters.
"""

from __future__ import annotations

from consumers.group import GroupConsumer, PartitionsCallback
from engine.eventlog import Delivery
from engine.eventlog_memory import InMemoryEventLog


class MemoryGroup(GroupConsumer):
    def __init__(self, log: InMemoryEventLog, committed: dict[int, int] | None = None) -> None:
        self.log = log
        self.committed = {} if committed is None else committed  # shared by a group's members
        self.rebalance_next = False
        self._positions: dict[int, int] | None = None
        self._on_assign: PartitionsCallback = lambda _: None
        self._on_revoke: PartitionsCallback = lambda _: None

    def subscribe(self, *, on_assign: PartitionsCallback, on_revoke: PartitionsCallback) -> None:
        self._on_assign, self._on_revoke = on_assign, on_revoke

    def poll(self, *, timeout_ms: int) -> list[Delivery]:
        if self._positions is None or self.rebalance_next:
            self._rebalance()
            return []
        out: list[Delivery] = []
        for p, at in self._positions.items():
            out += self.log.read(p, at, self.log.end_offset(p))
            self._positions[p] = self.log.end_offset(p)
        return out

    def _rebalance(self) -> None:
        if self._positions is not None:
            self._on_revoke(set(self._positions))
        self.rebalance_next = False
        self._positions = {p: self.committed.get(p, 0) for p in range(self.log.partitions)}
        self._on_assign(set(self._positions))

    def assignment(self) -> set[int]:
        return set(self._positions or ())

    def commit(self, next_offsets: dict[int, int]) -> None:
        self.committed.update(next_offsets)

    def close(self) -> None:
        self._positions = None
