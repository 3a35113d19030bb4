"""`amber worker`, probed: where one worker's loop spends its time.

    python -m bench._workers.probe --out probe.json [--profiler pyinstrument|cprofile|none] \
        MODULE:GRAPH

Builds the same Worker as `amber worker` (consumers.cli_engine.worker) and,
without touching engine/ or consumers/ files, wraps the loop's phases on the
instance: Kafka poll (fetch) vs Avro decode, observe (acceptance + fold),
step_all (nodes + seal), append (encode + send + wait for acks), commit,
forget_halted. Wall and main-thread CPU per phase, batch sizes, and the
process CPU left to kafka-python's I/O thread. With a profiler, also the
functions by self time and the cumulative time of the engine's hot spots.
SIGTERM ends the loop as for `amber worker`; the report is written then.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Functions whose cumulative time the report lists (matched on function name + file suffix).
HOT = [
    ("run_once", "consumers/worker.py"), ("_poll", "consumers/worker.py"),
    ("poll", "kafka/consumer/group.py"), ("decode_delivery", "engine/eventlog.py"),
    ("decode", "schemas/codec.py"), ("from_record", "engine/events.py"),
    ("_observe", "consumers/worker.py"), ("observe", "engine/dispatch.py"),
    ("advance", "engine/ledger.py"), ("judge", "engine/acceptance.py"),
    ("hash_is_valid", "engine/chain.py"), ("_fold_state", "engine/ledger.py"),
    ("step_all", "engine/dispatch.py"), ("_step", "engine/dispatch.py"),
    ("next_action", "engine/step.py"), ("execute", "engine/executor.py"),
    ("load", "engine/state.py"), ("apply", "engine/state.py"),
    ("route_after", "engine/step.py"), ("seal", "engine/chain.py"),
    ("compute_hash", "engine/chain.py"), ("state_hash", "engine/canonical.py"),
    ("canonical_bytes", "engine/canonical.py"), ("append", "engine/eventlog_kafka.py"),
    ("encode", "schemas/codec.py"), ("_check", "schemas/codec.py"),
    ("_send_all", "engine/eventlog_kafka.py"), ("send", "kafka/producer/kafka.py"),
    ("flush", "kafka/producer/kafka.py"), ("_commit", "consumers/worker.py"),
    ("commit", "kafka/consumer/group.py"), ("forget_halted", "engine/dispatch.py"),
    ("_halted", "engine/dispatch.py"), ("route_of", "engine/step.py"),
    ("partition_of", "engine/eventlog.py"),
]


class Phases:
    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, obj: Any, name: str, label: str, *, cpu: bool = True) -> None:
        inner: Callable[..., Any] = getattr(obj, name)

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            c = time.thread_time() if cpu else 0.0
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.wall[label] += time.perf_counter() - t
                if cpu:
                    self.cpu[label] += time.thread_time() - c
                self.calls[label] += 1

        setattr(obj, name, timed)


def _aggregate_pyinstrument(session: Any) -> tuple[list[dict[str, Any]], dict[str, float]]:
    selfs: dict[tuple[str, str], float] = defaultdict(float)
    cums: dict[tuple[str, str], float] = defaultdict(float)

    def walk(frame: Any, open_: set[tuple[str, str]]) -> None:
        if frame.is_synthetic:  # "[self]"/"[await]": already in the parent's self time
            return
        key = (str(frame.function), str(frame.file_path or ""))
        selfs[key] += frame.total_self_time
        if key not in open_:  # count a recursive function once
            cums[key] += frame.time
        for child in frame.children:
            walk(child, open_ | {key})

    root = session.root_frame()
    if root is not None:
        walk(root, set())
    total = root.time if root is not None else 0.0
    return _tables(selfs, cums, total)


def _aggregate_cprofile(prof: Any) -> tuple[list[dict[str, Any]], dict[str, float]]:
    import pstats

    stats = pstats.Stats(prof)
    selfs: dict[tuple[str, str], float] = {}
    cums: dict[tuple[str, str], float] = {}
    for (path, _line, func), (_cc, _nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        key = (func, path)
        selfs[key] = selfs.get(key, 0.0) + tt
        cums[key] = max(cums.get(key, 0.0), ct)
    return _tables(selfs, cums, stats.total_tt)  # type: ignore[attr-defined]


def _tables(selfs: dict[tuple[str, str], float], cums: dict[tuple[str, str], float],
            total: float) -> tuple[list[dict[str, Any]], dict[str, float]]:
    def short(path: str) -> str:
        for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
            if marker in path:
                return path.split(marker, 1)[1]
        return path

    top = sorted(selfs.items(), key=lambda kv: -kv[1])[:30]
    table = [{"function": f, "file": short(p), "self_s": round(s, 3),
              "self_share": round(s / total, 4) if total else None} for (f, p), s in top]
    hot: dict[str, float] = {}
    for func, suffix in HOT:
        spent = sum(v for (f, p), v in cums.items() if f == func and p.endswith(suffix))
        if spent:
            hot[f"{suffix}:{func}"] = round(spent, 3)
    hot["__total_sampled_s"] = round(total, 3)
    return table, hot


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--profiler", choices=["pyinstrument", "cprofile", "none"],
                   default="pyinstrument")
    p.add_argument("graphs", nargs="+")
    a = p.parse_args()

    import engine.eventlog_kafka as worker_mod  # where the group consumer decodes (deliveries)
    from consumers.checkpointer import AmberCheckpointer
    from consumers.graphs import load_graph
    from consumers.group import GroupOptions, group_consumer
    from consumers.worker import Worker, group_id_for, install_signal_handlers
    from engine.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    compiled = {g.name: g for g in (load_graph(ref) for ref in a.graphs)}
    cp = AmberCheckpointer.from_settings(settings, role="worker")
    group = group_id_for(compiled, settings.topic_prefix)
    consumer = group_consumer(settings, GroupOptions(
        bootstrap=settings.kafka_bootstrap, group=group, topic=settings.events_topic,
        partitions=settings.partitions))
    w = Worker(graphs=compiled, cp=cp, consumer=consumer, group=group,
               batch_s=settings.worker_batch_s)
    install_signal_handlers(w)

    ph = Phases()
    decode_wall = [0.0]
    inner_decode = getattr(worker_mod, "decode_delivery")  # noqa: B009 — not re-exported

    def timed_decode(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return inner_decode(*args, **kwargs)
        finally:
            decode_wall[0] += time.perf_counter() - t

    setattr(worker_mod, "decode_delivery", timed_decode)  # noqa: B010 — the loop's global
    ph.wrap(w, "_poll", "poll (fetch + decode)")
    ph.wrap(w, "_observe", "observe (acceptance + fold)", cpu=False)
    ph.wrap(w, "_load_cold", "load_cold (projection)")
    ph.wrap(w.dispatcher, "step_all", "step_all (nodes + seal)")
    ph.wrap(w.cp.log, "append", "append (encode + send + acks)")
    ph.wrap(w, "_commit", "commit (offsets)")
    ph.wrap(w.dispatcher, "forget_halted", "forget_halted")
    ph.wrap(w, "_report", "report")

    sizes: list[tuple[float, int, int]] = []  # (monotonic, polled, steps) of busy batches
    inner_once = w.run_once
    armed = [False]
    profiler: Any = None
    clocks = [time.process_time(), time.thread_time(), time.perf_counter()]

    def arm() -> None:
        """SIGUSR1 (the bench, after its warm-up): forget so far, start the profiler."""
        nonlocal profiler
        for d in (ph.wall, ph.cpu, ph.calls):
            d.clear()
        decode_wall[0] = 0.0
        sizes.clear()
        if a.profiler == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        elif a.profiler == "cprofile":
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        clocks[:] = [time.process_time(), time.thread_time(), time.perf_counter()]

    def run_once() -> int:
        if armed[0]:
            armed[0] = False
            arm()
        polled = w.stats.polled
        steps = inner_once()
        if steps or w.stats.polled != polled:
            sizes.append((time.monotonic(), w.stats.polled - polled, steps))
        return steps

    w.run_once = run_once  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, lambda *_: armed.__setitem__(0, True))
    try:
        w.run()
    finally:
        c1, t1, w1 = time.process_time(), time.thread_time(), time.perf_counter()
        c0, t0, w0 = clocks
        table: list[dict[str, Any]] = []
        hot: dict[str, float] = {}
        if profiler is None:
            pass
        elif a.profiler == "pyinstrument":
            table, hot = _aggregate_pyinstrument(profiler.stop())
        elif a.profiler == "cprofile":
            profiler.disable()
            table, hot = _aggregate_cprofile(profiler)
        cp.close()
        busy = [s for s in sizes if s[2] or s[1]]
        span = (busy[-1][0] - busy[0][0]) if len(busy) > 1 else 0.0
        steps = sum(s[2] for s in busy)
        phases = {label: {"wall_s": round(ph.wall[label], 3),
                          "main_thread_cpu_s": round(ph.cpu[label], 3) if label in ph.cpu
                          else None, "calls": ph.calls[label]} for label in ph.wall}
        phases["poll (fetch + decode)"]["of_which_decode_wall_s"] = round(decode_wall[0], 3)
        Path(a.out).write_text(json.dumps({
            "profiler": a.profiler,
            "run_wall_s": round(w1 - w0, 3),
            "process_cpu_s": round(c1 - c0, 3),
            "main_thread_cpu_s": round(t1 - t0, 3),
            "other_threads_cpu_s (kafka-python I/O)": round((c1 - c0) - (t1 - t0), 3),
            "busy_batches": len(busy), "busy_span_s": round(span, 3), "steps": steps,
            "steps_per_busy_batch": round(steps / len(busy), 1) if busy else None,
            "records_per_busy_batch": round(sum(s[1] for s in busy) / len(busy), 1)
            if busy else None,
            "phases": phases,
            "top_self_time": table,
            "cumulative_s": hot,
        }, indent=2))


if __name__ == "__main__":
    main()
