"""The worker's dispatcher on the in-memory log: same events as the inline runner."""

from __future__ import annotations

from engine.acceptance import accepted_history
from engine.checkpointer import Checkpointer
from engine.dispatch import Dispatcher
from engine.eventlog_memory import InMemoryEventLog
from engine.events import EventType
from engine.projection import LogProjection
from engine.service import ThreadService
from tests.engine_graphs import approval_graph
from tests.eventbuild import logged


def _cp() -> Checkpointer:
    log = InMemoryEventLog(partitions=2)
    return Checkpointer(log=log, projection=LogProjection(log))


def _pump(cp: Checkpointer, d: Dispatcher, start: dict[int, int]) -> int:
    """Feed new log records to the dispatcher and append its steps until quiet."""
    steps = 0
    while True:
        ends = cp.log.end_offsets()
        for p, end in ends.items():
            for delivery in cp.log.read(p, start.get(p, 0), end):
                if delivery.event is not None and d.serves(delivery.event):
                    d.observe(delivery.event)
            start[p] = end
        events = d.step_all()
        if not events:
            return steps
        cp.log.append(events)
        d.appended(events)
        steps += len(events)



def test_worker_runs_worker_threads_to_the_interrupt_and_after_the_decision() -> None:
    cp = _cp()
    graph = approval_graph(interrupt_before=["review"])
    service = ThreadService(graph, cp)
    for i in range(5):
        service.start(f"w{i}", {"text": str(i)}, actor="api", mode="worker")
    d = Dispatcher({graph.name: graph}, clock=cp.clock, snapshot_every=50)
    offsets: dict[int, int] = {}
    assert _pump(cp, d, offsets) == 10  # write + Interrupted, for each thread
    assert all(cp.projection.require(f"w{i}").status == "interrupted" for i in range(5))
    for i in range(5):
        service.decide(f"w{i}", {"approved": i % 2 == 0}, actor="alice")
    _pump(cp, d, offsets)
    for i in range(5):
        view = cp.projection.require(f"w{i}")
        assert view.status == "completed"
        assert ("published" in view.state["notes"]) == (i % 2 == 0)
        history = accepted_history(logged(cp, f"w{i}"))
        assert not history.rejected
        assert [e.seq for e in history.accepted] == list(range(len(history.accepted)))


def test_inline_threads_and_foreign_graphs_are_left_alone() -> None:
    cp = _cp()
    graph = approval_graph(interrupt_before=["review"])
    ThreadService(graph, cp).start("inline", {}, actor=None, mode="inline")
    other = Dispatcher({"some_other_graph": graph}, clock=cp.clock, snapshot_every=50)
    mine = Dispatcher({graph.name: graph}, clock=cp.clock, snapshot_every=50)
    assert _pump(cp, mine, {}) == 0
    assert _pump(cp, other, {}) == 0
    assert other.foreign[graph.name] == 1


def test_duplicate_and_racing_events_never_advance_a_thread_twice() -> None:
    cp = _cp()
    graph = approval_graph(interrupt_before=["review"])
    ThreadService(graph, cp).start("t", {}, actor=None, mode="worker")
    a = Dispatcher({graph.name: graph}, clock=cp.clock, snapshot_every=50)
    b = Dispatcher({graph.name: graph}, clock=lambda: 42, snapshot_every=50)
    for d in (a, b):  # a zombie and the new owner both see the start
        for x in cp.log.read_thread("t"):
            assert x.event is not None
            d.observe(x.event)
    cp.log.append(a.step_all() + b.step_all())  # both produce seq 1: one must lose
    history = accepted_history(logged(cp, "t"))
    assert [e.seq for e in history.accepted] == [0, 1]
    assert len(history.rejected) == 1 and history.accepted[1].type is EventType.NODE_COMPLETED


def test_a_step_all_that_runs_out_of_time_leaves_the_rest_pending_in_log_order() -> None:
    cp = _cp()
    graph = approval_graph(interrupt_before=["review"])
    service = ThreadService(graph, cp)
    threads = [f"late-{i}" for i in range(4)]
    for t in threads:
        service.start(t, {"text": t}, actor="api", mode="worker")
    d = Dispatcher({graph.name: graph}, clock=cp.clock, snapshot_every=50)
    for p in range(cp.log.partitions):
        for delivery in cp.log.read(p):
            assert delivery.event is not None
            d.observe(delivery.event)
    order = list(d.pending)

    first = d.step_all(until=0.0)  # out of time at once: one thread still gets its step

    assert [e.thread_id for e in first] == order[:1] and list(d.pending) == order[1:]
    assert d.forget_halted() == [] and set(d.threads) == set(threads)  # none dropped
    rest = d.step_all()
    assert [e.thread_id for e in rest] == order[1:] and not d.pending
    assert all(e.type is EventType.NODE_COMPLETED for e in first + rest)
