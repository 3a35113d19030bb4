"""What bench/workers.py's cases share: targets, the load gate, waiting on the log, warm workers."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from bench._inline.common import percentiles
from bench._workers.graphs import NODES
from bench._workers.stack import Stack, say, started_events

LINEAR = "bench._workers.graphs:linear"
HITL = "bench._workers.graphs:hitl"
TARGETS = {"steps_per_s_2_workers": 5000, "hitl_ratio_vs_peer": 3.0, "resume_p50_ms": 50}
EVENTS_PER_LINEAR_THREAD = NODES + 2  # ThreadStarted + a NodeCompleted each + ThreadCompleted
EVENTS_PER_HITL_THREAD = 7  # Started, draft, Interrupted, Decision, review, send, Completed


def pct(values: list[float]) -> dict[str, float] | None:
    """Percentiles in ms of latencies in seconds, with their count; None for none."""
    if not values:
        return None
    return {"n": len(values), **percentiles(values, digits=2)}


# --- load gate ----------------------------------------------------------------------------
def wait_for_quiet(max_load: float, wait_s: float) -> dict[str, Any]:
    seen = [round(os.getloadavg()[0], 2)]
    t0 = time.monotonic()
    while seen[-1] > max_load and time.monotonic() - t0 < wait_s:
        say(f"load average {seen[-1]} > {max_load}: waiting for a quieter moment "
            f"({int(time.monotonic() - t0)} s so far, up to {int(wait_s)} s)")
        time.sleep(60)
        seen.append(round(os.getloadavg()[0], 2))
    return {"max_load": max_load, "waited_s": round(time.monotonic() - t0, 1),
            "load_1m_seen": seen, "quiet": seen[-1] <= max_load}


# --- waiting on the log -------------------------------------------------------------------
class LogWatch:
    """Polls end offsets until the log holds `expected` records; samples projector lag."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.peak_lag = 0

    def until(self, expected: int, timeout_s: float, *, every_s: float = 0.04,
              lag_every_s: float = 0.1) -> tuple[float, dict[int, int]]:
        deadline = time.perf_counter() + timeout_s
        next_lag = 0.0
        while True:
            ends = self.stack.ends()
            now = time.perf_counter()
            if sum(ends.values()) >= expected:
                return now, ends
            if now >= next_lag:
                lag = self.stack.projector_lag(ends)
                self.peak_lag = max(self.peak_lag, lag)
                next_lag = now + lag_every_s
            if now > deadline:
                raise RuntimeError(f"the log holds {sum(ends.values())} of {expected} records "
                                   f"after {timeout_s}s; worker log:\n"
                                   f"{self.stack.log_tail('worker0')}")
            time.sleep(every_s)

    def drain(self, ends: dict[int, int], timeout_s: float = 120.0) -> float:
        """Seconds until the projector holds everything up to `ends`."""
        t0 = time.perf_counter()
        self.stack.cp.projection.wait_for_offsets(ends, timeout_s=timeout_s)
        return time.perf_counter() - t0


# --- workers, joined and warm ----------------------------------------------------------------
def ready_workers(st: Stack, graph_ref: str, n: int, graph: Any, events_per_thread: int,
                  args: argparse.Namespace, *, probe_out: Path | None = None,
                  profiler: str | None = None, attempts: int = 3) -> dict[str, Any]:
    """Start N workers, wait for a Stable group, run warm-up threads through them.

    A worker whose group shows it owning partitions but that never fetches (seen
    with kafka-python 3.0.12 on a loaded machine, right after the topic was
    created) is replaced: the run is reported with `restarts` and the stuck log.
    """
    info: dict[str, Any] = {"restarts": 0}
    for attempt in range(attempts):
        st.start_workers(graph_ref, n, probe_out=probe_out,
                         profiler=profiler or args.profiler)
        info["group_join_s"] = round(st.wait_group(n), 2)
        base = sum(st.ends().values())
        warm = started_events(graph, [f"warm{attempt}-{i}" for i in range(args.warmup)],
                              {}, actor="bench", clock=st.cp.clock)
        t0 = time.perf_counter()
        st.cp.log.append(warm)
        try:
            LogWatch(st).until(base + events_per_thread * len(warm), args.warmup_timeout_s)
        except RuntimeError:
            say(f"{st.label}: warm-up stuck after {args.warmup_timeout_s}s; restarting workers")
            info["restarts"] += 1
            info.setdefault("stuck_worker_logs", []).append(st.log_tail("worker0")[-1500:])
            st.stop_workers()
            st.workers.clear()
            continue
        info["warmup_threads"] = len(warm)
        info["warmup_s"] = round(time.perf_counter() - t0, 3)
        time.sleep(0.3)  # the warm-up's last commits settle: workers idle
        return info
    raise RuntimeError(f"{st.label}: workers never processed the warm-up")
