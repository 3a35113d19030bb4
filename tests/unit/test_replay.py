"""engine/replay.py: today's routing, asked at every recorded decision of a thread."""

from __future__ import annotations

import pytest

from engine.checkpointer import Checkpointer
from engine.eventlog_memory import InMemoryEventLog
from engine.events import Event
from engine.graph import END, START, Graph
from engine.projection import LogProjection
from engine.replay import replay_routes
from tests.engine_graphs import Doc, approval_graph, write


@pytest.fixture
def events() -> list[Event]:
    """An approval thread run to completion: start, write, [interrupt], review, publish."""
    log = InMemoryEventLog(partitions=1)
    cp = Checkpointer(log=log, projection=LogProjection(log))
    app = approval_graph(interrupt_before=["review"], checkpointer=cp)
    app.start("t", {"text": "draft"})
    app.resume("t", {"approved": True}, actor="alice")
    return [d.event for d in log.read_thread("t") if d.event is not None]


def test_the_same_graph_routes_every_step_as_recorded(events: list[Event]) -> None:
    checks = replay_routes(approval_graph(), events)

    assert [(c.seq, c.node, c.recorded) for c in checks] == [
        (0, None, "write"), (1, "write", "review"), (4, "review", "publish"),
        (5, "publish", END)]
    assert all(c.same for c in checks)


def test_a_changed_router_is_found_where_it_decides_differently(events: list[Event]) -> None:
    checks = replay_routes(approval_graph(publishes=False), events)

    assert [(c.seq, c.recorded, c.today) for c in checks if not c.same] == [
        (4, "publish", END)]


def test_a_node_gone_from_todays_graph_is_named(events: list[Event]) -> None:
    g = Graph(Doc, name="doc_approval")
    g.add_node("compose", write)
    g.add_edge(START, "compose")
    g.add_edge("compose", END)

    checks = replay_routes(g.compile(), events)

    assert checks[0].today == "compose" and not checks[0].same
    assert checks[1].today == "error: no node 'write' in today's graph"


def test_replay_can_start_at_any_checkpoint(events: list[Event]) -> None:
    assert [c.seq for c in replay_routes(approval_graph(), events, from_seq=2)] == [4, 5]
