"""The DBOS side of bench/vs_dbos.py: the same workloads as DBOS workflows on PostgreSQL.

Started by bench/vs_dbos.py in its own interpreter and driven over stdin/stdout
(one JSON command per line, see bench._inline.common.serve):

    python -m bench._inline.peer_dbos --database URL [--nodes 20]

Durability matches Amber's: DBOS commits each step's output to its system
database before the workflow goes on. The human step is DBOS's own pattern:
the workflow sets an event ("waiting", the draft) and blocks in
`DBOS.recv("approval")`; the client waits for the event (the question is
asked), later `DBOS.send`s the decision and waits for the result. LISTEN/NOTIFY
wake-ups are left on and their coalescing set to DBOS's minimum (1 ms, default
10 ms), so no wake-up waits on a timer.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

import psycopg
from dbos import DBOS, DBOSConfig, SetWorkflowID

from bench._inline.common import run_items, serve, versions

NODES = 20


@DBOS.step()
def seq_step(i: int, count: int) -> int:
    return count + 1


@DBOS.workflow()
def linear(nodes: int) -> int:
    count = 0
    for i in range(nodes):
        count = seq_step(i, count)
    return count


@DBOS.step()
def draft_step(request: str) -> str:
    return f"re: {request}"


@DBOS.step()
def send_step(draft: str) -> str:
    return f"msg-{len(draft)}"


@DBOS.workflow()
def hitl(request: str) -> str | None:
    """draft → ask (event "waiting") → wait for the decision → send if approved."""
    draft = draft_step(request)
    DBOS.set_event("waiting", draft)
    decision = DBOS.recv("approval", timeout_seconds=3600)
    if decision and decision.get("approved"):
        return send_step(draft)
    return None


class DbosSide:
    """Answers the orchestrator's commands with DBOS launched in this process."""

    def __init__(self, database: str, nodes: int) -> None:
        self.database, self.nodes = database, nodes
        config: DBOSConfig = {"name": "amber_bench", "system_database_url": database,
                              "notification_coalesce_sec": 0.001, "log_level": "WARNING"}
        DBOS(config=config)
        DBOS.launch()
        self.handles: dict[str, Any] = {}
        self._lock = threading.Lock()

    def seq(self, thread: str) -> None:
        with SetWorkflowID(thread):
            assert linear(self.nodes) == self.nodes

    def start(self, thread: str) -> None:
        with SetWorkflowID(thread):
            handle = DBOS.start_workflow(hitl, f"refund {thread}")
        with self._lock:
            self.handles[thread] = handle
        draft = DBOS.get_event(thread, "waiting", timeout_seconds=60)
        assert draft == f"re: refund {thread}", draft

    def resume(self, thread: str) -> None:
        DBOS.send(thread, {"approved": True}, "approval")
        with self._lock:
            handle = self.handles.pop(thread)
        assert handle.get_result(), thread

    def waiting_cost(self) -> dict[str, Any]:
        """What the process holds right now: threads, and the database's connections."""
        with psycopg.connect(self.database) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity "
                               "WHERE datname = current_database()").fetchone()
        return {"threads_in_process": threading.active_count(),
                "workflows_waiting": len(self.handles),
                "database_connections": int(row[0]) - 1 if row else None}

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op, ids, n = cmd["op"], cmd.get("ids", []), cmd.get("concurrency", 1)
        if op == "seq":
            return run_items(ids, self.seq, n)
        if op == "hitl_start":
            return run_items(ids, self.start, n)
        if op == "hitl_resume":
            return run_items(ids, self.resume, n)
        if op == "hitl_both":
            return run_items(ids, lambda t: (self.start(t), self.resume(t)), n)
        if op == "waiting_cost":
            return self.waiting_cost()
        if op == "info":
            return {"runtime": "DBOS workflows and steps, system database on PostgreSQL "
                               "(psycopg 3 through SQLAlchemy)",
                    "hitl": "set_event('waiting') + recv('approval') in the workflow; "
                            "get_event, then send + get_result from the client",
                    "versions": versions("dbos", "sqlalchemy", "psycopg")}
        raise ValueError(f"unknown op {op!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database", required=True)
    p.add_argument("--nodes", type=int, default=NODES)
    a = p.parse_args()
    serve(DbosSide(a.database, a.nodes).handle)


if __name__ == "__main__":
    main()
