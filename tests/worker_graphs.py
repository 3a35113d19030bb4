"""Graphs that `amber worker` processes load in the worker integration tests."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from tests.engine_graphs import one_node_graph


class Count(BaseModel):
    n: int = 0


def slow(state: Count) -> dict[str, Any]:
    time.sleep(0.1)  # stands for an LLM call: a batch of these outlasts its time budget
    return {"n": state.n + 1}


slow_graph = one_node_graph(Count, "slow_step", "slow", slow)
