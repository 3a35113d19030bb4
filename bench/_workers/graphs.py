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
from typing import Any

from bench._inline.amber_graphs import HitlState
from bench._inline.amber_graphs import hitl_graph as shared_hitl_graph
from bench._inline.amber_graphs import linear_graph as shared_linear_graph
from engine.context import NodeContext
from engine.graph import CompiledGraph

NODES = 10


def linear_graph(nodes: int = NODES) -> CompiledGraph:
    """The inline bench's linear graph, under its own name (workers serve by name)."""
    return shared_linear_graph(nodes, name=f"bench_workers_linear_{nodes}")


class TimedHitlState(HitlState):
    review_started_us: int | None = None


def review(state: TimedHitlState, ctx: NodeContext) -> dict[str, Any]:
    started_us = time.time_ns() // 1000  # first thing: when the worker started the node
    decision = ctx.decision if isinstance(ctx.decision, dict) else {}
    approved = bool(decision.get("approved"))
    return {"approved": approved, "review_started_us": started_us,
            "audit": [f"review: {approved}"]}


linear = linear_graph()
hitl = shared_hitl_graph(name="bench_workers_hitl", state=TimedHitlState, review_node=review)
