"""`amber serve`, probed: where the API's request time goes (wall time per port call).

    python -m bench._workers.probe_api --out api.json --port P --graph MODULE:GRAPH

The same app as `amber serve` (consumers.api.app_from_env on uvicorn); without
touching consumers/ it wraps, on the instances, the calls a start or a decision
makes: waiting for the commands gate (at most pool size - 1 requests wait for
the projection at once), Kafka end offsets, append (ack), read-back (first
writer wins), and the PostgreSQL reads and catch-up waits. Totals are written
to --out when uvicorn stops (SIGTERM), counted from SIGUSR1 (after warm-up).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from bench._inline.common import Totals


class TimedGate:
    """The commands gate, timing how long each request waits to enter it."""

    def __init__(self, gate: Any, totals: Totals) -> None:
        self.gate, self.totals = gate, totals
        self.local = threading.local()

    def __enter__(self) -> Any:
        t = time.perf_counter()
        entered = self.gate.__enter__()
        self.totals.add("gate: waiting to enter (max_waiting)", time.perf_counter() - t)
        self.local.t = time.perf_counter()
        return entered

    def __exit__(self, *exc: Any) -> Any:
        self.totals.add("gate: held (the whole command)", time.perf_counter() - self.local.t)
        return self.gate.__exit__(*exc)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--graph", action="append", default=[])
    a = p.parse_args()

    import uvicorn

    from consumers.api import app_from_env

    api, cp = app_from_env(a.graph)
    commands = api.state.commands
    totals = Totals()
    for name, label in (("append", "kafka.append (ack)"), ("end_offsets", "kafka.end_offsets"),
                        ("read", "kafka.read (first-writer-wins read-back)")):
        totals.wrap(cp.log, name, label)
    for name in ("get_thread", "history", "wait_for_offset", "wait_for_offsets", "require",
                 "list_threads"):
        if hasattr(cp.projection, name):
            totals.wrap(cp.projection, name, f"postgres.{name}")
    for name in ("start", "decide"):
        totals.wrap(commands, name, f"command.{name} (total, incl. gate)", outer=True)
    commands._gate = TimedGate(commands._gate, totals)
    signal.signal(signal.SIGUSR1, lambda *_: totals.reset())

    def dump() -> None:
        with totals.lock:
            Path(a.out).write_text(json.dumps({
                label: {"wall_s": round(totals.wall[label], 3), "calls": totals.calls[label],
                        "ms_per_call": round(1000 * totals.wall[label] / totals.calls[label], 2)}
                for label in sorted(totals.wall)}, indent=2))

    # uvicorn shuts down gracefully on SIGTERM, then re-raises it to the handler it found:
    # this one, which writes the report.
    def on_term(*_: Any) -> None:
        dump()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    try:
        uvicorn.run(api, host="127.0.0.1", port=a.port, log_level="warning", access_log=False)
    finally:
        cp.close()
        dump()


if __name__ == "__main__":
    main()
