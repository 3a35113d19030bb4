"""bench/workers.py cases 2 and 3: HITL round trips through `amber serve`, resume latency."""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench._workers.runs import (
    EVENTS_PER_HITL_THREAD,
    HITL,
    TARGETS,
    LogWatch,
    pct,
    ready_workers,
)
from bench._workers.stack import (
    API_TOKEN,
    CpuMeter,
    Stack,
    say,
)


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

    def post(kind: str, path: str, body: dict[str, Any], lat: list[float]) -> None:
        """POST until accepted: 503 (projection behind) is retried, anything else fails."""
        for _ in range(50):
            code, _, took = api.call("POST", path, body)
            note(kind, code)
            if code == 202:
                lat.append(took)
                return
            if code != 503:
                raise RuntimeError(f"POST {path}: {code}")
            time.sleep(0.05)

    def start(tid: str) -> None:
        post("start", "/threads", {"graph": "bench_workers_hitl", "thread_id": tid,
                                   "input": {"request": f"refund {tid}"}}, start_lat)

    def decide(tid: str, interrupt_id: str) -> None:
        post("decide", f"/threads/{tid}/decisions",
             {"value": {"approved": True}, "interrupt_id": interrupt_id}, decide_lat)

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
            "post_threads_ms": pct(start_lat),
            "post_decisions_ms": pct(decide_lat),
            "get_threads_interrupted_ms": pct(list_lat),
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
    p = pct(to_start)
    return {"samples": len(rows),
            "decision_appended_to_next_node_started_ms": p,
            "decision_appended_to_worker_step_clock_ms (NodeCompleted.occurred_at, read before "
            "the node runs)": pct(to_completed),
            "post_decision_http_ms": pct(post_ms),
            "method": "one decision at a time through POST /threads/{id}/decisions, the "
                      f"next only after the thread completed + {args.resume_gap_s}s idle; "
                      "latency = review_started_us (time.time() read by the review node as "
                      "its first statement, stored in the state) - DecisionRecorded."
                      "occurred_at (drafted by the API just before its append)",
            "target_p50_ms": TARGETS["resume_p50_ms"],
            "p50_met": p is not None and p["p50"] <= TARGETS["resume_p50_ms"]}
