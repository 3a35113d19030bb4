"""`amber worker` end to end on the real stack, beside LangGraph's best concurrent setup.

    eval "$(compose/stack up)"
    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/workers.py > workers.json          # ~1.5-2 min on a quiet machine
    .venv/bin/python bench/workers.py --quick                 # a smaller look, ~40 s
    .venv/bin/python bench/workers.py --amber-src /tmp/copy   # A/B a prototype tree

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
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/workers.py`, sys.path[0] is bench/, where bench/projector.py would
# shadow the projector package: put the repository root there instead.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._inline.common import (  # noqa: E402
    create_database,
    drop_database,
    fresh_name,
    kafka_bootstrap,
    machine,
    versions,
)
from bench._workers.stack import (  # noqa: E402
    API_TOKEN,
    PY,
    CpuMeter,
    Stack,
    all_cpu,
    busiest_others,
    children_cpu_s,
    infra_groups,
    say,
    started_events,
)

LINEAR = "bench._workers.graphs:linear"
HITL = "bench._workers.graphs:hitl"
TARGETS = {"steps_per_s_2_workers": 5000, "hitl_ratio_vs_peer": 3.0, "resume_p50_ms": 50}
EVENTS_PER_LINEAR_THREAD = 12  # ThreadStarted + 10 NodeCompleted + ThreadCompleted
EVENTS_PER_HITL_THREAD = 7  # Started, draft, Interrupted, Decision, review, send, Completed


def pct(values: list[float], scale: float = 1.0) -> dict[str, float] | None:
    if not values:
        return None
    s = sorted(values)

    def pick(q: float) -> float:
        return round(scale * s[min(len(s) - 1, int(q * len(s)))], 2)

    return {"n": len(s), "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99),
            "max": round(scale * s[-1], 2), "mean": round(scale * statistics.fmean(s), 2)}


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
        self.lag_samples: list[tuple[float, int]] = []

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
                self.lag_samples.append((now, lag))
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
        "workers": workers, "threads": args.threads, "nodes_per_thread": 10,
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
    steps = args.threads * 10
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


# --- 2 + 3. HITL through the HTTP API -------------------------------------------------------
class Api:
    """A tiny keep-alive HTTP client (one connection per calling thread)."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self._local = threading.local()
        self.headers = {"Authorization": f"Bearer {API_TOKEN}",
                        "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port,
                                                                 timeout=60)
        data = None if body is None else json.dumps(body).encode()
        t = time.perf_counter()
        try:
            conn.request(method, path, body=data, headers=self.headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self._local.conn = None
            conn.close()
            raise
        return resp.status, (json.loads(raw) if raw else None), time.perf_counter() - t


def hitl_case(args: argparse.Namespace, workdir: Path, *, probe: bool = False,
              round_trips: int | None = None) -> dict[str, Any]:
    from bench._workers.graphs import hitl

    label = "hitl-2w" + ("-probe" if probe else "")
    worker_probe, api_probe = workdir / f"{label}-worker.json", workdir / f"{label}-api.json"
    with Stack(workdir, label, amber_src=args.amber_src) as st:
        ready = ready_workers(st, HITL, 2, hitl, 3, args,  # Started, draft, Interrupted
                              probe_out=worker_probe if probe else None, profiler="none")
        url = st.start_serve(HITL, probe_out=api_probe if probe else None)
        api = Api(url)
        # warm-up: the API, the workers, the projector
        _http_round_trips(st, api, [f"warm-{i}" for i in range(args.warmup)], args)
        time.sleep(0.5)
        if probe:
            for proc in (st.workers[0], st.serve):
                assert proc is not None
                proc.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
        ids = [f"hitl-{i:04d}" for i in range(round_trips or args.hitl)]
        say(f"{label}: {len(ids)} round trips through {url} with 2 workers")
        cpu = CpuMeter(st.cpu_groups())
        cpu.start()
        rt = _http_round_trips(st, api, ids, args)
        rt["machine_cpu_during_run"] = cpu.stop()
        rt["cpu_ms_per_round_trip"] = {g: round(1e3 * v / len(ids), 2) for g, v in
                                       rt["machine_cpu_during_run"]["cpu_s"].items()}
        rows = st.sql("SELECT status, count(*) FROM threads WHERE thread_id LIKE 'hitl-%%' "
                      "GROUP BY status")
        rt["thread_status_in_projection"] = dict(rows)
        rt["rejected_events"] = st.sql("SELECT count(*) FROM rejected_events")[0][0]
        rt["workers_ready"] = ready
        if probe:
            st.stop_workers()
            if st.serve is not None:
                st.serve.send_signal(signal.SIGTERM)
                st.serve.wait(timeout=30)
            rt["probe_worker0"] = _read_json(worker_probe)
            rt["probe_api_wall_by_call"] = _read_json(api_probe)
            return {"hitl_http": rt}
        say(f"resume latency: {args.resume_samples} decisions, one at a time, idle workers")
        lat = _resume_latency(st, api, args)
    return {"hitl_http": rt, "resume_latency": lat}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _http_round_trips(st: Stack, api: Api, ids: list[str],
                      args: argparse.Namespace) -> dict[str, Any]:
    """POST /threads for all; decide each once it shows as interrupted; until completed."""
    watch = LogWatch(st)
    base = sum(st.ends().values())
    expected = base + EVENTS_PER_HITL_THREAD * len(ids)
    wanted = set(ids)
    start_lat: list[float] = []
    decide_lat: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def note(kind: str, code: int) -> None:
        with lock:
            codes[f"{kind} {code}"] = codes.get(f"{kind} {code}", 0) + 1

    def start(tid: str) -> None:
        body = {"graph": "bench_workers_hitl", "thread_id": tid,
                "input": {"request": f"refund {tid}"}}
        for _ in range(50):
            code, _, took = api.call("POST", "/threads", body)
            note("start", code)
            if code == 202:
                start_lat.append(took)
                return
            if code != 503:
                raise RuntimeError(f"POST /threads {tid}: {code}")
            time.sleep(0.05)

    def decide(tid: str, interrupt_id: str) -> None:
        body = {"value": {"approved": True}, "interrupt_id": interrupt_id}
        for _ in range(50):
            code, _, took = api.call("POST", f"/threads/{tid}/decisions", body)
            note("decide", code)
            if code == 202:
                decide_lat.append(took)
                return
            if code != 503:
                raise RuntimeError(f"POST /threads/{tid}/decisions: {code}")
            time.sleep(0.05)

    decided: set[str] = set()
    list_lat: list[float] = []
    pool = ThreadPoolExecutor(args.http_concurrency)
    futures = []
    t0 = time.perf_counter()
    futures += [pool.submit(start, t) for t in ids]
    deadline = t0 + args.timeout_s
    t_end = None
    while t_end is None:
        code, page, took = api.call("GET", "/threads?status=interrupted&limit=1000")
        list_lat.append(took)
        if code == 200:
            for th in page["threads"]:
                tid = th["thread_id"]
                if tid in wanted and tid not in decided and th.get("interrupt"):
                    decided.add(tid)
                    futures.append(pool.submit(decide, tid, th["interrupt"]["id"]))
        for f in [f for f in futures if f.done()]:
            f.result()  # raise a failed request here
        ends = st.ends()
        lag = st.projector_lag(ends)
        watch.peak_lag = max(watch.peak_lag, lag)
        poll_until = time.perf_counter() + args.list_every_s
        while t_end is None and time.perf_counter() < poll_until:
            if sum(st.ends().values()) >= expected:
                t_end = time.perf_counter()
            else:
                time.sleep(0.01)
        if time.perf_counter() > deadline:
            raise RuntimeError(f"HITL not done after {args.timeout_s}s: decided {len(decided)}"
                               f"\n{st.log_tail('serve')}\n{st.log_tail('worker0')}")
    pool.shutdown(wait=True)
    for f in futures:
        f.result()
    wall = t_end - t0
    return {"round_trips": len(ids), "wall_s": round(wall, 3),
            "round_trips_per_s": round(len(ids) / wall, 1),
            "client": f"{args.http_concurrency} keep-alive connections (http.client), "
                      f"GET /threads?status=interrupted every {args.list_every_s}s",
            "post_threads_ms": pct(start_lat, 1000),
            "post_decisions_ms": pct(decide_lat, 1000),
            "get_threads_interrupted_ms": pct(list_lat, 1000),
            "http_status_counts": codes,
            "projector_lag_events_peak_sampled": watch.peak_lag}


def _resume_latency(st: Stack, api: Api, args: argparse.Namespace) -> dict[str, Any]:
    import psycopg

    n = args.resume_samples
    ids = [f"lat-{i:04d}" for i in range(n)]
    with ThreadPoolExecutor(8) as pool:
        for tid in ids:
            pool.submit(api.call, "POST", "/threads",
                        {"graph": "bench_workers_hitl", "thread_id": tid, "input": {}})
    dsn = st.env["AMBER_DATABASE_URL"]
    post_ms: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while conn.execute("SELECT count(*) FROM threads WHERE thread_id LIKE 'lat-%%' AND "
                           "status = 'interrupted'").fetchone()[0] < n:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise RuntimeError("resume-latency threads did not all reach their interrupt")
            time.sleep(0.05)
        time.sleep(1.0)  # workers idle
        for tid in ids:
            row = conn.execute("SELECT interrupt_id FROM threads WHERE thread_id = %s",
                               (tid,)).fetchone()
            code, _, took = api.call("POST", f"/threads/{tid}/decisions",
                                     {"value": {"approved": True},
                                      "interrupt_id": row[0] if row else None})
            if code != 202:
                raise RuntimeError(f"decision on {tid}: HTTP {code}")
            post_ms.append(took)
            until = time.monotonic() + 10
            while conn.execute("SELECT status FROM threads WHERE thread_id = %s",
                               (tid,)).fetchone()[0] != "completed":  # type: ignore[index]
                if time.monotonic() > until:
                    raise RuntimeError(f"{tid} did not complete after its decision")
                time.sleep(0.005)
            time.sleep(args.resume_gap_s)  # workers idle again before the next decision
        rows = conn.execute(
            "SELECT d.thread_id, d.occurred_at, (t.state->>'review_started_us')::bigint, "
            "r.occurred_at FROM checkpoints d JOIN threads t USING (thread_id) "
            "JOIN checkpoints r ON r.thread_id = d.thread_id AND r.seq = d.seq + 1 "
            "WHERE d.thread_id LIKE 'lat-%%' AND d.type = 'DecisionRecorded'").fetchall()
    to_start = [(started - decided) / 1e6 for _, decided, started, _ in rows]
    to_completed = [(done - decided) / 1e6 for _, decided, _, done in rows]
    p = pct(to_start, 1000)
    return {"samples": len(rows),
            "decision_appended_to_next_node_started_ms": p,
            "decision_appended_to_worker_step_clock_ms (NodeCompleted.occurred_at, read before "
            "the node runs)": pct(to_completed, 1000),
            "post_decision_http_ms": pct(post_ms, 1000),
            "method": "one decision at a time through POST /threads/{id}/decisions, the "
                      f"next only after the thread completed + {args.resume_gap_s}s idle; "
                      "latency = review_started_us (time.time() read by the review node as "
                      "its first statement, stored in the state) - DecisionRecorded."
                      "occurred_at (drafted by the API just before its append)",
            "target_p50_ms": TARGETS["resume_p50_ms"],
            "p50_met": p is not None and p["p50"] <= TARGETS["resume_p50_ms"]}


# --- 4. the LangGraph peer -----------------------------------------------------------------
def peer_case(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    name = fresh_name("lg_bench_workers")
    url = create_database(name)
    say(f"LangGraph peer: database {name}")
    try:
        log = (workdir / "peer.log").open("wb")
        cpu = CpuMeter({"peer (reaped child)": children_cpu_s, **infra_groups()})
        cpu.start()
        proc = subprocess.Popen(
            [PY, "-m", "bench._workers.peer", "--database", url, "--threads",
             str(args.peer_threads), "--concurrency", args.peer_concurrency,
             "--hitl", str(args.hitl), "--warmup", str(min(args.warmup, 8))],
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
