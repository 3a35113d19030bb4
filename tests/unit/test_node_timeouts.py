"""`add_node(..., timeout_s=)` bounds each attempt of a node (Temporal's start-to-close,
LangGraph's step_timeout): past it the attempt fails with NodeTimeoutError, retried
under the node's policy, and a worker's batch is never held by one stuck call.

The stuck nodes wait on an Event that the test sets when it is done, so no
thread outlives its test.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from engine.checkpointer import Checkpointer
from engine.context import NodeContext
from engine.errors import GraphDefinitionError
from engine.events import EventType
from engine.graph import END, START, Graph
from engine.interrupts import interrupt
from engine.retry import RetryPolicy
from tests.engine_graphs import Doc, one_node_graph

QUICK = 0.05  # seconds: far below the time a stuck node waits



@pytest.fixture
def release() -> Iterator[threading.Event]:
    gate = threading.Event()
    yield gate
    gate.set()  # lets every abandoned node thread finish


def test_a_node_past_its_timeout_fails_that_step_naming_it(
        cp: Checkpointer, release: threading.Event) -> None:
    graph = one_node_graph(Doc, "stuck", "call", lambda state: release.wait(30) and {},
                           timeout_s=QUICK)

    result = graph.start("t", {}, checkpointer=cp)

    assert result.status == "failed" and result.error is not None
    assert result.error.type == "NodeTimeoutError"
    assert "node 'call' ran past its timeout of 0.05 s" in result.error.message
    events = [d.event for d in cp.log.read_thread("t") if d.event is not None]
    assert events[-1].type is EventType.NODE_FAILED and events[-1].node == "call"


def test_a_timed_out_attempt_is_retried_under_the_nodes_policy(
        cp: Checkpointer, release: threading.Event) -> None:
    calls: list[int] = []

    def first_call_hangs(state: Doc, ctx: NodeContext) -> dict[str, Any]:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            release.wait(30)
        return {"count": ctx.attempt}

    # long enough for the quick second attempt even on a loaded machine
    graph = one_node_graph(Doc, "hangs_once", "call", first_call_hangs, timeout_s=1.0,
                           retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.001,
                                             retry_on=(TimeoutError,)))

    result = graph.start("t", {}, checkpointer=cp)

    assert result.status == "completed" and result.state["count"] == 2
    assert calls == [1, 2]


def test_an_async_node_past_its_timeout_is_cancelled(cp: Checkpointer) -> None:
    cancelled = threading.Event()

    async def waits_forever(state: Doc) -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return {}

    graph = one_node_graph(Doc, "async_stuck", "call", waits_forever, timeout_s=QUICK)

    result = graph.start("t", {}, checkpointer=cp)

    assert result.error is not None and result.error.type == "NodeTimeoutError"
    assert cancelled.wait(5)


def test_a_nodes_own_timeout_error_is_its_own_not_the_limit(cp: Checkpointer) -> None:
    def upstream_timed_out(state: Doc) -> dict[str, Any]:
        raise TimeoutError("the model API did not answer")

    graph = one_node_graph(Doc, "own", "call", upstream_timed_out, timeout_s=30)

    result = graph.start("t", {}, checkpointer=cp)

    assert result.error is not None
    assert (result.error.type, result.error.message) == \
        ("TimeoutError", "the model API did not answer")


def test_interrupt_and_the_context_work_inside_a_timed_node(cp: Checkpointer) -> None:
    def ask(state: Doc, ctx: NodeContext) -> dict[str, Any]:
        return {"text": f"{interrupt({'q': 'title?'})}@{ctx.node}"}

    g = Graph(Doc, name="timed_ask")
    g.add_node("ask", ask, timeout_s=5)
    g.add_edge(START, "ask").add_edge("ask", END)
    graph = g.compile()

    assert graph.start("t", {}, checkpointer=cp).status == "interrupted"
    result = graph.resume("t", "Report", actor="ann", checkpointer=cp)

    assert result.status == "completed" and result.state["text"] == "Report@ask"


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan])
def test_a_timeout_that_is_not_a_positive_number_is_refused_when_built(bad: float) -> None:
    with pytest.raises(GraphDefinitionError, match="timeout_s"):
        Graph(Doc, name="bad").add_node("n", lambda state: None, timeout_s=bad)


async def _ask_title(state: Doc) -> dict[str, Any]:
    return {"text": str(interrupt({"q": "title?"}))}


def test_a_plain_function_returning_a_coroutine_is_awaited_in_the_nodes_context(
        cp: Checkpointer) -> None:
    """A decorator or a lambda around an async function: interrupt() must still work."""
    graph = one_node_graph(Doc, "wrapped", "ask", lambda state: _ask_title(state), timeout_s=5)

    assert graph.start("t", {}, checkpointer=cp).status == "interrupted"
    result = graph.resume("t", "Report", actor="ann", checkpointer=cp)

    assert result.status == "completed" and result.state["text"] == "Report"


def test_the_coroutine_a_plain_function_returned_is_cancelled_when_late(
        cp: Checkpointer) -> None:
    cancelled = threading.Event()

    async def waits_forever() -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return {}

    graph = one_node_graph(Doc, "wrapped_stuck", "call", lambda state: waits_forever(),
                           timeout_s=QUICK)

    result = graph.start("t", {}, checkpointer=cp)

    assert result.error is not None and result.error.type == "NodeTimeoutError"
    assert cancelled.wait(5)
