"""Edits that would change a step already under way are refused; edits as a node move the
thread on and close the open question; a decision's retry is known through edits.

An edit without as_node becomes the thread's head. Where the next step depends on
the head itself (a decision on its way to its node, a pause due after a node, a
fork's first step), the edit would drop that: the gate would ask again, or be
passed without a pause. Such an edit is refused (ThreadBusyError, 409 thread_busy);
it is taken once the step has run.
"""

from __future__ import annotations

import pytest

from engine.checkpointer import Checkpointer
from engine.dispatch import Dispatcher
from engine.errors import ThreadBusyError, ThreadNotWaitingError
from engine.events import EventType
from engine.graph import CompiledGraph
from engine.service import ThreadService
from tests.engine_graphs import approval_graph, asking_graph
from tests.eventbuild import appending_nothing, logged
from tests.unit.test_api_support import drive, make_api


def _one_worker_step(cp: Checkpointer, graph: CompiledGraph) -> None:
    served = {graph.name: graph}
    dispatcher = Dispatcher(served, clock=cp.clock, snapshot_every=cp.snapshot_every)
    for partition in range(cp.log.partitions):
        for delivery in cp.log.read(partition):
            assert delivery.event is not None
            dispatcher.observe(delivery.event)
    cp.log.append(dispatcher.step_all())


def _refused_edit(cp: Checkpointer, service: ThreadService) -> None:
    with appending_nothing(cp), pytest.raises(ThreadBusyError, match="step under way"):
        service.edit("t", {"count": 5}, as_node=None, actor="ops", reason=None)


def test_an_edit_between_a_decision_and_its_node_is_refused_and_the_decision_runs(
        cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    service = ThreadService(graph, cp)
    service.start("t", {}, actor="api", mode="worker")
    drive(cp, [graph])
    service.decide("t", {"approved": True}, actor="ann")  # the workers are down

    _refused_edit(cp, service)
    drive(cp, [graph])

    view = cp.projection.require("t")
    assert view.status == "completed" and view.state["notes"][-1] == "published"


def test_an_edit_between_a_node_and_the_pause_after_it_is_refused(cp: Checkpointer) -> None:
    """Taken, it would have been the head, and the thread would have gone on unpaused."""
    graph = approval_graph(interrupt_after=["write"])
    service = ThreadService(graph, cp)
    service.start("t", {}, actor="api", mode="worker")
    _one_worker_step(cp, graph)  # write ran; the worker died before the pause

    _refused_edit(cp, service)
    drive(cp, [graph])

    assert cp.projection.require("t").status == "interrupted"


def test_an_edit_of_a_fork_whose_first_step_carries_a_decision_is_refused(
        cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    graph.start("s", {}, checkpointer=cp)
    graph.resume("s", {"approved": True}, actor="ann", checkpointer=cp)
    decided = next(e for e in logged(cp, "s") if e.type is EventType.DECISION_RECORDED)
    service = ThreadService(graph, cp)
    service.fork(logged(cp, "s")[:decided.seq + 1], "t", actor=None, reason=None,
                 mode="worker")

    _refused_edit(cp, service)


def test_edits_that_keep_the_course_are_taken(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    service = ThreadService(graph, cp)
    service.start("t", {}, actor="api", mode="worker")  # write is next: no gate before it
    service.edit("t", {"count": 1}, as_node=None, actor="ops", reason=None)
    drive(cp, [graph])  # now waiting at review
    service.edit("t", {"count": 2}, as_node=None, actor="ops", reason=None)

    view = cp.projection.require("t")
    assert view.status == "interrupted" and view.state["count"] == 2


def test_an_edit_as_another_node_while_waiting_closes_the_question(cp: Checkpointer) -> None:
    """It moves the thread on: a decision must not be taken for a question nobody asks."""
    graph = approval_graph(interrupt_before=["review"])
    service = ThreadService(graph, cp)
    service.start("t", {}, actor="api", mode="worker")
    drive(cp, [graph])

    service.edit("t", {"count": 5}, as_node="publish", actor="ops", reason="skip review")

    assert cp.projection.require("t").status == "running"
    assert cp.projection.open_interrupts() == []
    with pytest.raises(ThreadNotWaitingError):
        service.decide("t", {"approved": True}, actor="ann")


def test_a_decisions_retry_is_recognised_through_an_edit_made_while_it_waited() -> None:
    api = make_api()
    first_question = api.waiting("w", "asking")
    ThreadService(asking_graph(), api.cp).edit("w", {"count": 5}, as_node=None, actor="ops",
                                                 reason=None)
    body = {"value": "Report", "interrupt_id": first_question}
    first = api.decide("w", body)
    api.drive()  # the second question is open now

    again = api.decide("w", body)

    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
