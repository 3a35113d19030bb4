"""Graphs that `amber worker` processes load in the worker integration tests."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from engine.graph import END, START, Graph


class Count(BaseModel):
    n: int = 0


def slow(state: Count) -> dict[str, Any]:
    time.sleep(0.1)  # stands for an LLM call: a batch of these outlasts its time budget
    return {"n": state.n + 1}


def _slow_graph() -> Any:
    g = Graph(Count, name="slow_step")
    g.add_node("slow", slow)
    g.add_edge(START, "slow")
    g.add_edge("slow", END)
    return g.compile()


slow_graph = _slow_graph()
