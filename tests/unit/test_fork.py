"""Forks: a new thread goes on from a checkpoint of another as that thread would have.

On the in-memory log; tests/integration/test_human_approval.py forks through the
CLI on the real stack.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.checkpointer import Checkpointer
from engine.context import NodeContext
from engine.errors import (
    ForkError,
    GraphMismatchError,
    ThreadExistsError,
)
from engine.events import EventType, ForkOrigin
from engine.graph import END, START, Graph
from engine.projection import CheckpointNotFoundError, ThreadNotFoundError
from tests.engine_graphs import (
    Doc,
    Flaky,
    approval_graph,
    asking_graph,
    flaky_graph,
    one_node_graph,
    publish,
    write,
)
from tests.eventbuild import appending_nothing, logged


def _approved(cp: Checkpointer, graph: Any, thread: str) -> None:
    assert graph.start(thread, {"text": "draft"}, checkpointer=cp).status == "interrupted"
    assert graph.resume(thread, {"approved": True}, actor="ann", checkpointer=cp).status == \
        "completed"


def test_a_fork_at_the_question_waits_on_it_and_takes_another_answer(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    _approved(cp, graph, "s")
    asked = logged(cp, "s")[2]
    assert asked.type is EventType.INTERRUPTED

    waiting = graph.fork("s", 2, "f", actor="auditor", reason="what if rejected",
                         checkpointer=cp)
    done = graph.resume("f", {"approved": False}, actor="bob", checkpointer=cp)

    assert waiting.status == "interrupted" and waiting.seq == 0
    assert waiting.interrupt is not None and waiting.interrupt["id"] == "f:0:review"
    assert done.status == "completed" and "published" not in done.state["notes"]
    first = logged(cp, "f")[0]
    assert (first.type, first.actor, first.reason) == \
        (EventType.THREAD_FORKED, "auditor", "what if rejected")
    assert first.parent == ForkOrigin(thread_id="s", seq=2, hash=asked.hash)
    assert graph.get_state("f", 0, checkpointer=cp) == graph.get_state("s", 2, checkpointer=cp)
    assert cp.projection.require("f").parent == first.parent
    assert cp.projection.require("s").state["notes"][-1] == "published"  # the source is as it was


def test_a_fork_where_the_source_would_pause_next_starts_waiting(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    _approved(cp, graph, "s")

    result = graph.fork("s", 1, "f", checkpointer=cp)  # after write, before the pause

    assert result.status == "interrupted" and result.interrupt is not None
    assert (result.interrupt["node"], result.interrupt["when"]) == ("review", "before")
    assert [e.type for e in logged(cp, "f")] == [EventType.THREAD_FORKED]


def test_a_fork_at_a_decision_runs_the_decided_node_with_it(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    _approved(cp, graph, "s")
    assert logged(cp, "s")[3].type is EventType.DECISION_RECORDED

    result = graph.fork("s", 3, "f", checkpointer=cp)

    assert result.status == "completed" and result.state["approved"] is True
    assert [e.node for e in logged(cp, "f")[1:-1]] == ["review", "publish"]  # write not again


def test_a_fork_after_a_dynamic_answer_carries_it_into_the_next_question(
        cp: Checkpointer) -> None:
    graph = asking_graph()
    graph.start("s", {}, checkpointer=cp)
    second = graph.resume("s", "Amber", actor="ann", checkpointer=cp)
    assert second.status == "interrupted"

    graph.fork("s", second.seq, "f", checkpointer=cp)
    result = graph.resume("f", "no", actor="bob", checkpointer=cp)

    assert result.status == "completed" and result.state["text"] == "Amber/no"


def test_a_fork_at_a_pause_after_a_node_waits_there(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_after=["write"])
    graph.start("s", {}, checkpointer=cp)

    result = graph.fork("s", 1, "f", checkpointer=cp)

    assert result.status == "interrupted" and result.interrupt is not None
    assert (result.interrupt["node"], result.interrupt["when"]) == ("write", "after")


def test_a_fork_at_a_failure_runs_the_failed_node_again(cp: Checkpointer) -> None:
    node = Flaky(failures=1)
    graph = flaky_graph(node, attempts=1)
    failed = graph.start("s", {}, checkpointer=cp)
    assert failed.status == "failed"

    result = graph.fork("s", failed.seq, "f", checkpointer=cp)

    assert result.status == "completed" and result.state["count"] == 2
    assert cp.projection.require("s").status == "failed"


def _gated_review_failing_once(seen: list[Any]) -> Any:
    """write → [approval] review → publish, where review fails on its first run."""
    def review(state: Doc, ctx: NodeContext) -> dict[str, Any]:
        seen.append(ctx.decision)
        if len(seen) == 1:
            raise RuntimeError("the mail server was down")
        return {"approved": bool((ctx.decision or {}).get("approved"))}

    g = Graph(Doc, name="gated")
    g.add_node("write", write).add_node("review", review).add_node("publish", publish)
    g.add_edge(START, "write").add_edge("write", "review").add_edge("publish", END)
    g.add_conditional_edges("review", lambda s: bool(s.approved), {True: "publish", False: END})
    return g.compile(interrupt_before=["review"])


def test_a_fork_at_a_gated_nodes_failure_runs_it_with_the_approval_it_was_given(
        cp: Checkpointer) -> None:
    """Not past its gate without a decision: the approval the source recorded is carried."""
    seen: list[Any] = []
    graph = _gated_review_failing_once(seen)
    graph.start("s", {}, checkpointer=cp)
    failed = graph.resume("s", {"approved": True}, actor="ann", checkpointer=cp)
    assert failed.status == "failed"

    result = graph.fork("s", failed.seq, "f", checkpointer=cp)

    assert result.status == "completed" and seen == [{"approved": True}] * 2
    assert result.state["notes"][-1] == "published"


def test_an_edit_while_waiting_keeps_the_answers_the_node_already_had(
        cp: Checkpointer) -> None:
    """For the thread itself and for a fork of the edit."""
    graph = asking_graph()
    graph.start("s", {}, checkpointer=cp)
    graph.resume("s", "Amber", actor="ann", checkpointer=cp)
    edited = graph.update_state("s", {"count": 5}, checkpointer=cp)
    assert edited.status == "interrupted"
    graph.fork("s", edited.seq, "f", checkpointer=cp)

    for thread in ("s", "f"):
        result = graph.resume(thread, "no", actor="bob", checkpointer=cp)
        assert result.status == "completed" and result.state["text"] == "Amber/no", thread


def test_a_fork_where_todays_graph_lacks_the_next_node_is_refused(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    _approved(cp, graph, "s")
    renamed = Graph(Doc, name="doc_approval")  # the same graph, its review node renamed
    renamed.add_node("write", write).add_node("approve", lambda state: None)
    renamed.add_edge(START, "write").add_edge("write", "approve").add_edge("approve", END)

    _refused(cp, GraphMismatchError, lambda: renamed.compile().fork("s", 3, "f",
                                                                    checkpointer=cp))


def test_a_thread_whose_next_node_is_gone_fails_rather_than_crash(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    graph.start("s", {}, checkpointer=cp)
    renamed = Graph(Doc, name="doc_approval")
    renamed.add_node("write", write).add_node("approve", lambda state: None)
    renamed.add_edge(START, "write").add_edge("write", "approve").add_edge("approve", END)

    result = renamed.compile().resume("s", {"approved": True}, actor="ann", checkpointer=cp)

    assert result.status == "failed" and result.error is not None
    assert "has no node 'review'" in result.error.message


def _refused(cp: Checkpointer, kind: type[Exception], call: Any) -> None:
    with appending_nothing(cp), pytest.raises(kind):
        call()


def test_refused_forks_append_nothing(cp: Checkpointer) -> None:
    graph = approval_graph(interrupt_before=["review"])
    _approved(cp, graph, "s")
    other = one_node_graph(Doc, "other", "n", lambda state: None)

    last = len(logged(cp, "s")) - 1
    _refused(cp, ForkError, lambda: graph.fork("s", last, "f", checkpointer=cp))
    _refused(cp, ForkError, lambda: graph.fork("s", last - 1, "f", checkpointer=cp))
    _refused(cp, ThreadExistsError, lambda: graph.fork("s", 2, "s", checkpointer=cp))
    _refused(cp, CheckpointNotFoundError, lambda: graph.fork("s", 99, "f", checkpointer=cp))
    _refused(cp, ThreadNotFoundError, lambda: graph.fork("nobody", 0, "f", checkpointer=cp))
    _refused(cp, GraphMismatchError, lambda: other.fork("s", 2, "f", checkpointer=cp))
