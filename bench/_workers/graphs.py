"""The graphs of bench/workers.py on Amber (the LangGraph peer has the same shapes).

- `linear`: 10 nodes in a chain; each appends its index to `trace` and bumps `count`.
- `hitl`: draft → [interrupt before] review → send. `review` records the wall clock
  (µs since the epoch) at which it started, so the bench can measure the resume
  latency "DecisionRecorded appended → next node started" from the events alone
  (workers and bench run on one machine, so the clocks agree).

Importable by `amber worker bench._workers.graphs:linear` and `amber serve -g ...`.
"""

from __future__ import annotations

import itertools
import time
from typing import Annotated, Any

from pydantic import BaseModel

from engine.context import NodeContext
from engine.graph import END, START, CompiledGraph, Graph
from engine.reducers import append

NODES = 10


class LinearState(BaseModel):
    trace: Annotated[list[int], append] = []
    count: int = 0


def _linear_node(i: int) -> Any:
    def node(state: LinearState) -> dict[str, Any]:
        return {"trace": [i], "count": state.count + 1}
    node.__name__ = f"n{i:02d}"
    return node


def linear_graph(nodes: int = NODES) -> CompiledGraph:
    g = Graph(LinearState, name=f"bench_workers_linear_{nodes}")
    names = [f"n{i:02d}" for i in range(nodes)]
    for i, name in enumerate(names):
        g.add_node(name, _linear_node(i))
    g.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        g.add_edge(a, b)
    g.add_edge(names[-1], END)
    return g.compile()


class HitlState(BaseModel):
    request: str = ""
    draft: str = ""
    approved: bool | None = None
    review_started_us: int | None = None
    sent: str | None = None
    audit: Annotated[list[str], append] = []


def draft(state: HitlState) -> dict[str, Any]:
    return {"draft": f"re: {state.request}", "audit": ["drafted"]}


def review(state: HitlState, ctx: NodeContext) -> dict[str, Any]:
    started_us = time.time_ns() // 1000  # first thing: when the worker started the node
    decision = ctx.decision if isinstance(ctx.decision, dict) else {}
    approved = bool(decision.get("approved"))
    return {"approved": approved, "review_started_us": started_us,
            "audit": [f"review: {approved}"]}


def send(state: HitlState) -> dict[str, Any]:
    return {"sent": f"msg-{len(state.draft)}", "audit": ["sent"]}


def route(state: HitlState) -> str:
    return "send" if state.approved else "stop"


def hitl_graph() -> CompiledGraph:
    g = Graph(HitlState, name="bench_workers_hitl")
    g.add_node("draft", draft)
    g.add_node("review", review)
    g.add_node("send", send)
    g.add_edge(START, "draft")
    g.add_edge("draft", "review")
    g.add_conditional_edges("review", route, {"send": "send", "stop": END})
    g.add_edge("send", END)
    return g.compile(interrupt_before=["review"])


linear = linear_graph()
hitl = hitl_graph()
