"""An event too big for the log is refused when sealed; a node's oversized result fails
that node, naming it and the field (invariant 7); a command appends nothing.

Kafka refuses such a record for good: before this, a worker whose node returned
one died on the append and died again on every restart (tests/contracts show that
the largest event allowed does fit the real broker).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import engine.chain as chain
from engine.checkpointer import Checkpointer
from engine.errors import EventTooLargeError
from engine.eventlog import encode_event
from engine.eventlog_memory import InMemoryEventLog
from engine.events import EventType
from engine.projection import LogProjection
from engine.sizing import MAX_EVENT_BYTES, SNAPSHOT_ROOM, estimated_bytes, text_bytes
from tests.engine_graphs import Doc, approval_graph, one_node_graph
from tests.eventbuild import appending_nothing, logged
from tests.factories import ThreadWriter
from tests.unit.test_api_support import ALICE, make_api

BIG = "x" * (MAX_EVENT_BYTES + 1)




_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
                max_size=300)


@given(_TEXT, _TEXT, _TEXT)
def test_the_estimate_never_falls_below_the_encoded_size(text: str, note: str,
                                                         payload: str) -> None:
    w = ThreadWriter("t\u00e9")
    events = [w.start(text=text), w.step(message=note), w.interrupt(payload=payload),
              w.decide(), w.fail("review"), w.complete()]
    for event in events:
        record = event.to_record()
        assert text_bytes(record) - 64 <= len(encode_event(event)) \
            <= estimated_bytes(record) - text_bytes(event.thread_id)


def test_a_node_result_over_the_limit_fails_that_node_naming_the_field(
        cp: Checkpointer) -> None:
    graph = one_node_graph(Doc, "big_result", "llm", lambda state: {"text": BIG})

    result = graph.start("t", {}, checkpointer=cp)

    assert result.status == "failed" and result.error is not None
    assert result.error.type == "StateValidationError"
    for says in ("node 'llm'", "field 'text'", "over the log's limit of 1,000,000"):
        assert says in result.error.message
    events = logged(cp, "t")
    assert [e.type for e in events] == [EventType.THREAD_STARTED, EventType.NODE_FAILED]
    assert len(encode_event(events[-1])) < 10_000


def test_a_state_grown_past_what_a_snapshot_holds_fails_the_node_that_grew_it(
        cp: Checkpointer) -> None:
    """Each event fits, but the next pause could not write the state: refused now."""
    half = MAX_EVENT_BYTES // 2
    graph = one_node_graph(Doc, "growing", "remember", lambda state: {"notes": ["n" * half]})

    result = graph.start("t", {"text": "t" * half}, checkpointer=cp)

    assert result.status == "failed" and result.error is not None
    for says in ("node 'remember'", "field 'notes'", "over the 991,808 a snapshot may hold"):
        assert says in result.error.message


def test_the_field_blamed_is_the_one_this_step_grew(cp: Checkpointer) -> None:
    graph = one_node_graph(Doc, "blame", "n", lambda state: {"notes": ["hi"],
                                                             "text": "y" * 195_000})

    result = graph.start("t", {"notes": ["n" * 800_000]}, checkpointer=cp)

    assert result.error is not None and "field 'text'" in result.error.message


def _legacy(monkeypatch: pytest.MonkeyPatch, start: Any) -> Any:
    """What `start` wrote as a release before the limit would have (Kafka took ~1 MB)."""
    checked = chain.check_size
    monkeypatch.setattr(chain, "check_size", lambda *a, **k: None)
    try:
        return start()
    finally:
        monkeypatch.setattr(chain, "check_size", checked)


def test_a_thread_whose_state_predates_the_limit_can_still_be_decided_and_fail(
        cp: Checkpointer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its decision adds nothing to the state, and its node's NodeFailed must be sealable:
    a refusal there would crash a worker on every restart."""
    graph = approval_graph(interrupt_before=["review"])
    big = "x" * (MAX_EVENT_BYTES - 5_000)
    assert _legacy(monkeypatch, lambda: graph.start("old", {"text": big}, checkpointer=cp)
                   ).status == "interrupted"

    result = graph.resume("old", {"approved": True}, actor="ann", checkpointer=cp)

    assert result.status == "failed" and result.error is not None
    assert "node 'review'" in result.error.message
    types = [e.type for e in logged(cp, "old")][-2:]
    assert types == [EventType.DECISION_RECORDED, EventType.NODE_FAILED]


def test_a_pause_whose_snapshot_would_not_fit_goes_without_it(cp: Checkpointer) -> None:
    """A thread id of kilobytes outgrows the room beside the snapshot: the thread still
    pauses, rather than failing its step forever."""
    graph = approval_graph(interrupt_before=["write"])
    thread = "t" * 3_000

    result = graph.start(thread, {"text": "x" * (MAX_EVENT_BYTES - SNAPSHOT_ROOM - 1_000)},
                         checkpointer=cp)

    assert result.status == "interrupted"
    assert logged(cp, thread)[-1].snapshot is None


def _refusal(cp: Checkpointer, call: Any) -> EventTooLargeError:
    with appending_nothing(cp), pytest.raises(EventTooLargeError) as caught:
        call()
    return caught.value


def test_commands_over_the_limit_are_refused_and_append_nothing(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    assert graph.start("w", {}, checkpointer=cp).status == "interrupted"

    started = _refusal(cp, lambda: graph.start("s", {"text": BIG}, checkpointer=cp))
    decided = _refusal(cp, lambda: graph.resume("w", {"why": BIG}, actor="ann",
                                                checkpointer=cp))
    edited = _refusal(cp, lambda: graph.update_state("w", {"text": BIG}, as_node="write",
                                                     checkpointer=cp))

    assert (started.part, started.field) == ("delta", "text")
    assert "DecisionRecorded of thread 'w'" in str(decided)
    assert edited.field == "text" and edited.size > edited.limit == MAX_EVENT_BYTES
    assert cp.projection.require("w").status == "interrupted"


def test_the_api_answers_413_and_appends_nothing() -> None:
    api = make_api()
    api.waiting("w")
    before = api.ends()

    r = api.decide("w", {"value": {"why": BIG}})
    started = api.client.post("/threads", json={"graph": "doc_approval", "input": {"text": BIG}},
                              headers=ALICE)

    for answer in (r, started):
        assert answer.status_code == 413, answer.json()
        assert answer.json()["error"]["code"] == "event_too_large"
    assert api.ends() == before


def test_a_periodic_snapshot_that_would_not_fit_is_left_out_not_the_result() -> None:
    """Whether a result fits must not depend on whether its seq falls on a snapshot."""
    log = InMemoryEventLog(partitions=2)
    cp = Checkpointer(log=log, projection=LogProjection(log), snapshot_every=1)
    third = MAX_EVENT_BYTES * 2 // 5
    graph = one_node_graph(Doc, "periodic", "remember", lambda state: {"notes": ["n" * third]})

    result = graph.start("t", {"text": "t" * third}, checkpointer=cp)

    assert result.status == "completed"
    _started, remembered, completed = logged(cp, "t")
    assert remembered.type is EventType.NODE_COMPLETED and remembered.snapshot is None
    assert completed.snapshot is not None  # a required one is always written
    assert cp.projection.get_state("t", 1)["notes"] == ["n" * third]
