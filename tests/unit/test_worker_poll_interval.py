"""A worker's poll interval covers its batch and its slowest bounded node, so a node that
runs within its timeout never costs the worker its partitions."""

from __future__ import annotations

from consumers.worker import poll_interval_ms
from engine.retry import RetryPolicy
from tests.engine_graphs import Doc, approval_graph, one_node_graph


def test_graphs_without_timeouts_keep_kafkas_default() -> None:
    assert poll_interval_ms([approval_graph()], batch_s=10) == 300_000


def test_every_attempt_and_backoff_of_the_slowest_bounded_node_is_covered() -> None:
    slow = one_node_graph(Doc, "agent", "tool", lambda state: None, timeout_s=200,
                          retry=RetryPolicy(max_attempts=2, initial_backoff_s=1))
    quick = one_node_graph(Doc, "quick", "n", lambda state: None, timeout_s=5)

    # batch 10 s + 2 attempts x 200 s + 1 s of backoff + 30 s of margin
    assert poll_interval_ms([quick, slow, approval_graph()], batch_s=10) == 441_000
