"""A fresh Amber stack for one case of bench/workers.py: topic, database, processes.

`Stack` creates a fresh topic prefix and database, runs `amber db migrate`,
starts `amber projector`, and on demand N `amber worker` processes and
`amber serve`. It keeps one in-process checkpointer for the bench itself
(bulk appends, projection reads). On exit it stops only the processes it
started (by pid), deletes its topic and the worker consumer group by exact
name, and drops its database.

`--amber-src DIR` runs the spawned `amber` processes (projector, workers, API)
from another source tree, e.g. a scratch copy with a prototype optimization,
via `python -m consumers`; the bench's own appends and reads stay on this tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench._inline.common import (
    AMBER,
    PY,
    ROOT,
    TICK,
    cmdline,
    create_database,
    delete_topics,
    drop_database,
    fresh_name,
    infra_pids,
    kafka_bootstrap,
    parent_of,
    proc_cpu_s,
    reaped_cpu_s,
)
from tests.processes import spawn, terminate

API_TOKEN = "bench-workers-token"
API_ACTOR = "bench@workers"


def say(msg: str) -> None:
    print(f"[bench/workers] {msg}", file=sys.stderr, flush=True)


# --- CPU of processes, from /proc (the inline bench's readers: both count CPU alike) --------
def postgres_cpu_s() -> float:
    """Every PostgreSQL process alive now, plus what the postmaster reaped (exited backends)."""
    pids = infra_pids()["postgres"]
    live = sum(proc_cpu_s(p) for p in pids)
    roots = [p for p in pids if parent_of(p) not in pids]  # the postmaster(s)
    return live + sum(reaped_cpu_s(p) for p in roots)


def children_cpu_s() -> float:
    """CPU of this process's reaped children (e.g. the LangGraph peer once it exited)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def infra_groups() -> dict[str, Callable[[], float]]:
    """The Kafka broker and PostgreSQL (shared with whatever else runs on this machine)."""
    kafka = infra_pids()["kafka_broker"]
    return {"kafka_broker (shared)": lambda: sum(proc_cpu_s(p) for p in kafka),
            "postgres (all backends, shared)": postgres_cpu_s}


def all_cpu() -> dict[int, tuple[float, str]]:
    """CPU seconds and command line of every process (for "who else was busy")."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            out[int(entry)] = (proc_cpu_s(int(entry)), cmdline(int(entry))[:160])
    return out


def busiest_others(before: dict[int, tuple[float, str]], after: dict[int, tuple[float, str]],
                   wall_s: float, exclude: set[int], top: int = 6) -> list[dict[str, Any]]:
    """Processes that existed before and after and were not started by this bench."""
    rows: list[dict[str, Any]] = []
    for pid, (cpu, cmd) in after.items():
        if pid in exclude or pid not in before or parent_of(pid) in exclude:
            continue
        if str(ROOT / "compose") in cmd or cmd.startswith(("postgres", "/usr/lib/postgresql")):
            continue  # this stack's broker and database: measured per case
        spent = cpu - before[pid][0]
        if spent > 0.05 * wall_s:
            rows.append({"pid": pid, "cores": round(spent / wall_s, 2), "cmd": cmd})
    return sorted(rows, key=lambda r: -float(r["cores"]))[:top]


def pids_cpu(pids: list[int]) -> Callable[[], float]:
    return lambda: sum(proc_cpu_s(p) for p in pids)


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


class CpuMeter:
    """CPU seconds spent by groups of processes between `start()` and `stop()`.

    A group is a function returning its CPU seconds so far. Whatever else kept the
    machine busy in the meantime (other people's tests) is reported beside them.
    """

    def __init__(self, groups: dict[str, Callable[[], float]]) -> None:
        self.groups = groups
        self._before: dict[str, float] = {}
        self._t0 = self._busy0 = 0.0

    def start(self) -> None:
        self._before = {g: f() for g, f in self.groups.items()}
        self._busy0 = machine_busy_s()
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._t0
        busy = machine_busy_s() - self._busy0
        spent = {g: round(max(0.0, f() - self._before[g]), 3) for g, f in self.groups.items()}
        total = sum(spent.values())
        return {"wall_s": round(wall, 3), "cpu_s": spent, "cpu_s_total": round(total, 3),
                "cores_busy": round(total / wall, 2) if wall else None,
                "machine_cores_busy (all processes)": round(busy / wall, 2) if wall else None,
                "other_processes_cores (not this bench)":
                    round(max(0.0, busy - total) / wall, 2) if wall else None}


# --- the stack ----------------------------------------------------------------------------
class Stack:
    """Fresh prefix + database, migrated, with `amber projector` running."""

    def __init__(self, workdir: Path, label: str, *, partitions: int = 12,
                 amber_src: str | None = None) -> None:
        self.label = label
        self.workdir = workdir
        self.db = fresh_name("amber_bench_workers")
        self.prefix = fresh_name("amber_bench_workers", "-")
        self.partitions = partitions
        self.amber_src = amber_src
        self.env: dict[str, str] = {}
        self.projector: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.serve: subprocess.Popen[bytes] | None = None
        self.serve_url = ""
        self.groups: set[str] = set()
        self.cp: Any = None

    # -- lifecycle --
    def __enter__(self) -> Stack:
        url = create_database(self.db)
        self.env = {**os.environ, "AMBER_DATABASE_URL": url, "AMBER_TOPIC_PREFIX": self.prefix,
                    "AMBER_KAFKA_BOOTSTRAP": kafka_bootstrap(),
                    "AMBER_PARTITIONS": str(self.partitions),
                    "AMBER_API_TOKENS": f"{API_TOKEN}={API_ACTOR}",
                    "AMBER_OUTBOX_DIR": str(self.workdir / "outbox"),
                    "PYTHONPATH": str(ROOT)}
        for name in ("AMBER_LLM_URL", "AMBER_FAULT", "AMBER_WEBHOOK_SECRET", "AMBER_GRAPHS"):
            self.env.pop(name, None)
        say(f"{self.label}: database {self.db}, topic {self.prefix}.events")
        try:
            subprocess.run([AMBER, "db", "migrate"], env=self.env, cwd=ROOT, check=True,
                           capture_output=True)
            from consumers.checkpointer import AmberCheckpointer
            from engine.settings import Settings

            self.cp = AmberCheckpointer.from_settings(Settings.from_env(self.env), role="bench")
            self.projector = self._spawn("projector", self._amber("projector"))
        except BaseException:
            self.__exit__()
            raise
        return self

    def _amber(self, *args: str) -> list[str]:
        """An `amber` command line; from --amber-src's tree if one is given."""
        if self.amber_src:
            return [PY, "-m", "consumers", *args]
        return [AMBER, *args]

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None
               ) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{self.label}-{name}.log").open("wb")
        env = dict(env or self.env)
        if self.amber_src:
            env["PYTHONPATH"] = f"{self.amber_src}{os.pathsep}{ROOT}"
        # `python -m` puts the working directory first on sys.path: run from the tree used
        proc = spawn(argv, env=env, cwd=self.amber_src or ROOT, stdout=log,
                     stderr=subprocess.STDOUT)
        log.close()
        return proc

    def log_tail(self, name: str) -> str:
        path = self.workdir / f"{self.label}-{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        terminate([*self.workers, *([self.serve] if self.serve else []),
                   *([self.projector] if self.projector else [])])
        if self.cp is not None:
            with contextlib.suppress(Exception):
                self.cp.close()
        # the worker groups, by exact name, once their members left
        delete_topics(kafka_bootstrap(), [f"{self.prefix}.events"], sorted(self.groups))
        try:
            drop_database(self.db)
        except Exception as e:
            say(f"could not drop database {self.db}: {e!r}")

    # -- processes --
    def start_workers(self, graph_ref: str, n: int, *, probe_out: Path | None = None,
                      profiler: str = "pyinstrument") -> list[subprocess.Popen[bytes]]:
        """N workers of `graph_ref`; the first runs under the probe if `probe_out` is set."""
        from consumers.graphs import load_graph
        from consumers.worker import group_id_for

        g = load_graph(graph_ref)
        self.groups.add(group_id_for({g.name: g}, self.prefix))
        for i in range(n):
            if probe_out is not None and i == 0:
                argv = [PY, "-m", "bench._workers.probe", "--out", str(probe_out),
                        "--profiler", profiler, graph_ref]
            else:
                argv = self._amber("worker", graph_ref)
            self.workers.append(self._spawn(f"worker{len(self.workers)}", argv))
        return self.workers[-n:]

    def stop_workers(self) -> None:
        terminate(self.workers)

    def wait_group(self, members: int, timeout_s: float = 60.0) -> float:
        """Block until the worker group is Stable with `members` members; seconds waited."""
        from kafka import KafkaAdminClient

        (group,) = self.groups
        t0 = time.monotonic()
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap(), client_id="bench-workers")
        try:
            while True:
                for proc in self.workers:
                    if proc.poll() is not None:
                        raise RuntimeError(f"a worker exited {proc.returncode}:\n"
                                           f"{self.log_tail('worker0')}")
                try:
                    d = admin.describe_groups([group]).get(group, {})
                except Exception:  # the group does not exist yet
                    d = {}
                members_ = d.get("members", [])
                assigned = {p for m in members_ for a in
                            (m.get("member_assignment") or {}).get("assigned_partitions", [])
                            for p in a.get("partitions", [])}
                if d.get("group_state") == "Stable" and len(members_) == members \
                        and len(assigned) == self.partitions:
                    return time.monotonic() - t0
                if time.monotonic() - t0 > timeout_s:
                    raise RuntimeError(f"worker group {group} not stable with {members} "
                                       f"members after {timeout_s}s: {d}")
                time.sleep(0.2)
        finally:
            admin.close()

    def start_serve(self, graph_ref: str, *, probe_out: Path | None = None) -> str:
        """`amber serve` on a free port (or bench/_workers/probe_api.py); its URL once up."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if probe_out is not None:
            argv = [PY, "-m", "bench._workers.probe_api", "--out", str(probe_out), "--port",
                    str(port), "--graph", graph_ref]
        else:
            argv = self._amber("serve", "--port", str(port), "--graph", graph_ref)
        self.serve = self._spawn("serve", argv)
        self.serve_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if self.serve.poll() is not None:
                raise RuntimeError(f"amber serve exited: {self.log_tail('serve')}")
            try:
                with urllib.request.urlopen(f"{self.serve_url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self.serve_url
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("amber serve did not answer /healthz within 60 s")
            time.sleep(0.1)

    def cpu_groups(self) -> dict[str, Callable[[], float]]:
        return {"workers": pids_cpu([p.pid for p in self.workers if p.poll() is None]),
                "projector": pids_cpu([self.projector.pid] if self.projector else []),
                "api": pids_cpu([self.serve.pid] if self.serve else []),
                "bench": lambda: time.process_time(), **infra_groups()}

    # -- reads --
    def ends(self) -> dict[int, int]:
        return dict(self.cp.log.end_offsets())

    def projector_lag(self, ends: dict[int, int]) -> int:
        done = self.cp.projection.projected_offsets()
        return sum(max(0, e - done.get(p, 0)) for p, e in ends.items())

    def sql(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.env["AMBER_DATABASE_URL"], autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def status_json(self) -> dict[str, Any]:
        """`amber status --json`, as an operator would run it."""
        proc = subprocess.run([AMBER, "status", "--json"], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, check=False, timeout=60)
        if proc.returncode != 0:
            return {"error": proc.stderr[-500:]}
        doc: dict[str, Any] = json.loads(proc.stdout)
        doc.pop("end_offsets", None)
        for g in doc.get("groups", []):
            g.pop("lag_by_partition", None)
        return doc


# --- thread starts in bulk ------------------------------------------------------------------
def started_events(graph: Any, ids: Iterable[str], input: dict[str, Any], *, actor: str,
                   clock: Any) -> list[Any]:
    """ThreadStarted events in worker mode, as ThreadService.start seals them.

    ThreadService.start also checks that the thread does not exist and reads its
    append back (first writer wins); fresh ids make both moot, and skipping them
    lets 1,000 starts go out in one pipelined append.
    """
    from engine import step
    from engine.chain import GENESIS_HASH, Draft, seal
    from engine.events import EventType

    ops, state = graph.schema.initial(input)
    first = step.first_node(graph, graph.schema.load(state, node="__start__"))
    return [seal(Draft(thread_id=t, seq=0, type=EventType.THREAD_STARTED, node=None,
                       occurred_at=clock(), graph=graph.ref, delta=ops, state_after=state,
                       with_snapshot=True, actor=actor, route={"next": first}, mode="worker"),
                 prev_hash=GENESIS_HASH) for t in ids]
