"""A node whose result the log cannot hold fails that step, in the log; nothing crashes.

Invariant 7 (loud serialization) and 8 (bad input never stops the pipeline): a
worker that raised here would replay the same step after every restart and hold
every thread of its partitions behind it.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from pydantic import BaseModel

from engine.checkpointer import Checkpointer
from engine.context import NodeContext
from engine.dispatch import Dispatcher
from engine.events import Event, EventType
from engine.service import ThreadService
from engine.sizing import MAX_EVENT_BYTES
from tests.engine_graphs import Doc, one_node_graph

_NOT_JSON = {"at": datetime.datetime(2026, 1, 1)}


def _records_through_the_api(state: Doc, ctx: NodeContext) -> dict[str, Any]:
    ctx.record_io("llm", {"prompt": state.text}, _NOT_JSON)
    return {"text": "answered"}


def _records_behind_its_back(state: Doc, ctx: NodeContext) -> dict[str, Any]:
    ctx.recorded_io.append({"kind": "llm", "request": None, "response": _NOT_JSON})
    return {"text": "answered"}


def _too_big(state: Doc) -> dict[str, Any]:
    return {"text": "x" * (MAX_EVENT_BYTES + 1)}  # Kafka would refuse it for good


def _graph(node: Any, name: str = "io_graph") -> Any:
    return one_node_graph(Doc, name, "llm", node)



def _failure(cp: Checkpointer, thread: str) -> Event:
    events = [d.event for d in cp.log.read_thread(thread) if d.event is not None]
    assert [e.type for e in events] == [EventType.THREAD_STARTED, EventType.NODE_FAILED]
    return events[-1]


@pytest.mark.parametrize(("node", "says"), [
    (_records_through_the_api, "field 'io': recorded 'llm' call is not JSON"),
    (_records_behind_its_back, "its result cannot be stored"),
    (_too_big, "field 'text': its result cannot be stored"),
])
def test_inline_the_step_fails_naming_the_node(cp: Checkpointer, node: Any, says: str) -> None:
    result = _graph(node).start("t", {"text": "hi"}, checkpointer=cp)

    assert result.status == "failed" and result.error is not None
    assert result.error.type == "StateValidationError"
    assert "node 'llm'" in result.error.message and says in result.error.message
    assert _failure(cp, "t").node == "llm"


@pytest.mark.parametrize("node", [_records_through_the_api, _records_behind_its_back, _too_big])
def test_a_worker_fails_that_step_and_steps_the_other_threads(cp: Checkpointer,
                                                              node: Any) -> None:
    bad, fine = _graph(node), _graph(lambda state: {"text": "ok"}, name="fine_graph")
    ThreadService(bad, cp).start("bad", {}, actor="api", mode="worker")
    ThreadService(fine, cp).start("fine", {}, actor="api", mode="worker")
    d = Dispatcher({bad.name: bad, fine.name: fine}, clock=cp.clock, snapshot_every=50)
    for p in range(cp.log.partitions):
        for delivery in cp.log.read(p):
            assert delivery.event is not None
            d.observe(delivery.event)

    events = d.step_all()  # raised before: the worker died, and died again on restart

    assert sorted((e.thread_id, e.type) for e in events) == [
        ("bad", EventType.NODE_FAILED), ("fine", EventType.NODE_COMPLETED)]
    cp.log.append(events)
    assert cp.projection.require("bad").status == "failed"
    assert "node 'llm'" in _failure(cp, "bad").error.message  # type: ignore[union-attr]


class Loose(BaseModel):
    meta: dict[str, Any] = {}
    n: int = 0


def _changing(returns: bool) -> Any:
    def node(state: Loose) -> dict[str, Any]:
        state.meta["inner"]["x"] = 99  # in place, under Any: pydantic shares these values
        return {"meta": state.meta} if returns else {"n": 1}
    return node


def test_a_change_made_in_place_and_not_returned_fails_the_node_naming_it(
        cp: Checkpointer) -> None:
    """Before, the runner went on with x=99 while the log said x=1: every reader flagged
    the thread with a state_hash mismatch, and the change was in no event."""
    graph = one_node_graph(Loose, "in_place", "mutate", _changing(returns=False))

    result = graph.start("t", {"meta": {"inner": {"x": 1}}}, checkpointer=cp)

    assert result.status == "failed" and result.error is not None
    for says in ("node 'mutate'", "field 'meta'", "changed in place but not returned"):
        assert says in result.error.message
    view = cp.projection.get_thread("t")
    assert view is not None and view.integrity_error is None
    assert view.state["meta"] == {"inner": {"x": 1}}


def test_a_change_made_in_place_and_returned_is_the_update(cp: Checkpointer) -> None:
    graph = one_node_graph(Loose, "in_place_returned", "mutate", _changing(returns=True))

    result = graph.start("t", {"meta": {"inner": {"x": 1}}}, checkpointer=cp)

    assert result.status == "completed" and result.state["meta"] == {"inner": {"x": 99}}
    view = cp.projection.get_thread("t")
    assert view is not None and view.integrity_error is None and view.state == result.state
