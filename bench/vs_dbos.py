"""Inline runner vs DBOS workflows, same machine, same PostgreSQL, same durability; JSON.

    eval "$(compose/stack up)"
    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m bench.vs_dbos [--threads 100 --hitl 200] > vs_dbos.json

The workloads of bench/inline.py, as DBOS writes them (bench/_inline/peer_dbos.py):
a 20-step sequential workflow over `--threads` threads, and the human-approval
round trip (draft → ask → wait for the decision → send) over `--hitl` threads,
phased (every thread runs to its question, then every thread is answered) and
back to back. Both sides run in their own processes and take turns, `--chunk`
threads at a time, so machine noise hits both alike.

It also reports what each side holds while `--hitl` threads wait for a human:
Amber's inline runner returns at the question (nothing runs, nothing is held);
a DBOS workflow blocks a thread in `DBOS.recv` until its answer comes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._inline.amber_stack import AmberStack, say
from bench._inline.common import (
    ROOT,
    SideProcess,
    claim_run,
    create_database,
    drop_database,
    emit,
    fresh_name,
    machine,
    versions,
)
from bench.inline import Lockstep, hitl_cases, paired_ratio, ratio, sequential_case


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    db = fresh_name("dbos_bench")
    sides: dict[str, SideProcess] = {}
    with AmberStack(workdir) as stack:
        try:
            say(f"DBOS: database {db}")
            sides["dbos"] = SideProcess(
                "dbos", "bench._inline.peer_dbos",
                ["--database", create_database(db), "--nodes", str(args.nodes)],
                dict(os.environ), str(ROOT), str(workdir / "dbos.log"))
            sides["amber"] = SideProcess("amber", "bench._inline.amber_side",
                                         ["--nodes", str(args.nodes)], stack.env, str(ROOT),
                                         str(workdir / "amber.log"))
            assert stack.projector is not None
            ls = Lockstep(sides, stack.projector.pid)
            waiting = schedule(args, ls)
            return results(args, ls, waiting,
                           {name: side.call(op="info") for name, side in sides.items()})
        finally:
            for side in sides.values():
                side.close()
            with contextlib.suppress(Exception):
                drop_database(db)


def schedule(args: argparse.Namespace, ls: Lockstep) -> dict[str, Any]:
    both: list[tuple[str, str | None]] = [("amber", None), ("dbos", None)]

    def ids(phase: str) -> Any:
        return lambda side, style, i: f"{phase}-{side}-{i}"

    def held() -> dict[str, Any]:
        say(f"what {args.hitl} waiting threads hold")
        return {"dbos": ls.sides["dbos"].call(op="waiting_cost"),
                "amber": ls.sides["amber"].call(op="info")["threads_in_process"]}

    sequential_case(args, ls, both, ids)
    waiting = hitl_cases(args, ls, both, ids, while_waiting=held)
    return {"while_waiting": waiting, "after": ls.sides["dbos"].call(op="waiting_cost")}


def results(args: argparse.Namespace, ls: Lockstep, waiting: dict[str, Any],
            info: dict[str, Any]) -> dict[str, Any]:
    acc = ls.acc

    def hitl(who: str) -> dict[str, Any]:
        s, r, b = (acc[(who, p)] for p in ("hitl_start", "hitl_resume", "hitl_back_to_back"))
        return {"phased": {"round_trips_per_s": round(s.items / (s.wall + r.wall), 1),
                           "start": s.summary("starts", "threads"),
                           "resume": r.summary("resumes", "threads")},
                "back_to_back": b.summary("round_trips", "threads")}

    sides = {who: {**info[who], "sequential": acc[(who, "sequential")].summary("steps", "steps"),
                   "hitl": hitl(who)} for who in ("amber", "dbos")}
    am, db = sides["amber"], sides["dbos"]
    phased = [acc[(w, "hitl_start")].chunk_rates for w in ("amber", "dbos")]
    held = waiting["while_waiting"]
    return {
        "comparison": {
            "sequential_steps_per_s": {
                "amber": am["sequential"]["steps_per_s"], "dbos": db["sequential"]["steps_per_s"],
                "ratio": ratio(am["sequential"]["steps_per_s"], db["sequential"]["steps_per_s"]),
                "ratio_median_of_chunk_pairs": paired_ratio(
                    acc[("amber", "sequential")].chunk_rates,
                    acc[("dbos", "sequential")].chunk_rates)},
            "hitl_round_trips_per_s": {
                "amber": am["hitl"]["phased"]["round_trips_per_s"],
                "dbos": db["hitl"]["phased"]["round_trips_per_s"],
                "ratio": ratio(am["hitl"]["phased"]["round_trips_per_s"],
                               db["hitl"]["phased"]["round_trips_per_s"]),
                "starts_ratio_median_of_chunk_pairs": paired_ratio(*phased)},
            "hitl_back_to_back_round_trips_per_s": {
                "amber": am["hitl"]["back_to_back"]["round_trips_per_s"],
                "dbos": db["hitl"]["back_to_back"]["round_trips_per_s"],
                "ratio": ratio(am["hitl"]["back_to_back"]["round_trips_per_s"],
                               db["hitl"]["back_to_back"]["round_trips_per_s"])},
            "held_while_threads_wait_for_a_human": {
                "threads_waiting": args.hitl,
                "dbos": {"threads_in_process": held["dbos"]["threads_in_process"],
                         "workflows_blocked_in_recv": held["dbos"]["workflows_waiting"],
                         "database_connections": held["dbos"]["database_connections"]},
                "dbos_after_all_answered": waiting["after"],
                "amber": {"threads_in_process": len(held["amber"]),
                          "runs_in_progress": 0,
                          "note": "start returned at the question; a resume may run in any "
                                  "process, later"}},
        },
        **sides,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=100, help="threads of the sequential case")
    p.add_argument("--nodes", type=int, default=20, help="steps per sequential thread")
    p.add_argument("--hitl", type=int, default=200, help="HITL threads")
    p.add_argument("--warmup", type=int, default=20, help="untimed threads first, per case")
    p.add_argument("--chunk", type=int, default=5, help="threads per turn (HITL: twice that)")
    args = p.parse_args()
    try:
        import dbos  # noqa: F401
    except ImportError:
        sys.exit("DBOS is missing: .venv/bin/pip install -e '.[bench]'")
    claim_run()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="amber-bench-dbos-") as tmp:
        body = run(args, Path(tmp))
    emit({"benchmark": "bench/vs_dbos.py", "params": vars(args),
          "durability": "Amber: each event acked by Kafka (acks=all, idempotent) before the "
                        "next node; DBOS: each step's output committed to PostgreSQL before "
                        "the workflow goes on",
          "machine": machine(), "duration_s": round(time.perf_counter() - t0, 1),
          "versions": versions("amber", "dbos", "kafka-python", "psycopg"), **body})


if __name__ == "__main__":
    main()
