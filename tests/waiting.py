"""Synchronization for tests: a condition with a deadline, and calls released together."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, *,
               every_s: float = 0.05) -> None:
    """Poll until `condition()` holds; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(every_s)


def race(calls: dict[str, Callable[[], T]], timeout_s: float) -> dict[str, T]:
    """Run every call on its own thread, released together; their results by name."""
    gate = threading.Barrier(len(calls))
    results: dict[str, T] = {}

    def run(name: str, call: Callable[[], T]) -> None:
        gate.wait()
        results[name] = call()

    threads = [threading.Thread(target=run, args=item) for item in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    return results
