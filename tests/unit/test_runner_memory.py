"""The inline runner's semantics on the in-memory log (same code as on Kafka)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from engine.acceptance import accepted_history
from engine.chain import hash_is_valid
from engine.checkpointer import Checkpointer
from engine.delta import fold
from engine.errors import (
    ConflictError,
    InvalidDecisionError,
    StaleInterruptError,
    ThreadExistsError,
    ThreadNotWaitingError,
)
from engine.eventlog_memory import InMemoryEventLog
from engine.events import EventType
from engine.projection import CatchUpTimeoutError, LogProjection
from tests.engine_graphs import Flaky, approval_graph, asking_graph, flaky_graph


@pytest.fixture
def cp() -> Checkpointer:
    log = InMemoryEventLog(partitions=4)
    clock = iter(range(1_000_000, 10_000_000, 1000))
    return Checkpointer(log=log, projection=LogProjection(log), clock=lambda: next(clock),
                        snapshot_every=3)


def _types(cp: Checkpointer, thread: str) -> list[str]:
    return [str(d.event.type) for d in cp.log.read_thread(thread) if d.event]


def test_static_interrupt_then_resume_completes(cp: Checkpointer) -> None:
    app = approval_graph(interrupt_before=["review"], checkpointer=cp)
    first = app.start("t", {"text": "hello"})
    assert first.status == "interrupted"
    assert first.interrupt is not None and first.interrupt["node"] == "review"
    assert first.state["text"] == "hello!"
    done = app.resume("t", {"approved": True}, actor="alice")
    assert done.status == "completed"
    assert done.state["notes"] == ["t:1:write", "reviewed", "published"]
    assert _types(cp, "t") == ["ThreadStarted", "NodeCompleted", "Interrupted",
                               "DecisionRecorded", "NodeCompleted", "NodeCompleted",
                               "ThreadCompleted"]
    decision = [d.event for d in cp.log.read_thread("t") if d.event][3]
    assert decision.actor == "alice" and decision.causation_id == first.interrupt["id"]


def test_rejected_path_ends_without_publishing(cp: Checkpointer) -> None:
    app = approval_graph(interrupt_before=["review"], checkpointer=cp)
    app.start("t", {})
    done = app.resume("t", {"approved": False}, actor="bob")
    assert done.status == "completed" and "published" not in done.state["notes"]


def test_history_is_a_valid_chain_with_snapshots(cp: Checkpointer) -> None:
    app = approval_graph(interrupt_before=["review"], checkpointer=cp)
    app.start("t", {})
    app.resume("t", {"approved": True}, actor="a")
    events = [d.event for d in cp.log.read_thread("t") if d.event]
    history = accepted_history(events)
    assert not history.rejected and all(hash_is_valid(e) for e in events)
    snapshotted = {e.seq for e in events if e.snapshot is not None}
    assert {2, 3, 6} <= snapshotted  # interrupt, every 3rd, completion
    # ThreadStarted sets every field: its delta is the whole state, stored once
    assert 0 not in snapshotted
    assert fold({}, events[0].ops()) == cp.projection.get_state("t", 0)
    assert set(cp.projection.get_state("t", 0)) == set(cp.projection.get_state("t"))


def test_runner_view_is_what_every_reader_folds_from_the_log(cp: Checkpointer) -> None:
    # The runner takes the state it sealed an event from as the state after it;
    # a reader folds the delta and checks the state hash. They must agree.
    app = approval_graph(interrupt_before=["review"], checkpointer=cp)
    runs = [app.start("t", {"text": "é"}), app.resume("t", {"approved": True}, actor="a")]
    for run in runs:
        folded = cp.projection.get_state("t", run.seq)
        assert folded == run.state
    view = cp.projection.get_thread("t")
    assert view is not None and view.integrity_error is None
    assert view.head.seq == runs[-1].seq and view.state == runs[-1].state


def test_dynamic_interrupts_return_decisions_in_order(cp: Checkpointer) -> None:
    app = asking_graph(checkpointer=cp)
    r1 = app.start("q", {})
    assert r1.interrupt is not None and r1.interrupt["payload"] == {"question": "title?"}
    r2 = app.resume("q", "Report", actor="a")
    assert r2.interrupt is not None and r2.interrupt["payload"] == {"question": "confirm Report?"}
    r3 = app.resume("q", "yes", actor="a")
    assert r3.status == "completed" and r3.state["text"] == "Report/yes"


def test_resume_refusals_append_nothing(cp: Checkpointer) -> None:
    app = approval_graph(interrupt_before=["review"], checkpointer=cp)
    first = app.start("t", {})
    before = cp.log.end_offsets()
    with pytest.raises(StaleInterruptError):
        app.resume("t", {"approved": True}, actor="a", interrupt_id="t:9:review")
    with pytest.raises(InvalidDecisionError):
        app.resume("t", {"approved": object()}, actor="a")
    assert cp.log.end_offsets() == before
    assert first.interrupt is not None
    app.resume("t", {"approved": True}, actor="a", interrupt_id=first.interrupt["id"])
    after = cp.log.end_offsets()
    with pytest.raises(ThreadNotWaitingError):
        app.resume("t", {"approved": False}, actor="other")
    assert app.resume("t", {"approved": True}, actor="a").status == "completed"  # retried webhook
    assert cp.log.end_offsets() == after


def test_start_twice_is_refused(cp: Checkpointer) -> None:
    app = approval_graph(interrupt_before=["review"], checkpointer=cp)
    app.start("t", {})
    with pytest.raises(ThreadExistsError):
        app.start("t", {})


def test_seed_call_shape_update_state_then_run(cp: Checkpointer) -> None:
    app = approval_graph(checkpointer=cp)
    config = {"configurable": {"thread_id": "tx-99812"}}
    assert app.run(inputs={"text": "x"}, config=config,
                   interrupt_before=["review"]).status == "interrupted"
    edited = app.update_state(config=config, values={"approved": True}, as_node="review")
    assert edited.status == "running"
    done = app.run(None, config=config)
    assert done.status == "completed" and done.state["notes"][-1] == "published"
    assert "reviewed" not in done.state["notes"]  # review did not run: it was edited as done


def test_retries_then_success_and_final_failure(cp: Checkpointer) -> None:
    ok = Flaky(failures=2)
    assert flaky_graph(ok, attempts=3).start("f1", {}, checkpointer=cp).state["count"] == 3
    bad = Flaky(failures=5)
    result = flaky_graph(bad, attempts=2).start("f2", {}, checkpointer=cp)
    assert result.status == "failed" and bad.calls == 2
    assert result.error is not None and result.error.attempts == 2
    assert result.error.type == "ConnectionError"
    assert _types(cp, "f2")[-1] == str(EventType.NODE_FAILED)


def _raises(state: Any) -> str:
    return {"known": "on"}[state.text]  # KeyError: the router's own bug


@pytest.mark.parametrize(("router", "says"), [(lambda s: "sideways", "'sideways'"),
                                              (_raises, "raised KeyError")])
def test_a_router_that_leads_nowhere_fails_the_node_once_without_retrying_it(
        cp: Checkpointer, router: Any, says: str) -> None:
    """The graph's bug: a retry would only run the node's effects again."""
    from engine.graph import END, START, Graph
    from engine.retry import RetryPolicy
    from tests.engine_graphs import Doc

    calls = Flaky(failures=0)
    g = Graph(Doc, name="lost")
    g.add_node("w", calls, retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.001,
                                             retry_on=(Exception,)))
    g.add_edge(START, "w")
    g.add_conditional_edges("w", router, {"on": END})
    result = g.compile().start("lost", {}, checkpointer=cp)

    assert result.status == "failed" and result.error is not None
    assert (result.error.type, result.error.attempts, calls.calls) == ("RouteError", 1, 1)
    assert says in result.error.message


def test_invalid_state_fails_the_step_naming_node_and_field(cp: Checkpointer) -> None:
    from engine.graph import END, START, Graph
    from tests.engine_graphs import Doc

    g = Graph(Doc, name="bad")
    g.add_node("w", lambda s: {"count": "seven"})
    g.add_edge(START, "w").add_edge("w", END)
    result = g.compile().start("b", {}, checkpointer=cp)
    assert result.status == "failed" and result.error is not None
    assert "'w'" in result.error.message and "'count'" in result.error.message
    assert cp.projection.get_state("b")["count"] == 0  # nothing was coerced or written


def test_racing_resumes_only_one_wins(cp: Checkpointer) -> None:
    app = approval_graph(interrupt_before=["review"], checkpointer=cp)
    app.start("t", {})
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []
    real_load = app.runner().threads.load  # both racers read the same head before appending

    def racer(actor: str) -> None:
        runner = app.runner()
        cursor = real_load("t")
        barrier.wait()
        runner.threads.load = lambda _tid: cursor  # type: ignore[method-assign]
        try:
            outcomes.append(runner.resume("t", {"approved": True}, actor=actor).status)
        except ConflictError as e:
            outcomes.append(e)

    threads = [threading.Thread(target=racer, args=(a,)) for a in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(type(o).__name__ for o in outcomes) == ["ConflictError", "str"]
    history = accepted_history([d.event for d in cp.log.read_thread("t") if d.event])
    assert [e.type for e in history.accepted].count(EventType.DECISION_RECORDED) == 1
    assert history.rejected  # the loser's decision stays in the log, rejected


def test_projection_that_cannot_catch_up_refuses_to_resume() -> None:
    log = InMemoryEventLog(partitions=1)

    class Stuck(LogProjection):
        def projected_offset(self, partition: int) -> int:
            return 0

    cp = Checkpointer(log=log, projection=LogProjection(log), catchup_timeout_s=0.2)
    approval_graph(interrupt_before=["review"], checkpointer=cp).start("t", {})
    stuck = Checkpointer(log=log, projection=Stuck(log), catchup_timeout_s=0.2)
    before = log.end_offsets()
    with pytest.raises(CatchUpTimeoutError, match="amber projector"):
        approval_graph(interrupt_before=["review"]).resume("t", {"approved": True}, actor="a",
                                                            checkpointer=stuck)
    assert log.end_offsets() == before
