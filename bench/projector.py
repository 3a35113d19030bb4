"""Projector throughput on the real stack: project, rebuild, and decode-only; prints JSON.

    eval "$(compose/stack up)"
    .venv/bin/python -m bench.projector [--threads 5000 --events-per-thread 20]

Writes threads x events (default 100k events, interleaved as concurrent
threads would, snapshot every 10 events) to a fresh topic, then measures in
this process:

1. project: a fresh database, `Projector.catch_up()` from offset 0 to the end;
2. rebuild: `Projector.rebuild()` on the same database (truncate + replay);
3. decode_only: the same records polled and decoded with no PostgreSQL at all,
   the ceiling the projector can reach while it is bound by decoding.

Topic and database are dropped afterwards. Progress on stderr, JSON on stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench._inline.common import (
    claim_run,
    delete_topics,
    emit,
    fresh_database,
    fresh_name,
    kafka_bootstrap,
    versions,
)


def _say(message: str) -> None:
    print(f"[bench/projector] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Timed:
    wall_s: float
    cpu_s: float  # of this process, all threads

    def summary(self, items: int) -> dict[str, Any]:
        return {"items": items, "wall_s": round(self.wall_s, 3),
                "events_per_s": round(items / self.wall_s, 1),
                "process_cpu_s": round(self.cpu_s, 3),
                "process_cpu_us_per_event": round(1e6 * self.cpu_s / items, 2),
                # what one uncontended core would do: the number to read on a busy machine
                "events_per_process_cpu_s": round(items / self.cpu_s, 1)}


def _timed(body: Callable[[], Any]) -> tuple[Any, Timed]:
    c0, w0 = time.process_time(), time.perf_counter()
    result = body()
    return result, Timed(wall_s=time.perf_counter() - w0, cpu_s=time.process_time() - c0)


def _machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "versions": versions("kafka-python", "psycopg", "fastavro")}


def _fill(log: Any, threads: int, per_thread: int, snapshot_every: int) -> int:
    from tests.factories import interleaved, many_threads

    total = 0
    for start in range(0, threads, 500):  # build and send in slices to bound memory
        count = min(500, threads - start)
        events = interleaved(many_threads(count, per_thread, prefix=f"b{start}",
                                          snapshot_every=snapshot_every))
        for i in range(0, len(events), 5000):
            log.append(events[i:i + 5000])
        total += len(events)
        _say(f"appended {total} events")
    return total


def _decode_only(log: Any) -> int:
    ends = log.end_offsets()
    reader = log.reader(dict.fromkeys(ends, 0))
    seen = 0
    try:
        while any(reader.positions()[p] < end for p, end in ends.items()):
            seen += len(reader.poll(max_records=5000, timeout_s=1.0))
    finally:
        reader.close()
    return seen


def run(threads: int, per_thread: int, snapshot_every: int, batch_size: int) -> dict[str, Any]:
    from engine.eventlog_kafka import KafkaEventLog
    from projector.runner import Projector, ProjectorConfig

    bootstrap = kafka_bootstrap()
    topic = f"{fresh_name('amber_bench_projector', '-')}.events"
    log = KafkaEventLog(bootstrap=bootstrap, topic=topic, partitions=12)
    log.ensure_topic()
    try:
        total = _fill(log, threads, per_thread, snapshot_every)
        with fresh_database("amber_bench_projector") as url:
            config = ProjectorConfig(batch_size=batch_size)
            with Projector(log=log, database_url=url, config=config) as p:
                _say("projecting")
                projected, t_project = _timed(p.catch_up)
                _say("rebuilding")
                rebuilt, t_rebuild = _timed(p.rebuild)
        _say("decoding only")
        decoded, t_decode = _timed(lambda: _decode_only(log))
    finally:
        log.close()
        delete_topics(bootstrap, [topic])
    assert projected.records == rebuilt.records == decoded == total
    return {
        "benchmark": "projector", "events": total, "threads": threads,
        "events_per_thread": per_thread, "snapshot_every": snapshot_every,
        "batch_size": batch_size,
        "project": t_project.summary(projected.records),
        "rebuild": t_rebuild.summary(rebuilt.records),
        "decode_only": t_decode.summary(decoded),
        "target_events_per_s": 10_000,
        "machine": _machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=5000)
    parser.add_argument("--events-per-thread", type=int, default=20)
    parser.add_argument("--snapshot-every", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    claim_run()
    doc = run(args.threads, args.events_per_thread, args.snapshot_every, args.batch_size)
    emit(doc)


if __name__ == "__main__":
    main()
