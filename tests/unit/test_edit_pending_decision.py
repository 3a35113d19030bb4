"""An edit made after a decision, before the node it answers has run (workers down, or a
runner that died in between), must not lose that decision: the node runs with it."""

from __future__ import annotations

from engine.checkpointer import Checkpointer
from engine.service import ThreadService
from tests.engine_graphs import approval_graph, asking_graph
from tests.unit.test_api_support import drive


def test_a_static_gates_decision_survives_an_edit_before_its_node_runs(
        cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    service = ThreadService(graph, cp)
    service.start("t", {}, actor="api", mode="worker")
    drive(cp, [graph])
    service.decide("t", {"approved": True}, actor="ann")

    service.edit("t", {"count": 5}, as_node=None, actor="ops", reason="fix the count")
    drive(cp, [graph])

    view = cp.projection.require("t")
    assert view.status == "completed" and view.state["approved"] is True
    assert view.state["count"] == 5 and view.state["notes"][-1] == "published"


def test_a_dynamic_answer_survives_an_edit_before_its_node_runs_again(
        cp: Checkpointer) -> None:
    graph = asking_graph()
    service = ThreadService(graph, cp)
    service.start("t", {}, actor="api", mode="worker")
    drive(cp, [graph])
    service.decide("t", "Report", actor="ann")

    service.edit("t", {"count": 5}, as_node=None, actor="ops", reason=None)
    drive(cp, [graph])
    service.decide("t", "yes", actor="ann")
    drive(cp, [graph])

    view = cp.projection.require("t")
    assert view.status == "completed" and view.state["text"] == "Report/yes"
