"""`async def` nodes run like plain ones: updates, interrupt(), retries, context."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from engine.checkpointer import Checkpointer
from engine.context import NodeContext
from engine.eventlog_memory import InMemoryEventLog
from engine.graph import END, START, Graph
from engine.interrupts import interrupt
from engine.projection import LogProjection
from engine.retry import RetryPolicy
from tests.engine_graphs import Doc


@pytest.fixture
def cp() -> Checkpointer:
    log = InMemoryEventLog(partitions=2)
    return Checkpointer(log=log, projection=LogProjection(log), snapshot_every=3)


async def draft(state: Doc, ctx: NodeContext) -> dict[str, Any]:
    await asyncio.sleep(0)  # a real suspension, as an async model client makes
    return {"text": f"{state.text} drafted", "notes": [ctx.idempotency_key]}


async def ask(state: Doc) -> dict[str, Any]:
    await asyncio.sleep(0)
    answer = interrupt({"question": "send?"})
    return {"approved": bool(answer)}


def _graph(*nodes: tuple[str, Any], retry: RetryPolicy | None = None) -> Any:
    g = Graph(Doc, name="async_nodes")
    for name, fn in nodes:
        g.add_node(name, fn, retry=retry)
    for a, b in itertools.pairwise([START, *(name for name, _ in nodes), END]):
        g.add_edge(a, b)
    return g.compile()


def test_an_async_node_updates_the_state_with_its_context(cp: Checkpointer) -> None:
    done = _graph(("draft", draft)).start("t", {"text": "hi"}, checkpointer=cp)

    assert done.status == "completed"
    assert done.state["text"] == "hi drafted" and done.state["notes"] == ["t:1:draft"]


def test_interrupt_inside_an_async_node_pauses_and_resumes(cp: Checkpointer) -> None:
    app = _graph(("draft", draft), ("ask", ask))
    paused = app.start("t", {}, checkpointer=cp)
    assert paused.status == "interrupted" and paused.interrupt is not None
    assert paused.interrupt["payload"] == {"question": "send?"}

    done = app.resume("t", True, actor="alice", checkpointer=cp)
    assert done.status == "completed" and done.state["approved"] is True


def test_an_async_node_is_retried_per_its_policy(cp: Checkpointer) -> None:
    calls = []

    async def flaky(state: Doc) -> dict[str, Any]:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("model endpoint hiccup")
        return {"count": len(calls)}

    retry = RetryPolicy(max_attempts=3, initial_backoff_s=0.001)
    done = _graph(("call", flaky), retry=retry).start("t", {}, checkpointer=cp)
    assert done.status == "completed" and done.state["count"] == 3


def test_a_run_started_from_inside_an_event_loop_runs_its_async_nodes(
        cp: Checkpointer) -> None:
    app = _graph(("draft", draft), ("ask", ask))

    async def webhook() -> Any:  # async code calling the synchronous runner
        app.start("t", {"text": "hi"}, checkpointer=cp)
        return app.resume("t", False, actor="bob", checkpointer=cp)

    done = asyncio.run(webhook())
    assert done.status == "completed" and done.state["approved"] is False


def test_a_loop_bound_client_keeps_working_from_step_to_step(cp: Checkpointer) -> None:
    # An async client binds its connections to the loop it first ran on (httpx, openai).
    class LoopBoundClient:
        loop: asyncio.AbstractEventLoop | None = None

        async def call(self) -> int:
            running = asyncio.get_running_loop()
            if self.loop is not None and self.loop is not running:
                raise RuntimeError("Event loop is closed")
            self.loop = running
            return 1

    client = LoopBoundClient()

    async def step(state: Doc) -> dict[str, Any]:
        return {"count": state.count + await client.call()}

    done = _graph(("a", step), ("b", step), ("c", step)).start("t", {}, checkpointer=cp)
    assert done.status == "completed" and done.state["count"] == 3


def test_a_cancelled_async_node_fails_its_step_not_the_runner(cp: Checkpointer) -> None:
    async def cancelled(state: Doc) -> dict[str, Any]:
        raise asyncio.CancelledError  # e.g. an inner task it awaited was cancelled

    done = _graph(("call", cancelled)).start("t", {}, checkpointer=cp)
    assert done.status == "failed" and done.error is not None
    assert done.error.type == "NodeCancelledError"
