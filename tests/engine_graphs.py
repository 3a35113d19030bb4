"""Small graphs shared by the engine tests."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel

from engine.context import NodeContext
from engine.graph import END, START, Graph
from engine.interrupts import interrupt
from engine.reducers import append, merge
from engine.retry import RetryPolicy


class Doc(BaseModel):
    text: str = ""
    count: int = 0
    notes: Annotated[list[str], append] = []
    meta: Annotated[dict[str, Any], merge] = {}
    approved: bool | None = None


def write(state: Doc, ctx: NodeContext) -> dict[str, Any]:
    return {"text": state.text + "!", "count": state.count + 1,
            "notes": [ctx.idempotency_key], "meta": {"writer": ctx.node}}


def review(state: Doc, ctx: NodeContext) -> dict[str, Any]:
    decision = ctx.decision or {}
    return {"approved": bool(decision.get("approved", state.approved)), "notes": ["reviewed"]}


def publish(state: Doc) -> dict[str, Any]:
    return {"notes": ["published"]}


def approval_graph(*, publishes: bool = True, **compile_kw: Any) -> Any:
    """write → review → publish if approved; `publishes=False` is a later version
    of the same graph that never publishes (for replay)."""
    g = Graph(Doc, name="doc_approval")
    g.add_node("write", write)
    g.add_node("review", review)
    g.add_node("publish", publish)
    g.add_edge(START, "write")
    g.add_edge("write", "review")
    g.add_conditional_edges("review", lambda s: bool(s.approved) and publishes,
                            {True: "publish", False: END})
    g.add_edge("publish", END)
    return g.compile(**compile_kw)



def asking_graph(**compile_kw: Any) -> Any:
    """One node that asks two questions with interrupt()."""

    def ask(state: Doc) -> dict[str, Any]:
        first = interrupt({"question": "title?"})
        second = interrupt({"question": f"confirm {first}?"})
        return {"text": f"{first}/{second}"}

    g = Graph(Doc, name="asking")
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g.compile(**compile_kw)


class Flaky:
    """A node that fails `failures` times before succeeding."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, state: Doc) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"flaky call {self.calls}")
        return {"count": self.calls}


def flaky_graph(node: Flaky, attempts: int) -> Any:
    return one_node_graph(Doc, "flaky", "call", node,
                          retry=RetryPolicy(max_attempts=attempts, initial_backoff_s=0.001))


def line_graph(state: type[BaseModel], name: str, *nodes: tuple[str, Any]) -> Graph:
    """START → each (name, fn) in turn → END, not yet compiled (interrupts are the caller's)."""
    g = Graph(state, name=name)
    previous = START
    for node, fn in nodes:
        g.add_node(node, fn)
        g.add_edge(previous, node)
        previous = node
    g.add_edge(previous, END)
    return g


def one_node_graph(state: type[BaseModel], name: str, node: str, fn: Any,
                   **node_options: Any) -> Any:
    """START → `node` → END."""
    g = Graph(state, name=name)
    g.add_node(node, fn, **node_options)
    g.add_edge(START, node)
    g.add_edge(node, END)
    return g.compile()
