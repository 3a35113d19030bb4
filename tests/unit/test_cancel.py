"""Cancel: a withdrawn request stops its thread for good, with who and why in the log.

The engine (runner, workers) and the HTTP API on the in-memory log; the CLI is the
same ThreadService call (consumers/cli_engine.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.checkpointer import Checkpointer
from engine.dispatch import Dispatcher
from engine.errors import (
    ForkError,
    ThreadEndedError,
    ThreadNotWaitingError,
    ThreadRunningInlineError,
)
from engine.events import EventType
from engine.projection import ThreadNotFoundError
from engine.service import ThreadService
from tests.engine_graphs import approval_graph, asking_graph
from tests.eventbuild import appending_nothing, logged
from tests.unit.test_api_support import ALICE, BOB, Api, make_api


def test_a_cancelled_question_is_closed_and_can_no_longer_be_answered(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    asked = graph.start("t", {}, checkpointer=cp).interrupt
    assert asked is not None

    result = graph.cancel("t", actor="ops", reason="request withdrawn", checkpointer=cp)

    assert result.status == "cancelled" and result.interrupt is None
    last = logged(cp, "t")[-1]
    assert (last.type, last.actor, last.reason, last.causation_id) == \
        (EventType.THREAD_CANCELLED, "ops", "request withdrawn", asked["id"])
    assert cp.projection.open_interrupts() == []
    with pytest.raises(ThreadNotWaitingError):
        graph.resume("t", {"approved": True}, actor="ann", checkpointer=cp)
    with pytest.raises(ForkError):
        graph.fork("t", last.seq, "t-fork", checkpointer=cp)


def test_a_repeat_is_a_no_op_and_an_ended_thread_is_refused(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    graph.start("t", {}, checkpointer=cp)
    graph.cancel("t", actor="ops", checkpointer=cp)
    graph.start("done", {}, checkpointer=cp)
    graph.resume("done", {"approved": True}, actor="ann", checkpointer=cp)
    ends = cp.log.end_offsets()

    again = graph.cancel("t", actor="ops", checkpointer=cp)
    with pytest.raises(ThreadEndedError, match="already cancelled"):
        graph.cancel("t", actor="someone else", checkpointer=cp)
    with pytest.raises(ThreadEndedError, match="already completed"):
        graph.cancel("done", actor="ops", checkpointer=cp)
    with pytest.raises(ThreadNotFoundError):
        graph.cancel("nobody", actor="ops", checkpointer=cp)

    assert again.status == "cancelled" and cp.log.end_offsets() == ends


def test_workers_do_not_run_a_cancelled_thread(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    service = ThreadService(graph, cp)
    service.start("w", {}, actor="api", mode="worker")
    service.cancel("w", actor="ops", reason=None)
    dispatcher = Dispatcher({graph.name: graph}, clock=cp.clock, snapshot_every=50)
    for delivery in cp.log.read_thread("w"):
        assert delivery.event is not None
        dispatcher.observe(delivery.event)

    assert dispatcher.step_all() == []
    assert cp.projection.require("w").status == "cancelled"


def _cancel(api: Api, thread: str, body: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Any:
    return api.client.post(f"/threads/{thread}/cancel", json=body or {},
                           headers=headers or ALICE)


def test_the_api_cancels_once_and_refuses_what_ended() -> None:
    api = make_api()
    interrupt_id = api.waiting("w")
    api.waiting("done")
    api.decide("done", {"value": {"approved": False}})
    api.drive()

    first = _cancel(api, "w", {"reason": "duplicate request"})
    before = api.ends()
    again = _cancel(api, "w", {"reason": "duplicate request"})
    by_bob = _cancel(api, "w", headers=BOB)
    ended = _cancel(api, "done")
    unknown = _cancel(api, "nobody")

    assert first.status_code == 202, first.json()
    assert first.json() == {"thread_id": "w", "seq": 3, "interrupt_id": interrupt_id,
                            "actor": "alice", "status": "cancelled"}
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert [(r.status_code, r.json()["error"]["code"]) for r in (by_bob, ended, unknown)] == \
        [(409, "thread_ended"), (409, "thread_ended"), (404, "thread_not_found")]
    assert api.ends() == before
    assert api.drive() == 0 and api.cp.projection.require("w").status == "cancelled"


def test_a_thread_running_inline_is_not_cancelled_under_its_runner(cp: Checkpointer) -> None:
    """Its runner confirms only a run's first append: it would go on past the cancel."""
    graph = approval_graph(interrupt_before=["review"])
    ThreadService(graph, cp).start("t", {}, actor=None, mode="inline")  # its runner died here
    with appending_nothing(cp), pytest.raises(ThreadRunningInlineError):
        graph.cancel("t", actor="ops", checkpointer=cp)


def test_an_identical_cancel_that_wins_the_race_is_this_ones_answer(
        cp: Checkpointer, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = approval_graph(interrupt_before=["review"])
    graph.start("t", {}, checkpointer=cp)
    service = ThreadService(graph, cp)
    appended, raced = service.append_confirmed, []

    def racing(cursor: Any, draft: Any, **kw: Any) -> Any:
        if not raced:  # the same request, sent twice, lands first from elsewhere
            raced.append(ThreadService(graph, cp).cancel("t", actor="ops", reason=None))
        return appended(cursor, draft, **kw)

    monkeypatch.setattr(service, "append_confirmed", racing)

    recorded = service.cancel("t", actor="ops", reason=None)

    assert recorded.repeated
    cancels = [e for e in logged(cp, "t") if e.type is EventType.THREAD_CANCELLED]
    assert len(cancels) == 2  # both in the log; the acceptance rule takes the first
    assert cp.projection.require("t").head.hash == cancels[0].hash


def test_an_answer_after_a_cancel_is_refused_not_taken_for_a_repeat(cp: Checkpointer) -> None:
    graph = asking_graph()
    graph.start("t", {}, checkpointer=cp)
    graph.resume("t", "yes", actor="ann", checkpointer=cp)  # the second question is open
    graph.cancel("t", actor="ops", checkpointer=cp)

    with pytest.raises(ThreadNotWaitingError):
        graph.resume("t", "yes", actor="ann", checkpointer=cp)
