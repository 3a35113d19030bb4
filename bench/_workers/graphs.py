"""The graphs of bench/workers.py on Amber (the LangGraph peer has the same shapes).

- `linear`: 10 nodes in a chain; each appends its index to `trace` and bumps `count`.
- `hitl`: draft → [interrupt before] review → send. `review` records the wall clock
  (µs since the epoch) at which it started, so the bench can measure the resume
  latency "DecisionRecorded appended → next node started" from the events alone
  (workers and bench run on one machine, so the clocks agree).

Importable by `amber worker bench._workers.graphs:linear` and `amber serve -g ...`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import BaseModel

from bench._inline.amber_graphs import linear_graph as shared_linear_graph
from engine.context import NodeContext
from engine.graph import END, START, CompiledGraph, Graph
from engine.reducers import append

NODES = 10


def linear_graph(nodes: int = NODES) -> CompiledGraph:
    """The inline bench's linear graph, under its own name (workers serve by name)."""
    return shared_linear_graph(nodes, name=f"bench_workers_linear_{nodes}")


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
