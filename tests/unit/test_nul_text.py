"""No event's text holds a NUL: no reader accepts one, no writer seals one.

PostgreSQL text cannot hold NUL and an event's hash covers its exact text, so
the projection could keep such an event only altered. Every reader therefore
takes it for a dead letter, the projector as much as the log's own fold.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from engine.checkpointer import Checkpointer
from engine.errors import GraphDefinitionError, UnstorableTextError
from engine.eventlog import Position, decode_delivery, encode_event
from engine.eventlog_memory import InMemoryEventLog
from engine.events import ErrorInfo, EventType
from engine.graph import END, START, Graph
from engine.projection import LogFold, LogProjection
from projector.batch import fold_batch
from tests.engine_graphs import approval_graph
from tests.factories import ThreadWriter, resealed, rival


@pytest.mark.parametrize(("changes", "field"), [
    ({"actor": "eve\x00"}, "actor"),
    ({"node": "a\x00b"}, "node"),
    ({"error": ErrorInfo(type="E", message="bin\x00ary", retryable=False, attempts=1)},
     "error.message"),
])
def test_an_event_with_nul_text_does_not_decode_and_the_field_is_named(
        changes: dict[str, Any], field: str) -> None:
    w = ThreadWriter("t")
    w.start()
    bad = resealed(rival(w), **changes)

    d = decode_delivery(Position(0, 9), b"t", encode_event(bad), partitions=1)

    assert d.event is None and d.error is not None
    assert f"{field!r} holds a NUL character" in str(d.error)


def test_the_logs_fold_and_the_projector_both_take_it_for_a_dead_letter() -> None:
    w = ThreadWriter("t")
    w.start()
    bad = resealed(rival(w), actor="eve\x00")
    w.step()  # the rightful seq 1, after the bad one
    records = [w.events[0], bad, w.events[1]]
    deliveries = [decode_delivery(Position(0, i), b"t", encode_event(e), partitions=1)
                  for i, e in enumerate(records)]

    folded, projected = LogFold().add_all(deliveries), fold_batch(deliveries, lambda _t: None)

    assert folded.views["t"] == projected.views["t"] and folded.views["t"].head.seq == 1
    assert folded.dead_letters == [d.position for d in projected.dead_letters] == [Position(0, 1)]


def test_a_decision_whose_actor_holds_nul_is_refused_and_appends_nothing() -> None:
    log = InMemoryEventLog(partitions=1)
    cp = Checkpointer(log=log, projection=LogProjection(log))
    app = approval_graph(interrupt_before=["review"], checkpointer=cp)
    app.start("t", {})
    before = log.end_offsets()

    with pytest.raises(UnstorableTextError, match="'actor'"):
        app.resume("t", {"approved": True}, actor="eve\x00")
    with pytest.raises(UnstorableTextError, match="'reason'"):
        app.resume("t", {"approved": True}, actor="eve", reason="x\x00")
    assert log.end_offsets() == before
    assert app.resume("t", {"approved": True}, actor="eve").status == "completed"


class _S(BaseModel):
    n: int = 0


def _raises_nul(state: _S) -> dict[str, Any]:
    raise ValueError("bytes b'\x00' in the reply")


def test_a_node_failing_with_nul_in_its_message_is_recorded_failed() -> None:
    log = InMemoryEventLog(partitions=1)
    g = Graph(_S, name="nul_failure")
    g.add_node("boom", _raises_nul)
    g.add_edge(START, "boom")
    g.add_edge("boom", END)

    res = g.compile().start("t", {}, checkpointer=Checkpointer(log=log,
                                                                projection=LogProjection(log)))

    assert res.status == "failed" and res.error is not None
    assert res.error.message == "bytes b'\\x00' in the reply"
    [failed] = [d.event for d in log.read(0) if d.event and d.event.type is
                EventType.NODE_FAILED]
    assert failed.error == res.error


def test_a_graph_or_node_name_with_nul_is_refused_when_the_graph_is_built() -> None:
    with pytest.raises(GraphDefinitionError, match=r"node name .* NUL"):
        Graph(_S).add_node("a\x00b", _raises_nul)
    with pytest.raises(GraphDefinitionError, match=r"graph name .* NUL"):
        Graph(_S, name="g\x00")


def test_the_api_answers_it_as_invalid_input_should_one_slip_past_its_models() -> None:
    from consumers.api_errors import classify

    assert classify(UnstorableTextError("field 'reason' holds a NUL")) == (422, "invalid_input")


def test_a_thread_id_with_nul_is_refused_before_anything_is_read_or_appended() -> None:
    log = InMemoryEventLog(partitions=1)
    app = approval_graph(interrupt_before=["review"],
                         checkpointer=Checkpointer(log=log, projection=LogProjection(log)))
    for call in (lambda: app.start("t\x00", {}), lambda: app.get_state("t\x00"),
                 lambda: app.resume("t\x00", {"approved": True}, actor="a")):
        with pytest.raises(UnstorableTextError, match="thread id"):
            call()
    assert log.end_offsets() == {0: 0}
