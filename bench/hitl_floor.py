"""The floor under a HITL round trip: its port calls alone, beside the engine making them.

    eval "$(compose/stack up)"
    .venv/bin/python -m bench.hitl_floor [--threads 300 --turns 4] > floor.json

bench/inline.py's HITL case (draft → [interrupt] review → send; every thread
runs to its interrupt, then every thread is resumed) makes, per round trip,
five acknowledged appends (ThreadStarted; NodeCompleted + Interrupted;
DecisionRecorded; NodeCompleted; NodeCompleted + ThreadCompleted), two reads
of the thread's head from PostgreSQL and two Kafka fetches of the partition's
unprojected tail. Here the same port calls run with the events sealed
beforehand (the adapters still encode and send them), on a fresh topic and
database with `amber projector` applying them: what a round trip costs when
the engine costs nothing. The engine's own round trips run in alternating
turns on the same stack, so noise hits both alike. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._inline.amber_stack import AmberStack
from bench._inline.common import claim_run, emit, machine, run_items, versions
from engine.checkpointer import Checkpointer
from engine.events import Event

Batches = list[list[Event]]


def planned(thread: str) -> tuple[Batches, Batches]:
    """The thread's events as the engine appends them: (start's batches, resume's)."""
    from tests.factories import ThreadWriter

    w = ThreadWriter(thread)
    start = [[w.start(request=f"refund {thread}")], [w.step("draft"), w.interrupt()]]
    resume = [[w.decide()], [w.step("review")], [w.step("send"), w.complete()]]
    return start, resume


def ports_only(cp: Checkpointer, thread: str, batches: Batches) -> None:
    """A command's port calls: the head and the tail read, then each append."""
    partition = cp.log.partition_of(thread)
    head = cp.projection.thread_head(thread, partition)
    cp.log.tail(partition, head.progress.next_offset, most=256, thread_id=thread)
    for batch in batches:
        cp.log.append(batch)


def timed(run: Callable[[str], None], threads: list[str]) -> tuple[float, float]:
    """Wall seconds of `run` over `threads`, and the calling thread's CPU seconds."""
    done = run_items(threads, run)
    return done["wall_s"], done["thread_cpu_s"]


class Sides:
    """Both ways of making a round trip, on one checkpointer."""

    def __init__(self, cp: Checkpointer) -> None:
        from bench._inline.amber_graphs import hitl

        self.cp, self.hitl = cp, hitl
        self.plans: dict[str, tuple[Batches, Batches]] = {}

    def floor(self, threads: list[str]) -> tuple[float, float]:
        self.plans.update({t: planned(t) for t in threads})  # untimed: the engine's share
        starts = timed(lambda t: ports_only(self.cp, t, self.plans[t][0]), threads)
        resumes = timed(lambda t: ports_only(self.cp, t, self.plans[t][1]), threads)
        return starts[0] + resumes[0], starts[1] + resumes[1]

    def engine(self, threads: list[str]) -> tuple[float, float]:
        starts = timed(lambda t: self._start(t), threads)
        resumes = timed(lambda t: self._resume(t), threads)
        return starts[0] + resumes[0], starts[1] + resumes[1]

    def _start(self, thread: str) -> None:
        res = self.hitl.start(thread, {"request": f"refund {thread}"}, checkpointer=self.cp)
        assert res.status == "interrupted", res

    def _resume(self, thread: str) -> None:
        res = self.hitl.resume(thread, {"approved": True}, actor="bench", checkpointer=self.cp)
        assert res.status == "completed", res


def measure(sides: Sides, threads: int, turns: int) -> dict[str, Any]:
    per_turn = max(1, threads // turns)
    samples: dict[str, list[tuple[float, float]]] = {"floor": [], "engine": []}
    for turn in range(turns):
        order = ("floor", "engine") if turn % 2 == 0 else ("engine", "floor")
        for side in order:
            ids = [f"{side}-{turn}-{i}" for i in range(per_turn)]
            wall, cpu = getattr(sides, side)(ids)
            samples[side].append((wall / per_turn, cpu / per_turn))
    return {side: _summary(values) for side, values in samples.items()}


def _summary(values: list[tuple[float, float]]) -> dict[str, float]:
    wall = statistics.median(v[0] for v in values)
    return {"ms_per_round_trip": round(1000 * wall, 3),
            "caller_cpu_ms_per_round_trip": round(1000 * statistics.median(v[1] for v in values),
                                                  3),
            "round_trips_per_s": round(1 / wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=300, help="round trips per side")
    p.add_argument("--turns", type=int, default=4, help="alternating turns per side")
    p.add_argument("--warmup", type=int, default=30, help="untimed round trips per side first")
    args = p.parse_args()
    claim_run()
    from consumers.checkpointer import AmberCheckpointer
    from engine.settings import Settings

    with tempfile.TemporaryDirectory(prefix="amber-bench-floor-") as tmp, \
            AmberStack(Path(tmp)) as stack:
        cp = AmberCheckpointer.from_settings(Settings.from_env(stack.env))
        try:
            sides = Sides(cp)
            sides.floor([f"warm-floor-{i}" for i in range(args.warmup)])
            sides.engine([f"warm-engine-{i}" for i in range(args.warmup)])
            found = measure(sides, args.threads, args.turns)
        finally:
            cp.close()
    print("[bench] done", file=sys.stderr)
    emit({"benchmark": "bench/hitl_floor.py", "params": vars(args), **found,
          "engine_over_floor": round(found["engine"]["ms_per_round_trip"]
                                     / found["floor"]["ms_per_round_trip"], 2),
          "machine": machine(), "versions": versions("amber", "kafka-python", "psycopg")})


if __name__ == "__main__":
    main()
