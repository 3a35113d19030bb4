"""The LangGraph peer of bench/workers.py: one asyncio process, AsyncPostgresSaver.

    python -m bench._workers.peer --database URL [--threads 400] [--concurrency 8,16,32] \
        [--hitl 200] [--nodes 10]

Its best concurrent setup on one machine: one event loop, an AsyncConnectionPool
as large as the concurrency (psycopg 3, autocommit, no prepared statements,
dict rows, as LangGraph's docs set it up), `ainvoke` of many threads at once
bounded by a semaphore. Durability "sync" (each checkpoint committed before
the next step, what Amber's broker ack gives); LangGraph's default "async" is
measured at the best concurrency for reference only.

1. linear: the same 10-node chain as bench/_workers/graphs.py, N threads, for
   each concurrency; steps = nodes executed.
2. HITL at each concurrency: draft → review → send, each thread started
   (runs to the interrupt) and resumed right away, concurrently. Two styles:
   interrupt_before=["review"] + aupdate_state + ainvoke(None), and interrupt()
   inside review + ainvoke(Command(resume=...)); both reported.

Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.types import Command
from psycopg_pool import AsyncConnectionPool

from bench._inline.common import percentiles

# The graphs are bench/inline.py's, so both benches compare the very same peer.
from bench._inline.peer_langgraph import SAVER_CONN_KWARGS, _cfg, hitl_graph, linear_graph
from bench._workers.stack import machine_busy_s, postgres_cpu_s


def _pct(values: list[float]) -> dict[str, float]:
    every = percentiles(values, digits=2)
    return {k: every[k] for k in ("p50", "p99", "max")}


async def _measured(concurrency: int, tag: str, warmup: int, threads: int,
                    body: Any) -> tuple[float, list[float], float, float, float]:
    """Warm up, then run `threads` items: wall, latencies, own, PostgreSQL and machine CPU."""
    await _bounded(concurrency, [f"{tag}-warm-{i}" for i in range(warmup)], body)
    c0, pg0, m0 = time.process_time(), postgres_cpu_s(), machine_busy_s()
    wall, lat = await _bounded(concurrency, [f"{tag}-{i}" for i in range(threads)], body)
    return (wall, lat, time.process_time() - c0, postgres_cpu_s() - pg0,
            machine_busy_s() - m0)


async def _bounded(concurrency: int, items: list[str], body: Any) -> tuple[float, list[float]]:
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []

    async def one(item: str) -> None:
        async with sem:
            t = time.perf_counter()
            await body(item)
            lat.append(time.perf_counter() - t)

    w0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in items))
    return time.perf_counter() - w0, lat


class Peer:
    def __init__(self, database: str, nodes: int) -> None:
        self.database = database
        self.nodes = nodes
        self.run_id = os.urandom(4).hex()

    async def _pool(self, size: int) -> AsyncConnectionPool[Any]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.database, min_size=size, max_size=size, open=False,
            kwargs=SAVER_CONN_KWARGS)
        await pool.open(wait=True)
        return pool

    async def linear(self, concurrency: int, threads: int, durability: str,
                     warmup: int) -> dict[str, Any]:
        pool = await self._pool(concurrency)
        try:
            saver = AsyncPostgresSaver(pool)
            app = linear_graph(self.nodes, saver)
            tag = f"{self.run_id}-lin-{durability}-{concurrency}"

            async def body(t: str) -> None:
                out = await app.ainvoke({"trace": [], "count": 0}, _cfg(t),
                                        durability=durability)
                assert out["count"] == self.nodes, out

            wall, lat, cpu, pg, busy = await _measured(concurrency, tag, warmup, threads, body)
        finally:
            await pool.close()
        steps = threads * self.nodes
        return {"concurrency": concurrency, "pool_size": concurrency, "durability": durability,
                "threads": threads, "steps": steps, "wall_s": round(wall, 3),
                "steps_per_s": round(steps / wall, 1), "process_cpu_s": round(cpu, 3),
                "process_cpu_us_per_step": round(1e6 * cpu / steps, 1),
                "postgres_cpu_us_per_step (all backends)": round(1e6 * pg / steps, 1),
                "machine_cores_busy": round(busy / wall, 2),
                "other_processes_cores": round(max(0.0, busy - cpu - pg) / wall, 2),
                "thread_latency_ms": _pct(lat)}

    async def hitl(self, concurrency: int, threads: int, style: str,
                   warmup: int) -> dict[str, Any]:
        pool = await self._pool(concurrency)
        try:
            saver = AsyncPostgresSaver(pool)
            app = hitl_graph(saver, dynamic=style == "dynamic")
            tag = f"{self.run_id}-hitl-{style}-{concurrency}"
            decision = {"approved": True}

            async def body(t: str) -> None:
                await app.ainvoke({"request": f"refund {t}", "audit": []}, _cfg(t),
                                  durability="sync")
                snap = await app.aget_state(_cfg(t))
                assert snap.next == ("review",), snap.next
                if style == "dynamic":
                    out = await app.ainvoke(Command(resume=decision), _cfg(t),
                                            durability="sync")
                else:
                    await app.aupdate_state(_cfg(t), {"decision": decision})
                    out = await app.ainvoke(None, _cfg(t), durability="sync")
                assert out.get("sent"), out

            wall, lat, cpu, pg, busy = await _measured(concurrency, tag, warmup, threads, body)
        finally:
            await pool.close()
        return {"style": {"static": "interrupt_before=['review'] + aupdate_state + "
                                    "ainvoke(None)",
                          "dynamic": "interrupt() in review + ainvoke(Command(resume=...))"
                          }[style],
                "concurrency": concurrency, "durability": "sync", "round_trips": threads,
                "wall_s": round(wall, 3), "round_trips_per_s": round(threads / wall, 1),
                "process_cpu_s": round(cpu, 3), "postgres_cpu_s (all backends)": round(pg, 3),
                "machine_cores_busy": round(busy / wall, 2),
                "other_processes_cores": round(max(0.0, busy - cpu - pg) / wall, 2),
                "round_trip_latency_ms (start + get_state + resume)": _pct(lat)}


async def run(a: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import version

    peer = Peer(a.database, a.nodes)
    setup = await peer._pool(1)
    try:
        await AsyncPostgresSaver(setup).setup()
    finally:
        await setup.close()
    linear = []
    for c in a.concurrency:
        print(f"[peer] linear, concurrency {c}", file=sys.stderr, flush=True)
        linear.append(await peer.linear(c, a.threads, "sync", a.warmup))
    best = max(linear, key=lambda r: r["steps_per_s"])
    print(f"[peer] linear durability=async at {best['concurrency']}", file=sys.stderr, flush=True)
    async_ref = await peer.linear(best["concurrency"], a.threads, "async", a.warmup)
    hitl: list[dict[str, Any]] = []
    for c in a.concurrency:
        for style in ("static", "dynamic"):
            print(f"[peer] HITL {style} at {c}", file=sys.stderr, flush=True)
            hitl.append(await peer.hitl(c, a.hitl, style, a.warmup))
    best_hitl = max(hitl, key=lambda r: r["round_trips_per_s"])
    return {
        "setup": "one asyncio process; AsyncPostgresSaver on an AsyncConnectionPool "
                 "(size = concurrency, autocommit, prepare_threshold=0, dict_row); "
                 "ainvoke under an asyncio.Semaphore(concurrency); durability='sync'",
        "linear_by_concurrency": linear,
        "linear_best": {"concurrency": best["concurrency"], "steps_per_s": best["steps_per_s"]},
        "linear_async_durability_reference": async_ref,
        "hitl_by_concurrency_and_style": hitl,
        "hitl_best": {"style": best_hitl["style"], "concurrency": best_hitl["concurrency"],
                      "round_trips_per_s": best_hitl["round_trips_per_s"]},
        "versions": {d: version(d) for d in ("langgraph", "langgraph-checkpoint",
                                             "langgraph-checkpoint-postgres", "psycopg",
                                             "psycopg-pool")},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database", required=True)
    p.add_argument("--threads", type=int, default=400)
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                   default=[8, 16, 32])
    p.add_argument("--hitl", type=int, default=200)
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--warmup", type=int, default=8)
    a = p.parse_args()
    doc = asyncio.run(run(a))
    sys.stdout.write(json.dumps(doc) + "\n")


if __name__ == "__main__":
    main()
