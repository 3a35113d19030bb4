"""The Amber side's surroundings in bench/inline.py: a fresh stack, and cold `amber resume`s.

AmberStack gives each run a fresh topic prefix and database with `amber
projector` running; cold_starts times new `amber resume` processes from exec
to their first Kafka request (hooks in bench/_inline/cold.py).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._inline.common import (
    AMBER,
    PY,
    ROOT,
    create_database,
    delete_topics,
    drop_database,
    fresh_name,
    kafka_bootstrap,
)
from tests.processes import spawn, terminate

COLD_GRAPH = "examples.email_approval:graph"
COLD_SCRIPT = str(ROOT / "bench" / "_inline" / "cold.py")


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --- Amber --------------------------------------------------------------------------------
class AmberStack:
    """A fresh topic prefix + database, migrated, with `amber projector` running."""

    def __init__(self, workdir: Path) -> None:
        self.db = fresh_name("amber_bench")
        self.prefix = fresh_name("amber_bench", "-")
        self.workdir = workdir
        self.projector: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> AmberStack:
        url = create_database(self.db)
        self.env = {**os.environ, "AMBER_DATABASE_URL": url, "AMBER_TOPIC_PREFIX": self.prefix,
                    "AMBER_KAFKA_BOOTSTRAP": kafka_bootstrap(),
                    "AMBER_OUTBOX_DIR": str(self.workdir / "outbox")}
        self.env.pop("AMBER_LLM_URL", None)
        say(f"Amber: database {self.db}, topic {self.prefix}.events")
        try:
            subprocess.run([AMBER, "db", "migrate"], env=self.env, cwd=ROOT, check=True,
                           capture_output=True)
            self._ensure_topic()
            log = (self.workdir / "projector.log").open("wb")
            self.projector = spawn([AMBER, "projector"], env=self.env, cwd=ROOT,
                                              stdout=log, stderr=subprocess.STDOUT)
            self._await_projector(url, deadline=time.monotonic() + 60)
        except BaseException:  # what was created is removed even when starting fails
            self.__exit__()
            raise
        return self

    def _await_projector(self, url: str, *, deadline: float) -> None:
        """Until the projector holds its group lock: it is then reading the log."""
        import psycopg

        from projector.migrations import LOCK_CLASS_GROUPS

        assert self.projector is not None
        with psycopg.connect(url, autocommit=True) as conn:
            while not conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                   "AND granted AND classid = %s::oid AND database = "
                                   "(SELECT oid FROM pg_database WHERE datname = "
                                   "current_database())", (LOCK_CLASS_GROUPS,)).fetchone()[0]:
                if self.projector.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"amber projector did not start (exit {self.projector.poll()}): "
                        f"{(self.workdir / 'projector.log').read_text()[-2000:]}")
                time.sleep(0.05)

    def _ensure_topic(self) -> None:
        from consumers.checkpointer import event_log
        from engine.settings import Settings

        log = event_log(Settings.from_env(self.env))  # the client AMBER_KAFKA_CLIENT names
        log.ensure_topic()
        log.close()

    def __exit__(self, *exc: object) -> None:
        if self.projector is not None:
            terminate([self.projector])
        delete_topics(kafka_bootstrap(), [f"{self.prefix}.events"])
        drop_database(self.db)


def cold_starts(stack: AmberStack, threads: list[str], workdir: Path) -> dict[str, Any]:
    """Time `amber resume` as a fresh process; the last thread is run with -X importtime."""
    runs = []
    value = json.dumps({"approved": True})
    timed, console, traced = threads[:-2], threads[-2], threads[-1]
    for thread in timed:
        marks_path = workdir / f"marks-{thread}.json"
        env = {**stack.env, "AMBER_BENCH_MARKS": str(marks_path)}
        t0 = time.time()
        proc = subprocess.run([PY, COLD_SCRIPT, "resume", thread,
                               "--value", value, "--actor", "webhook", "--graph", COLD_GRAPH],
                              env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        t_exit = time.time()
        if proc.returncode != 0:
            raise RuntimeError(f"amber resume {thread} failed: {proc.stderr[-2000:]}")
        status = json.loads(proc.stdout)["status"]
        marks = json.loads(marks_path.read_text())
        runs.append({
            "status": status,
            "exec_to_script_s": round(marks["script_start"] - t0, 4),
            "exec_to_first_kafka_request_s": round(marks["first_kafka_connect"] - t0, 4),
            "cpu_until_first_kafka_request_s": round(marks["first_kafka_connect_cpu"], 4),
            "cpu_until_resume_done_s": round(marks["main_returned_cpu"], 4),
            "exec_to_first_postgres_connect_s": round(marks["first_postgres_connect"] - t0, 4)
            if "first_postgres_connect" in marks else None,
            "exec_to_resume_done_s": round(marks["main_returned"] - t0, 4),
            "exec_to_exit_s": round(t_exit - t0, 4),
        })
    t0 = time.time()
    subprocess.run([AMBER, "resume", console, "--value", value, "--actor", "webhook",
                    "--graph", COLD_GRAPH], env=stack.env, cwd=ROOT, capture_output=True,
                   check=True)
    console_s = time.time() - t0
    keys = [k for k in runs[0] if k.endswith("_s")]

    def agg(fn: Any, key: str) -> float | None:
        values = [r[key] for r in runs if r[key] is not None]
        return round(fn(values), 4) if values else None

    return {
        "command": f"amber resume THREAD --value '{value}' --actor webhook --graph {COLD_GRAPH}",
        "runs": len(runs),
        "median": {k: agg(statistics.median, k) for k in keys},
        "min": {k: agg(min, k) for k in keys},
        "each": runs,
        "console_script_exec_to_exit_s": round(console_s, 4),
        "imports_before_first_kafka_request": import_profile(stack, traced, workdir),
    }


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_profile(stack: AmberStack, thread: str, workdir: Path) -> dict[str, Any]:
    """-X importtime of one cold resume, cut at the first Kafka connect."""
    marks_path = workdir / "marks-importtime.json"
    cut = "### first Kafka connect ###"
    env = {**stack.env, "AMBER_BENCH_MARKS": str(marks_path), "AMBER_BENCH_CUT": cut}
    t0 = time.time()
    proc = subprocess.run([PY, "-X", "importtime", COLD_SCRIPT, "resume",
                           thread, "--value", json.dumps({"approved": True}), "--actor",
                           "webhook", "--graph", COLD_GRAPH],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    marks = json.loads(marks_path.read_text())
    top: list[tuple[int, str]] = []
    total_us = 0
    lines = proc.stderr.splitlines()
    before = lines[:lines.index(cut)] if cut in lines else lines
    for line in before:
        m = _IMPORT_LINE.match(line)
        if not m:
            continue
        cumulative, depth, name = int(m.group(2)), len(m.group(3)), m.group(4)
        if depth == 1:  # imported directly by the command path, not as a dependency
            top.append((cumulative, name))
            total_us += cumulative
    top.sort(reverse=True)
    return {
        "note": "-X importtime inflates times ~10-30%; use for ranking, not absolute values",
        "exec_to_first_kafka_request_s_with_importtime": round(
            marks["first_kafka_connect"] - t0, 4),
        "all_imports_ms": round(total_us / 1000, 1),
        "top_level_imports_ms": [{"module": n, "cumulative_ms": round(c / 1000, 1)}
                                 for c, n in top[:15]],
    }
