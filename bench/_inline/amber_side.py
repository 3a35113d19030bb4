"""The Amber side of bench/inline.py: inline runner on Kafka + the PostgreSQL projection.

Started by bench/inline.py in its own interpreter, with AMBER_* pointing at a
fresh topic prefix and database and an `amber projector` already running, and
driven over stdin/stdout (one JSON command per line, see common.serve):

    python -m bench._inline.amber_side [--nodes 20]

Besides the timings of each chunk it reports where the wall time went, per
port call (Kafka appends, Kafka metadata and read-back, PostgreSQL reads and
catch-up waits), without touching the engine: the adapters' bound methods are
wrapped on the instances.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable
from typing import Any

from bench._inline.common import (
    CHAT_NODES,
    Totals,
    chat_history,
    run_items,
    serve,
    table_bytes,
    versions,
)


def instrument(cp: Any) -> Totals:
    timer = Totals()
    timer.wrap(cp.log, "append", "kafka.append (send + wait for ack)")
    timer.wrap(cp.log, "end_offsets", "kafka.end_offsets")
    timer.wrap(cp.log, "end_offset", "kafka.end_offset (one partition)")
    timer.wrap(cp.log, "tail", "kafka.tail (end offset + unprojected records)")
    timer.wrap(cp.log, "read", "kafka.read (read-back, unprojected tail)")
    for name in ("thread_head", "get_thread", "history", "progress", "projected_offset",
                 "projected_offsets", "wait_for_offset", "wait_for_offsets"):
        if hasattr(cp.projection, name):
            timer.wrap(cp.projection, name, f"postgres.{name}")
    return timer


class AmberSide:
    def __init__(self, nodes: int) -> None:
        from bench._inline.amber_graphs import chat_graph, hitl, linear_graph
        from consumers.checkpointer import AmberCheckpointer
        from engine.settings import Settings

        self.settings = Settings.from_env()
        self.cp = AmberCheckpointer.from_settings(self.settings)
        self.timer = instrument(self.cp)
        self.nodes = nodes
        self.linear = linear_graph(nodes)
        self.hitl = hitl
        self.chat = chat_graph()

    def seq(self, thread: str) -> None:
        res = self.linear.start(thread, {}, checkpointer=self.cp)
        assert res.status == "completed" and res.state["count"] == self.nodes, res

    def chat_run(self, thread: str, history: int) -> None:
        res = self.chat.start(thread, {"messages": chat_history(history)}, checkpointer=self.cp)
        assert res.status == "completed" and res.state["turn"] == CHAT_NODES, res

    def stored_bytes(self) -> dict[str, int]:
        """The events topic's size on the broker, and the projection's tables."""
        from tests import scratch

        # the projection's share counts only once the projector has applied everything
        self.cp.projection.wait_for_offsets(self.cp.log.end_offsets(), timeout_s=60)
        log = scratch.topic_bytes(self.settings.kafka_bootstrap, self.settings.events_topic)
        return {"kafka_log": log, "postgres_projection": table_bytes(self.settings.database_url)}

    def start(self, thread: str) -> None:
        res = self.hitl.start(thread, {"request": f"refund {thread}"}, checkpointer=self.cp)
        assert res.status == "interrupted", res

    def resume(self, thread: str) -> None:
        res = self.hitl.resume(thread, {"approved": True}, actor="bench@amber",
                               checkpointer=self.cp)
        assert res.status == "completed" and res.state["sent"], res

    def timed(self, ids: list[str], body: Callable[[str], None],
              concurrency: int) -> dict[str, Any]:
        self.timer.take()
        out = run_items(ids, body, concurrency)
        out["ports"] = self.timer.take()
        return out

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op, ids, n = cmd["op"], cmd.get("ids", []), cmd.get("concurrency", 1)
        if op == "seq":
            return self.timed(ids, self.seq, n)
        if op == "chat":
            return self.timed(ids, lambda t: self.chat_run(t, cmd["history"]), n)
        if op == "stored_bytes":
            return self.stored_bytes()
        if op == "hitl_start":
            return self.timed(ids, self.start, n)
        if op == "hitl_resume":
            return self.timed(ids, self.resume, n)
        if op == "hitl_both":
            return self.timed(ids, lambda t: (self.start(t), self.resume(t)), n)
        if op == "cold_threads":
            return {"ids": self.cold_threads(ids)}
        if op == "profile":
            return self.profile(ids, cmd["out_dir"])
        if op == "info":
            return {"checkpointer": "consumers.checkpointer.AmberCheckpointer (KafkaEventLog "
                                    "+ PostgresProjectionReader); `amber projector` running",
                    "topic": self.settings.events_topic,
                    "partitions": self.settings.partitions,
                    "snapshot_every": self.settings.snapshot_every,
                    "threads_in_process": sorted(t.name for t in threading.enumerate()),
                    "versions": versions("amber", "kafka-python", "fastavro", "pydantic",
                                         "psycopg", "psycopg-pool")}
        raise ValueError(f"unknown op {op!r}")

    def cold_threads(self, ids: list[str]) -> list[str]:
        """Threads of the demo graph stopped at their interrupt, for cold `amber resume`s."""
        from examples.email_approval import graph

        for thread in ids:
            res = graph.start(thread, {"recipient": "cfo@example.com", "request": "wire 1M"},
                              checkpointer=self.cp)
            assert res.status == "interrupted", res
        # the projection must hold them before another process resumes them
        self.cp.projection.wait_for_offsets(self.cp.log.end_offsets(), timeout_s=60)
        return ids

    def profile(self, ids: list[str], out_dir: str) -> dict[str, Any]:
        """The sequential and the phased HITL cases again under pyinstrument; text + HTML."""
        hitl_ids = [f"{thread}-hitl" for thread in ids]
        cases = {"sequential": lambda: [self.seq(t) for t in ids],
                 "hitl": lambda: ([self.start(t) for t in hitl_ids],
                                  [self.resume(t) for t in hitl_ids])}
        os.makedirs(out_dir, exist_ok=True)
        return {name: _profiled(body, os.path.join(out_dir, f"amber_{name}"))
                for name, body in cases.items()}


def _profiled(body: Callable[[], object], stem: str) -> dict[str, str]:
    from pyinstrument import Profiler

    prof = Profiler(interval=0.0002)
    prof.start()
    body()
    prof.stop()
    paths = {"text": f"{stem}.txt", "html": f"{stem}.html"}
    with open(paths["text"], "w", encoding="utf-8") as f:
        f.write(prof.output_text(unicode=False, color=False, show_all=False))
    with open(paths["html"], "w", encoding="utf-8") as f:
        f.write(prof.output_html())
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--nodes", type=int, default=20)
    a = p.parse_args()
    side = AmberSide(a.nodes)
    try:
        serve(side.handle)
    finally:
        side.cp.close()


if __name__ == "__main__":
    main()
