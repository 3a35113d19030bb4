"""Helpers shared by the inline benchmark's sides: databases, timing, machine facts.

Every side runs in its own interpreter (see bench/inline.py) and prints one
JSON document; nothing here imports Amber or LangGraph.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import platform
import random
import statistics
import string
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.processes import spawn

ROOT = Path(__file__).resolve().parents[2]  # the repository
PY = sys.executable
AMBER = str(Path(PY).parent / "amber")  # the console script of this environment
DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_DATABASE = "postgresql://amber:amber@127.0.0.1:5432/amber"


def admin_url() -> str:
    """The URL of a database on the stack whose role may CREATE DATABASE."""
    return os.environ.get("AMBER_BENCH_ADMIN_URL") or os.environ.get(
        "AMBER_DATABASE_URL", DEFAULT_DATABASE)


def kafka_bootstrap() -> str:
    return os.environ.get("AMBER_KAFKA_BOOTSTRAP", DEFAULT_KAFKA)


def fresh_name(kind: str, sep: str = "_") -> str:
    """A database (or, with sep="-", topic) name this bench run owns: see claim_run."""
    from tests import scratch

    return scratch.scratch_name(kind, sep)


_lease: Any = None  # held until the process exits


def claim_run() -> None:
    """Hold this run's lease and drop what dead runs, benches or tests, left behind.

    A bench killed before its cleanup leaves a topic of 12 partitions and a
    database or two behind, and a broker full of stale partitions measured
    15-25% slower. The names carry the run's id (fresh_name), so the next bench
    or test session drops them (tests/scratch.py).
    """
    from tests import scratch

    global _lease
    _lease = scratch.Lease(admin_url())
    swept = scratch.sweep(kafka_bootstrap(), admin_url())
    if swept.topics or swept.databases:
        print(f"[bench] dropped leftovers of dead runs: {swept}", file=sys.stderr, flush=True)


def create_database(name: str) -> str:
    """CREATE DATABASE `name` through the admin URL; returns its URL."""
    from tests import scratch

    return scratch.create_database(admin_url(), name)


def drop_database(name: str) -> None:
    import psycopg

    from tests import scratch

    try:  # scratch.drop_database waits out an autovacuum worker for a while
        scratch.drop_database(admin_url(), name)
    except psycopg.errors.InsufficientPrivilege:
        print(f"[bench] could not drop database {name}; drop it by hand", file=sys.stderr,
              flush=True)


def delete_topics(bootstrap: str, topics: list[str], groups: list[str] | None = None) -> None:
    """Delete the topics (and consumer groups, members gone) a bench created; best effort."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            if groups:
                admin.delete_groups(groups)
            admin.delete_topics(topics)
        finally:
            admin.close()
    except Exception as e:  # cleanup never fails a bench: reported, left to do by hand
        print(f"[bench] could not delete {topics} / groups {groups}: {e!r}", file=sys.stderr,
              flush=True)


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    name = fresh_name(prefix)
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)


def percentiles(values: list[float], *, scale: float = 1000, digits: int = 3) -> dict[str, float]:
    """p50/p90/p99/max/mean of non-empty `values`, times `scale` (seconds → ms by default)."""
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(scale * ordered[min(len(ordered) - 1, int(q * len(ordered)))], digits)

    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99),
            "max": round(scale * ordered[-1], digits),
            "mean": round(scale * statistics.fmean(ordered), digits)}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                            "platform": platform.platform(), "machine": platform.machine()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with suppress(OSError):
        info["loadavg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    with suppress(AttributeError, OSError):
        info["sched_affinity"] = len(os.sched_getaffinity(0))
    return info


def versions(*dists: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for d in dists:
        try:
            out[d] = version(d)
        except PackageNotFoundError:
            out[d] = None
    return out


def emit(doc: dict[str, Any]) -> None:
    """The one JSON document a side or the whole benchmark prints on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


# --- CPU of the other processes on this machine ------------------------------------------
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (field 3 on); [] if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK if fields else 0.0


def reaped_cpu_s(pid: int) -> float:
    """cutime + cstime: CPU of the process's children it has reaped."""
    fields = _stat(pid)
    return (int(fields[13]) + int(fields[14])) / TICK if fields else 0.0


def parent_of(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[1]) if fields else -1


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def infra_pids() -> dict[str, list[int]]:
    """Pids of the Kafka broker and of PostgreSQL (Linux /proc; empty elsewhere)."""
    groups: dict[str, list[int]] = {"kafka_broker": [], "postgres": []}
    if not os.path.isdir("/proc"):
        return groups
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        cmd = cmdline(int(entry))
        if "kafka.Kafka" in cmd or ("java" in cmd.split(" ", 1)[0] and "kafka" in cmd):
            groups["kafka_broker"].append(int(entry))
        elif cmd.startswith(("postgres", "/usr/lib/postgresql")):
            groups["postgres"].append(int(entry))
    return groups


def stack_pids(side_pid: int, projector_pid: int | None = None) -> dict[str, list[int]]:
    """Pids of a side process, the projector, the Kafka broker and PostgreSQL."""
    return {"side_process": [side_pid], "projector": [projector_pid] if projector_pid else [],
            **infra_pids()}


CPUSample = dict[str, dict[int, float]]


def cpu_sample(pids: dict[str, list[int]]) -> CPUSample:
    return {g: {p: proc_cpu_s(p) for p in ps} for g, ps in pids.items()}


def cpu_spent(before: CPUSample, after: CPUSample) -> dict[str, float]:
    """CPU seconds per group between two samples (a process present in both)."""
    return {g: sum(max(0.0, cpu - before.get(g, {}).get(pid, cpu)) for pid, cpu in ps.items())
            for g, ps in after.items()}


# --- the side protocol: JSON lines on stdin/stdout ---------------------------------------
def run_items(ids: list[str], body: Callable[[str], None],
              concurrency: int = 1) -> dict[str, Any]:
    """Run `body(id)` for each id, `concurrency` at a time: wall, CPU, latencies.

    With concurrency > 1 the ids run on a thread pool and the caller thread
    only waits, so its CPU (thread_cpu_s) is ~0 and all of it counts as other threads'.
    """
    def timed(item: str) -> float:
        t = time.perf_counter()
        body(item)
        return time.perf_counter() - t

    c0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
    if concurrency <= 1:
        lat = [timed(item) for item in ids]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            lat = list(pool.map(timed, ids))
    return {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
            "thread_cpu_s": time.thread_time() - t0, "lat": lat}


def serve(handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Answer one JSON command per stdin line with one JSON line, until `quit`.

    The protocol keeps the real stdout; anything libraries print goes to stderr.
    """
    import traceback

    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        try:
            reply = {"ok": True, **handle(cmd)}
        except Exception:  # reported to the orchestrator, which stops the run
            reply = {"ok": False, "error": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
    out.close()


class SideProcess:
    """A side (`python -m bench._inline.<module>`) driven command by command."""

    def __init__(self, name: str, module: str, args: list[str], env: dict[str, str],
                 cwd: str, log_path: str) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 — closed in close()
        self.proc = spawn([sys.executable, "-m", module, *args], env=env, cwd=cwd,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                          text=True, bufsize=1)

    def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} side died; log {self.log_path}:\n"
                               f"{self._tail()}")
        reply: dict[str, Any] = json.loads(line)
        if not reply.pop("ok"):
            raise RuntimeError(f"{self.name} side failed on {cmd.get('op')}:\n{reply['error']}")
        return reply

    def _tail(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:  # a stuck side is killed; it is ours
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Totals:
    """Wall time and calls of wrapped methods by label, from any number of threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wall: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.local = threading.local()

    def add(self, label: str, spent: float) -> None:
        with self.lock:
            self.wall[label] += spent
            self.calls[label] += 1

    def wrap(self, obj: Any, name: str, label: str, *, outer: bool = False) -> None:
        """Time obj.name; `outer` calls do not hide the port calls made inside them."""
        inner: Callable[..., Any] = getattr(obj, name)

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if outer:
                t = time.perf_counter()
                try:
                    return inner(*args, **kwargs)
                finally:
                    self.add(label, time.perf_counter() - t)
            depth = getattr(self.local, "depth", 0)
            if depth:  # a port call inside another counts once, in the outer one
                return inner(*args, **kwargs)
            self.local.depth = 1
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.local.depth = 0
                self.add(label, time.perf_counter() - t)

        setattr(obj, name, timed)

    def reset(self) -> None:
        with self.lock:
            self.wall.clear()
            self.calls.clear()

    def take(self) -> dict[str, list[float]]:
        """{label: [wall seconds, calls]} since the last take or reset."""
        with self.lock:
            out = {k: [self.wall[k], float(self.calls[k])] for k in self.wall}
            self.wall.clear()
            self.calls.clear()
        return out


def add_chain(g: Any, nodes: list[tuple[str, Any]], start: str, end: str) -> Any:
    """Add `nodes` to a graph builder (Amber's or LangGraph's) as START → n0 → … → END."""
    for name, fn in nodes:
        g.add_node(name, fn)
    names = [start, *(name for name, _ in nodes), end]
    for a, b in itertools.pairwise(names):
        g.add_edge(a, b)
    return g


CHAT_NODES = 30
MESSAGE_CHARS = 400


def chat_history(messages: int) -> list[dict[str, Any]]:
    """The conversation a chat thread starts with: `messages` of MESSAGE_CHARS each.

    Built once (~30 ms, not the engines' work) and handed out as a fresh list.
    """
    return list(_history(messages))


@functools.cache
def _history(messages: int) -> tuple[dict[str, Any], ...]:
    return tuple({"role": "user" if i % 2 else "assistant", "content": _text(i)}
                 for i in range(messages))


def chat_reply(turn: int) -> dict[str, Any]:
    return {"role": "assistant", "content": _text(-1 - turn)}


@functools.cache
def _words() -> list[str]:
    # built on first use: every bench process imports this module, few chat
    return ["".join(random.Random(n).choices(string.ascii_lowercase, k=3 + n % 7))
            for n in range(2000)]


def _text(seed: int) -> str:
    """Pseudo-random words, the same for the same seed: LZ compresses them about as
    much as prose, so PostgreSQL's TOAST compression is neither helped nor hurt."""
    rng, words, size = random.Random(seed), [], 0
    while size < MESSAGE_CHARS:
        words.append(rng.choice(_words()))
        size += len(words[-1]) + 1
    return " ".join(words)[:MESSAGE_CHARS]


def table_bytes(url: str) -> int:
    """Live bytes of the public schema's tables (indexes and TOAST included).

    VACUUM FULL first: a projection updates each thread's row at every batch,
    and the dead row versions it leaves (reused later, never returned) are no
    part of what is stored.
    """
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM FULL")
        row = conn.execute("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) "
                           "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchone()
    return int(row[0]) if row else 0
