"""`amber worker` end to end on the real stack, beside LangGraph's best concurrent setup.

    eval "$(compose/stack up)"
    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m bench.workers > workers.json          # ~1.5-2 min on a quiet machine
    .venv/bin/python -m bench.workers --quick                 # a smaller look, ~40 s
    .venv/bin/python -m bench.workers --amber-src /tmp/copy   # A/B a prototype tree

Prints one JSON document on stdout (progress on stderr):

1. linear: steps/s of a 10-node linear graph over 1,000 concurrent worker-mode
   threads, with 1 and with 2 `amber worker` processes and `amber projector`
   running. The workers are started and joined first (group Stable, a warm-up
   batch run through), then the 1,000 ThreadStarted events go out in one
   pipelined append: the clock runs from that append until the log holds
   every thread's ThreadCompleted (end offsets polled every 40 ms), cross-
   checked against the projection afterwards. --rounds (5) rounds per worker
   count on one stack; the median round is compared. Projector lag is sampled
   every ~100 ms (peak, at the end, time to drain) and `amber status --json`
   is taken after the last round. CPU per step is reported per process group,
   with what other processes on the machine used meanwhile.
2. hitl_http: HITL round trips/s through `amber serve` with 2 workers: POST
   /threads for every thread (16 client connections), GET
   /threads?status=interrupted every 100 ms, POST /threads/{id}/decisions for
   each newly interrupted one, until the log holds every ThreadCompleted.
3. resume_latency: idle workers; one decision at a time through the API; the
   latency is DecisionRecorded.occurred_at (drafted just before its append)
   → the wall clock the `review` node reads as its first statement, both
   read back from the projection (same machine, same clock).
4. peer: LangGraph in one asyncio process with AsyncPostgresSaver on a pool,
   concurrency 8/16/32, same graphs, durability sync; linear steps/s and HITL
   round trips/s (both resume styles) at each; the best of each is compared.
5. profile (skip with --no-profile): a 1-worker linear round with the worker
   under bench/_workers/probe.py (loop phases + pyinstrument), and a HITL run
   with bench/_workers/probe_api.py (wall time per port call and commands-gate
   wait inside `amber serve`) and a probed worker, to say what limits them.

Each case gets a fresh topic prefix and database, dropped afterwards, as are
the worker consumer groups (by exact name). The machine's load average is
checked first: above --max-load the bench waits (polling each minute, up to
--load-wait-s) for a quieter moment and reports what it saw.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._inline.common import (
    PY,
    ROOT,
    claim_run,
    create_database,
    drop_database,
    fresh_name,
    kafka_bootstrap,
    machine,
    versions,
)
from bench._workers.graphs import NODES
from bench._workers.hitl import hitl_case
from bench._workers.runs import (
    EVENTS_PER_LINEAR_THREAD,
    LINEAR,
    TARGETS,
    LogWatch,
    ready_workers,
    wait_for_quiet,
)
from bench._workers.stack import (
    CpuMeter,
    Stack,
    all_cpu,
    busiest_others,
    children_cpu_s,
    infra_groups,
    say,
    started_events,
)
from tests.processes import spawn


# --- 1. linear ----------------------------------------------------------------------------
def linear_case(args: argparse.Namespace, workdir: Path, workers: int, *,
                probe: bool = False) -> dict[str, Any]:
    """`args.rounds` rounds (1 when probed) on one stack; the median round is compared."""
    from bench._workers.graphs import linear

    label = f"linear-{workers}w" + ("-probe" if probe else "")
    probe_out = workdir / f"{label}-probe.json"
    rounds = []
    with Stack(workdir, label, amber_src=args.amber_src) as st:
        ready = ready_workers(st, LINEAR, workers, linear, EVENTS_PER_LINEAR_THREAD, args,
                              probe_out=probe_out if probe else None)
        if probe:
            st.workers[0].send_signal(signal.SIGUSR1)
            time.sleep(0.2)
        for r in range(1 if probe else args.rounds):
            rounds.append(_linear_round(st, args, linear, f"{label}-r{r}", workers))
            time.sleep(0.3)  # idle workers between rounds
        status_at_end = st.status_json()
        if probe:
            st.stop_workers()
        rejected = st.sql("SELECT count(*) FROM rejected_events")[0][0]
        dead = st.sql("SELECT count(*) FROM dead_letters")[0][0]
        worker_log_tail = None if all(p.poll() is None for p in st.workers) or probe \
            else st.log_tail("worker0")
    median = sorted(rounds, key=lambda x: x["steps_per_s"])[len(rounds) // 2]
    out: dict[str, Any] = {
        "workers": workers, "threads": args.threads, "nodes_per_thread": NODES,
        "steps_per_s": median["steps_per_s"],
        "steps_per_s_by_round": [x["steps_per_s"] for x in rounds],
        "median_round": median,
        "other_rounds": [x for x in rounds if x is not median],
        "rejected_events": rejected, "dead_letters": dead,
        "amber_status_json_after_last_round": status_at_end,
        "workers_ready": ready,
    }
    if worker_log_tail:
        out["worker_log_tail"] = worker_log_tail
    if probe and probe_out.exists():
        out["probe"] = json.loads(probe_out.read_text())
    return out


def _linear_round(st: Stack, args: argparse.Namespace, linear: Any, label: str,
                  workers: int) -> dict[str, Any]:
    ids = [f"{label}-t{i:05d}" for i in range(args.threads)]
    events = started_events(linear, ids, {}, actor="bench", clock=st.cp.clock)
    base = sum(st.ends().values())
    expected = base + EVENTS_PER_LINEAR_THREAD * len(ids)
    watch = LogWatch(st)
    cpu = CpuMeter(st.cpu_groups())
    say(f"{label}: releasing {len(ids)} threads to {workers} worker(s)")
    cpu.start()
    t0 = time.perf_counter()
    t0_wall_us = time.time_ns() // 1000
    st.cp.log.append(events)
    t_released = time.perf_counter()
    t_end, ends = watch.until(expected, args.timeout_s)
    machine_cpu = cpu.stop()
    lag_at_end = st.projector_lag(ends)
    drain_s = (time.perf_counter() - t_end) + watch.drain(ends)
    rows = st.sql("SELECT status, count(*), max(updated_at_us) FROM threads "
                  "WHERE thread_id LIKE %s GROUP BY status", (f"{label}-t%",))
    by_status = {s: n for s, n, _ in rows}
    last_completed_us = max((m for s, _, m in rows if s == "completed"), default=None)
    wall = t_end - t0
    steps = args.threads * NODES
    return {
        "steps (nodes executed)": steps,
        "events_appended_by_workers": args.threads * (EVENTS_PER_LINEAR_THREAD - 1),
        "wall_s": round(wall, 3),
        "steps_per_s": round(steps / wall, 1),
        "events_per_s (workers' appends)": round(
            args.threads * (EVENTS_PER_LINEAR_THREAD - 1) / wall, 1),
        "start_append_s (the ThreadStarted flush; inside wall_s)": round(t_released - t0, 3),
        "wall_s_to_last_ThreadCompleted_occurred_at (cross-check)":
            round((last_completed_us - t0_wall_us) / 1e6, 3) if last_completed_us else None,
        "thread_status_in_projection": by_status,
        "all_completed": by_status.get("completed", 0) == args.threads,
        "projector_lag_events": {"peak_sampled": watch.peak_lag, "at_end": lag_at_end,
                                 "drain_after_end_s": round(drain_s, 3)},
        "machine_cpu_during_run": machine_cpu,
        "cpu_us_per_step": {g: round(1e6 * v / steps, 1)
                            for g, v in machine_cpu["cpu_s"].items()},
    }


# --- 4. the LangGraph peer -----------------------------------------------------------------
def peer_case(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    name = fresh_name("lg_bench_workers")
    url = create_database(name)
    say(f"LangGraph peer: database {name}")
    try:
        log = (workdir / "peer.log").open("wb")
        cpu = CpuMeter({"peer (reaped child)": children_cpu_s, **infra_groups()})
        cpu.start()
        proc = spawn(
            [PY, "-m", "bench._workers.peer", "--database", url, "--threads",
             str(args.peer_threads), "--concurrency", args.peer_concurrency,
             "--hitl", str(args.hitl), "--warmup", str(min(args.warmup, 8)),
             "--nodes", str(NODES)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, env={**os.environ,
                                                                "PYTHONPATH": str(ROOT)})
        out, _ = proc.communicate(timeout=args.timeout_s * 4)
        log.close()
        if proc.returncode != 0:
            raise RuntimeError(f"peer failed: {(workdir / 'peer.log').read_text()[-3000:]}")
        doc: dict[str, Any] = json.loads(out)
        doc["machine_cpu_whole_peer_run"] = cpu.stop()
        return doc
    finally:
        drop_database(name)


# --- the document ---------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1000, help="linear threads per round")
    p.add_argument("--rounds", type=int, default=5, help="linear rounds per worker count")
    p.add_argument("--workers", default="1,2", help="worker counts of the linear case")
    p.add_argument("--hitl", type=int, default=200, help="HITL round trips (both sides)")
    p.add_argument("--http-concurrency", type=int, default=16)
    p.add_argument("--list-every-s", type=float, default=0.1)
    p.add_argument("--resume-samples", type=int, default=100)
    p.add_argument("--resume-gap-s", type=float, default=0.05)
    p.add_argument("--peer-threads", type=int, default=400)
    p.add_argument("--peer-concurrency", default="8,16,32")
    p.add_argument("--warmup", type=int, default=24)
    p.add_argument("--only", choices=["all", "amber", "peer"], default="all")
    p.add_argument("--no-profile", action="store_true", help="skip the probed worker run")
    p.add_argument("--profiler", choices=["pyinstrument", "cprofile", "none"],
                   default="pyinstrument")
    p.add_argument("--amber-src", default=None,
                   help="run the workers from this source tree (A/B a prototype)")
    p.add_argument("--max-load", type=float, default=2.0)
    p.add_argument("--load-wait-s", type=float, default=900)
    p.add_argument("--timeout-s", type=float, default=120)
    p.add_argument("--warmup-timeout-s", type=float, default=30)
    p.add_argument("--quick", action="store_true",
                   help="300 linear threads, 60 HITL, 30 latency samples, 200 peer threads")
    args = p.parse_args()
    if args.quick:
        args.threads, args.hitl, args.resume_samples, args.peer_threads = 300, 60, 30, 200
    claim_run()
    gate = wait_for_quiet(args.max_load, args.load_wait_s)
    machine_before = machine()
    procs_before = all_cpu()
    t0 = time.perf_counter()
    doc: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="amber-bench-workers-") as tmp:
        workdir = Path(tmp)
        if args.only in ("all", "amber"):
            doc["linear"] = {f"{n}_worker{'s' if n > 1 else ''}":
                             linear_case(args, workdir, n)
                             for n in (int(x) for x in args.workers.split(","))}
            doc.update(hitl_case(args, workdir))
        if args.only in ("all", "peer"):
            doc["peer_langgraph"] = peer_case(args, workdir)
        if args.only in ("all", "amber") and not args.no_profile:
            say("profile: linear, 1 probed worker")
            doc["profile"] = {"linear_1_worker": linear_case(args, workdir, 1, probe=True)}
            say("profile: HITL, probed API + worker")
            doc["profile"]["hitl_http_2_workers"] = hitl_case(
                args, workdir, probe=True, round_trips=max(20, args.hitl // 2))["hitl_http"]
    doc = {"benchmark": "bench/workers.py", "comparison": comparison(doc), **doc}
    doc["params"] = {k: v for k, v in vars(args).items()}
    doc["machine"] = {**machine_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                      "load_gate": gate, "kafka_bootstrap": kafka_bootstrap(),
                      "other_busy_processes_during_bench (>5% of a core)": busiest_others(
                          procs_before, all_cpu(), time.perf_counter() - t0, {os.getpid()})}
    doc["versions"] = versions("amber", "kafka-python", "fastavro", "pydantic", "psycopg",
                               "fastapi", "uvicorn", "langgraph",
                               "langgraph-checkpoint-postgres")
    doc["duration_s"] = round(time.perf_counter() - t0, 1)
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def comparison(doc: dict[str, Any]) -> dict[str, Any]:
    lin = doc.get("linear", {})
    peer = doc.get("peer_langgraph")
    two = lin.get("2_workers", {}).get("steps_per_s")
    out: dict[str, Any] = {
        "steps_per_s": {"amber_1_worker": lin.get("1_worker", {}).get("steps_per_s"),
                        "amber_2_workers": two,
                        "langgraph_best": peer["linear_best"] if peer else None,
                        "target_2_workers": TARGETS["steps_per_s_2_workers"],
                        "met": None if two is None else two >= TARGETS["steps_per_s_2_workers"]},
    }
    hitl = doc.get("hitl_http", {}).get("round_trips_per_s")
    if hitl is not None or peer:
        lg = peer["hitl_best"]["round_trips_per_s"] if peer else None
        ratio = round(hitl / lg, 2) if hitl and lg else None
        out["hitl_round_trips_per_s"] = {
            "amber_http_2_workers": hitl, "langgraph_best": peer["hitl_best"] if peer else None,
            "ratio": ratio, "target_ratio": TARGETS["hitl_ratio_vs_peer"],
            "met": None if ratio is None else ratio >= TARGETS["hitl_ratio_vs_peer"]}
    lat = doc.get("resume_latency")
    if lat:
        q = lat["decision_appended_to_next_node_started_ms"]
        out["resume_latency_ms"] = {"p50": q["p50"] if q else None,
                                    "p99": q["p99"] if q else None,
                                    "target_p50": TARGETS["resume_p50_ms"],
                                    "met": lat["p50_met"]}
    return out


if __name__ == "__main__":
    main()
