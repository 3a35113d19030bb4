"""The worker shell's bookkeeping when a batch leaves threads for later (AMBER_WORKER_BATCH_S).

Found by review: a rebalance that gave a partition straight back let the commit
pass a thread still waiting for its step, and a thread dropped in a batch that
held no record of its partition was remembered at offset 0, so a second start
of it ran the thread again. MemoryGroup stands in for the consumer group.
"""

from __future__ import annotations

from typing import Any

from consumers.worker import Worker
from engine.checkpointer import Checkpointer
from engine.eventlog import encode_event
from engine.eventlog_memory import InMemoryEventLog
from engine.events import EventType
from engine.projection import LogProjection
from engine.service import ThreadService
from tests.engine_graphs import one_node_graph
from tests.group_double import MemoryGroup
from tests.worker_graphs import Count, slow_graph


def _types(log: InMemoryEventLog, thread: str) -> list[EventType]:
    return [d.event.type for d in log.read_thread(thread) if d.event is not None]


def test_a_rebalance_that_gives_the_partition_back_keeps_the_commit_below_a_waiting_thread(
        ) -> None:
    log = InMemoryEventLog(partitions=1)
    cp = Checkpointer(log=log, projection=LogProjection(log))
    for thread in ("a", "b"):
        ThreadService(slow_graph, cp).start(thread, {}, actor="api", mode="worker")
    member = MemoryGroup(log)
    worker = Worker(graphs={slow_graph.name: slow_graph}, cp=cp, consumer=member, group="g",
                    batch_s=0.01, commit_every_s=0.0)
    worker.run_once()  # joins the group
    worker.run_once()  # one slow node outlasts the batch: the other thread waits
    waiting = next(iter(worker.dispatcher.pending))
    member.rebalance_next = True
    worker.run_once()  # revoked and assigned again: this poll brings nothing, and it commits

    # the worker dies here; a successor starts from what was committed
    successor = Worker(graphs={slow_graph.name: slow_graph}, cp=cp, group="g",
                       consumer=MemoryGroup(log, committed=member.committed))
    for _ in range(6):
        successor.run_once()

    assert _types(log, waiting)[-1] is EventType.THREAD_COMPLETED


def test_a_second_start_of_a_thread_dropped_between_polls_is_still_rejected() -> None:
    runs: list[int] = []

    def fast(state: Count) -> dict[str, Any]:
        runs.append(state.n)
        return {"n": state.n + 1}

    fast_graph = one_node_graph(Count, "fast", "fast", fast)
    log = InMemoryEventLog(partitions=2)
    on = {p: [t for t in (f"t{i}" for i in range(50)) if log.partition_of(t) == p] for p in (0, 1)}
    slow, before, quick = on[0][0], on[1][0], on[1][1]
    lagging = _StuckProjection(log)
    cp = Checkpointer(log=log, projection=lagging, catchup_timeout_s=0.5)
    api = Checkpointer(log=log, projection=LogProjection(log))
    worker = Worker(graphs={slow_graph.name: slow_graph, fast_graph.name: fast_graph}, cp=cp,
                    consumer=MemoryGroup(log), group="g", batch_s=0.01)
    worker.run_once()  # joins
    ThreadService(fast_graph, api).start(before, {}, actor="api", mode="inline")
    ThreadService(fast_graph, api).start(quick, {}, actor="api", mode="worker")
    worker.run_once()  # quick's node
    worker.run_once()  # quick's completion: appended, not yet read back
    ThreadService(slow_graph, api).start(slow, {}, actor="api", mode="worker")
    worker.run_once()  # slow's node (read first) uses the batch up: quick's completion waits
    worker.run_once()  # quick halts and is dropped in a batch without a record of its own
    lagging.stuck_at = {1: 1}  # the projector has applied the record before quick's start
    worker._prune_forgotten(every_s=0)

    first = next(d.event for d in log.read_thread(quick) if d.event is not None)
    log.append_raw(quick, encode_event(first))  # a client's retried start
    for _ in range(3):
        worker.run_once()

    assert runs == [0]  # the node ran once: the second start was rejected
    assert _types(log, quick).count(EventType.NODE_COMPLETED) == 1


class _StuckProjection(LogProjection):
    """A projector behind at `stuck_at` (once set) for whoever looks without waiting; one
    that is waited for catches up."""

    def __init__(self, log: InMemoryEventLog) -> None:
        super().__init__(log)
        self.stuck_at: dict[int, int] = {}

    def projected_offset(self, partition: int) -> int:
        return min(super().projected_offset(partition), self.stuck_at.get(partition, 1 << 60))

    def wait_for_offset(self, partition: int, offset: int, *, timeout_s: float) -> None:
        self.stuck_at = {}
        super().wait_for_offset(partition, offset, timeout_s=timeout_s)
