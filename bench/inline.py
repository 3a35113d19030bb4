"""Inline runner vs LangGraph + PostgresSaver, same machine, same durability; prints JSON.

    eval "$(compose/stack up)"
    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m bench.inline [--threads 100 --nodes 20 --hitl 200 --cold 5]

Four measurements (see bench/README.md):

1. steps/s of a 20-node linear graph over 100 threads, one after another;
2. HITL round trips/s over 200 threads of draft → [interrupt] review → send;
3. a chat: 30 nodes each append one message to a 500-message history
   (~200 KB): steps/s and bytes stored per step, log and projection included;
4. cold start of `amber resume` as a new process: exec → first Kafka request.

Each side lives in an interpreter of its own with its own fresh database
(Amber also a fresh topic prefix, `amber db migrate` and an `amber projector`
process); the sides take turns, a few threads at a time, so that noise from
other work on the machine hits both alike. Everything created is dropped
afterwards. Progress goes to stderr, the one JSON document to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._inline.amber_stack import AmberStack, cold_starts, say
from bench._inline.common import (
    CHAT_NODES,
    ROOT,
    SideProcess,
    admin_url,
    claim_run,
    cpu_sample,
    cpu_spent,
    create_database,
    drop_database,
    emit,
    fresh_name,
    kafka_bootstrap,
    machine,
    percentiles,
    stack_pids,
    versions,
)

TARGETS = {"sequential_steps_ratio": 2.0, "hitl_round_trips_ratio": 3.0, "cold_start_s": 0.4}


# --- lockstep schedule ---------------------------------------------------------------------
class Acc:
    """What one participant (side, style) spent in one phase, over all its chunks."""

    def __init__(self) -> None:
        self.items = 0
        self.wall = self.cpu = self.thread_cpu = 0.0
        self.lat: list[float] = []
        self.ports: dict[str, list[float]] = {}
        self.machine: dict[str, float] = {}
        self.chunk_rates: list[float] = []

    def add(self, reply: dict[str, Any], items: int, machine_cpu: dict[str, float]) -> None:
        self.items += items
        self.wall += reply["wall_s"]
        self.cpu += reply["cpu_s"]
        self.thread_cpu += reply["thread_cpu_s"]
        self.lat += reply["lat"]
        self.chunk_rates.append(items / reply["wall_s"])
        for label, (wall, calls) in reply.get("ports", {}).items():
            acc = self.ports.setdefault(label, [0.0, 0.0])
            acc[0] += wall
            acc[1] += calls
        for group, spent in machine_cpu.items():
            self.machine[group] = self.machine.get(group, 0.0) + spent

    def summary(self, unit: str, per: str) -> dict[str, Any]:
        n = self.items
        out: dict[str, Any] = {
            per: n, "wall_s": round(self.wall, 3), f"{unit}_per_s": round(n / self.wall, 1),
            f"latency_ms_per_{'thread' if unit == 'steps' else 'item'}": percentiles(self.lat),
            f"cpu_ms_per_{per[:-1]}": {
                "side_process": round(1000 * self.cpu / n, 3),
                "caller_thread": round(1000 * self.thread_cpu / n, 3),
                "other_threads_of_side": round(1000 * (self.cpu - self.thread_cpu) / n, 3),
                **{f"{g}_from_proc": round(1000 * v / n, 3) for g, v in
                   sorted(self.machine.items()) if g != "side_process"}},
        }
        if self.ports:
            spent = sum(w for w, _ in self.ports.values())
            out[f"wall_ms_per_{per[:-1]}_by_port"] = {
                **{label: {"ms": round(1000 * w / n, 4), "calls": round(c / n, 2),
                           "share": round(w / self.wall, 3)}
                   for label, (w, c) in sorted(self.ports.items())},
                "engine_and_nodes (rest)": {"ms": round(1000 * (self.wall - spent) / n, 4),
                                            "share": round((self.wall - spent) / self.wall, 3)}}
        return out


class Lockstep:
    """Runs chunks of each phase on every participant in turn, so noise hits all alike."""

    def __init__(self, sides: dict[str, SideProcess], projector_pid: int | None,
                 concurrency: int = 1) -> None:
        self.sides = sides
        self.projector_pid = projector_pid
        self.common = {"concurrency": concurrency}  # sent with every command
        self.acc: dict[tuple[str, str], Acc] = {}

    def pids(self, side: str) -> dict[str, list[int]]:
        # looked up again every turn: connections come and go, a broker may restart
        return stack_pids(self.sides[side].proc.pid,
                          self.projector_pid if side == "amber" else None)

    def phase(self, phase: str, participants: list[tuple[str, str | None]], op: str,
              ids_of: Any, chunks: list[range], *, weight: int = 1,
              extra: dict[str, Any] | None = None) -> None:
        for k, chunk in enumerate(chunks):
            order = participants if k % 2 == 0 else participants[::-1]
            for side, style in order:
                ids = [ids_of(side, style, i) for i in chunk]
                cmd = {**self.common, "op": op, "ids": ids,
                       **({"style": style} if style else {}), **(extra or {})}
                pids = self.pids(side)
                before = cpu_sample(pids)
                reply = self.sides[side].call(**cmd)
                spent = cpu_spent(before, cpu_sample(pids))
                key = (f"{side}:{style}" if style else side, phase)
                self.acc.setdefault(key, Acc()).add(reply, len(ids) * weight, spent)

    def warm(self, participants: list[tuple[str, str | None]], op: str, ids_of: Any,
             n: int, *, extra: dict[str, Any] | None = None) -> None:
        for side, style in participants:
            self.sides[side].call(**self.common, op=op,
                                  ids=[ids_of(side, style, i) for i in range(n)],
                                  **({"style": style} if style else {}), **(extra or {}))


def chunked(total: int, size: int) -> list[range]:
    return [range(i, min(i + size, total)) for i in range(0, total, size)]


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def paired_ratio(amber: list[float], peer: list[float]) -> float | None:
    """Median over chunk pairs (run back to back) of Amber's rate / the peer's."""
    pairs = [a / b for a, b in zip(amber, peer, strict=False) if b]
    return round(statistics.median(pairs), 2) if pairs else None


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    want_lg, want_am = args.only in ("both", "langgraph"), args.only in ("both", "amber")
    sides: dict[str, SideProcess] = {}
    lg_db = fresh_name("lg_bench") if want_lg else None
    doc: dict[str, Any] = {}
    with AmberStack(workdir) if want_am else contextlib.nullcontext() as stack:
        try:
            if lg_db:
                say(f"LangGraph: database {lg_db}")
                sides["langgraph"] = SideProcess(
                    "langgraph", "bench._inline.peer_langgraph",
                    ["--database", create_database(lg_db), "--nodes", str(args.nodes),
                     "--pool", str(args.concurrency)],
                    dict(os.environ), str(ROOT), str(workdir / "langgraph.log"))
            if stack is not None:
                sides["amber"] = SideProcess(
                    "amber", "bench._inline.amber_side", ["--nodes", str(args.nodes)],
                    stack.env, str(ROOT), str(workdir / "amber.log"))
            ls = Lockstep(sides, stack.projector.pid if stack and stack.projector else None,
                          args.concurrency)
            doc = schedule(args, ls, stack, workdir)
        finally:
            for side in sides.values():
                side.close()
            if lg_db:
                drop_database(lg_db)
    return doc


Participants = list[tuple[str, str | None]]


def sequential_case(args: argparse.Namespace, ls: Lockstep, parts: Participants,
                    ids: Any) -> None:
    """The linear graph: `args.threads` threads of `args.nodes` steps, after a warm-up."""
    say("sequential")
    ls.warm(parts, "seq", ids("warm-seq"), args.warmup)
    ls.phase("sequential", parts, "seq", ids("seq"), chunked(args.threads, args.chunk),
             weight=args.nodes)


def hitl_cases(args: argparse.Namespace, ls: Lockstep, parts: Participants, ids: Any, *,
               while_waiting: Any = lambda: None) -> Any:
    """HITL phased (every thread to its question, then every answer) and back to back;
    `while_waiting()` runs while every phased thread waits, and its value is returned."""
    say("HITL")
    ls.warm(parts, "hitl_both", ids("warm-hitl"), args.warmup)
    chunks = chunked(args.hitl, 2 * args.chunk)
    ls.phase("hitl_start", parts, "hitl_start", ids("hitl"), chunks)
    held = while_waiting()
    ls.phase("hitl_resume", parts, "hitl_resume", ids("hitl"), chunks)
    ls.phase("hitl_back_to_back", parts, "hitl_both", ids("b2b"), chunks)
    return held


def schedule(args: argparse.Namespace, ls: Lockstep, stack: AmberStack | None,
             workdir: Path) -> dict[str, Any]:
    names = list(ls.sides)
    seq_p = [(n, None) for n in names]
    hitl_p = [p for n in names for p in
              ([("langgraph", "static"), ("langgraph", "dynamic")] if n == "langgraph"
               else [(n, None)])]

    def ids(phase: str) -> Any:
        return lambda side, style, i: f"{phase}-{style or side}-{i}"

    sequential_case(args, ls, seq_p, ids)
    hitl_cases(args, ls, hitl_p, ids)
    chat_stored = chat(args, ls, seq_p, ids)
    if "langgraph" in ls.sides:
        say("LangGraph durability=async (reference)")
        ls.phase("sequential_async_reference", [("langgraph", None)], "seq", ids("seq-async"),
                 chunked(args.threads, args.chunk), weight=args.nodes,
                 extra={"durability": "async"})
    info = {name: side.call(op="info") for name, side in ls.sides.items()}
    profile = cold = None
    if "amber" in ls.sides and args.profile_dir:
        say("profiling Amber (pyinstrument)")
        profile = ls.sides["amber"].call(
            op="profile", ids=[f"prof-{i}" for i in range(max(10, args.threads // 5))],
            out_dir=str(Path(args.profile_dir).resolve()))
    if "amber" in ls.sides and args.cold and stack is not None:
        say("cold starts of `amber resume`")
        threads = ls.sides["amber"].call(
            op="cold_threads", ids=[f"cold-{i}" for i in range(args.cold + 2)])["ids"]
        for side in ls.sides.values():
            side.close()  # nothing else running while the cold processes are timed
        cold = cold_starts(stack, threads, workdir)
    return results(args, ls, info, profile, cold, chat_stored)


def chat(args: argparse.Namespace, ls: Lockstep, participants: list[tuple[str, None]],
         ids: Any) -> dict[str, dict[str, int]]:
    """The chat case, and the bytes each side stored for it (all the copies it keeps)."""
    if args.chat_threads <= 0:
        return {}
    say(f"chat: {args.chat_history} messages of history, {CHAT_NODES} replies per thread")
    history = {"history": args.chat_history}
    turn = 2 * args.concurrency  # a turn keeps every thread of the pool busy
    ls.warm(participants, "chat", ids("warm-chat"), turn, extra=history)
    before = {name: side.call(op="stored_bytes") for name, side in ls.sides.items()}
    ls.phase("chat", participants, "chat", ids("chat"), chunked(args.chat_threads, turn),
             weight=CHAT_NODES, extra=history)
    after = {name: side.call(op="stored_bytes") for name, side in ls.sides.items()}
    return {name: {k: after[name][k] - before[name][k] for k in after[name]} for name in after}


def results(args: argparse.Namespace, ls: Lockstep, info: dict[str, Any],
            profile: dict[str, Any] | None, cold: dict[str, Any] | None,
            chat_stored: dict[str, dict[str, int]]) -> dict[str, Any]:
    acc = ls.acc

    def chat_of(who: str) -> dict[str, Any] | None:
        a = acc.get((who, "chat"))
        if a is None:
            return None
        stored = chat_stored[who]
        return {**a.summary("steps", "steps"), "stored_bytes": stored,
                "stored_bytes_per_step": round(sum(stored.values()) / a.items)}

    def seq(who: str, phase: str = "sequential") -> dict[str, Any] | None:
        a = acc.get((who, phase))
        return a.summary("steps", "steps") if a else None

    def hitl(who: str) -> dict[str, Any] | None:
        s, r, b = (acc.get((who, p)) for p in ("hitl_start", "hitl_resume",
                                                "hitl_back_to_back"))
        if not (s and r and b):
            return None
        return {"phased": {"round_trips": s.items, "wall_s": round(s.wall + r.wall, 3),
                           "round_trips_per_s": round(s.items / (s.wall + r.wall), 1),
                           "start": s.summary("starts", "threads"),
                           "resume": r.summary("resumes", "threads")},
                "back_to_back": b.summary("round_trips", "threads")}

    lg_hitl = {style: hitl(f"langgraph:{style}") for style in ("static", "dynamic")}
    sides: dict[str, Any] = {
        "langgraph": None if "langgraph" not in ls.sides else {
            **info["langgraph"], "sequential": seq("langgraph"),
            "sequential_async_default_for_reference":
                seq("langgraph", "sequential_async_reference"),
            "chat": chat_of("langgraph"),
            "hitl_interrupt_before_update_state": lg_hitl["static"],
            "hitl_interrupt_command_resume": lg_hitl["dynamic"]},
        "amber": None if "amber" not in ls.sides else {
            **info["amber"], "sequential": seq("amber"), "hitl": hitl("amber"),
            "chat": chat_of("amber"),
            "profile": profile},
    }
    comp: dict[str, Any] = {}
    if sides["langgraph"] and sides["amber"]:
        am, lg = sides["amber"], sides["langgraph"]
        best = max(("static", "dynamic"),
                   key=lambda st: lg_hitl[st]["phased"]["round_trips_per_s"])  # type: ignore[index]
        lgb = lg_hitl[best]
        assert lgb is not None
        rt = {who: [1 / (1 / a + 1 / b) for a, b in zip(
            acc[(who, "hitl_start")].chunk_rates, acc[(who, "hitl_resume")].chunk_rates,
            strict=False)] for who in ("amber", f"langgraph:{best}")}
        comp = {
            "sequential_steps_per_s": {
                "amber": am["sequential"]["steps_per_s"],
                "langgraph_sync": lg["sequential"]["steps_per_s"],
                "ratio": ratio(am["sequential"]["steps_per_s"], lg["sequential"]["steps_per_s"]),
                "ratio_median_of_chunk_pairs": paired_ratio(
                    acc[("amber", "sequential")].chunk_rates,
                    acc[("langgraph", "sequential")].chunk_rates),
                "target_ratio": TARGETS["sequential_steps_ratio"]},
            "hitl_round_trips_per_s": {
                "amber": am["hitl"]["phased"]["round_trips_per_s"],
                "langgraph": lgb["phased"]["round_trips_per_s"],
                "langgraph_style": info["langgraph"]["hitl_styles"][best] + " (the faster)",
                "ratio": ratio(am["hitl"]["phased"]["round_trips_per_s"],
                               lgb["phased"]["round_trips_per_s"]),
                "ratio_median_of_chunk_pairs": paired_ratio(rt["amber"],
                                                            rt[f"langgraph:{best}"]),
                "target_ratio": TARGETS["hitl_round_trips_ratio"]},
            "hitl_back_to_back_round_trips_per_s": {
                "amber": am["hitl"]["back_to_back"]["round_trips_per_s"],
                "langgraph": max(lg_hitl[st]["back_to_back"]["round_trips_per_s"]  # type: ignore[index]
                                 for st in lg_hitl),
            },
        }
        b2b = comp["hitl_back_to_back_round_trips_per_s"]
        b2b["ratio"] = ratio(b2b["amber"], b2b["langgraph"])
    if comp and sides["amber"]["chat"] and sides["langgraph"]["chat"]:
        am, lg = sides["amber"], sides["langgraph"]
        comp["chat_long_history"] = {
            "steps_per_s": {"amber": am["chat"]["steps_per_s"],
                            "langgraph_sync": lg["chat"]["steps_per_s"],
                            "ratio": ratio(am["chat"]["steps_per_s"], lg["chat"]["steps_per_s"])},
            "stored_bytes_per_step": {
                "amber": am["chat"]["stored_bytes_per_step"],
                "langgraph": lg["chat"]["stored_bytes_per_step"],
                "langgraph_over_amber": ratio(lg["chat"]["stored_bytes_per_step"],
                                              am["chat"]["stored_bytes_per_step"])}}
    if cold:
        comp["cold_start_exec_to_first_kafka_request_s"] = {
            "amber_median": cold["median"]["exec_to_first_kafka_request_s"],
            "target": TARGETS["cold_start_s"]}
    seq_r = comp.get("sequential_steps_per_s", {}).get("ratio")
    hitl_r = comp.get("hitl_round_trips_per_s", {}).get("ratio")
    return {
        "comparison": comp,
        "targets_met": {
            "sequential_ge_2x": None if seq_r is None else seq_r >= 2.0,
            "hitl_ge_3x": None if hitl_r is None else hitl_r >= 3.0,
            "cold_start_le_0_4s": None if not cold else
            cold["median"]["exec_to_first_kafka_request_s"] <= TARGETS["cold_start_s"]},
        **sides, "cold_start": cold,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=100, help="threads of the linear graph")
    p.add_argument("--nodes", type=int, default=20, help="nodes of the linear graph")
    p.add_argument("--hitl", type=int, default=200, help="HITL threads")
    p.add_argument("--chat-threads", type=int, default=20,
                   help=f"threads of the chat case ({CHAT_NODES} replies each)")
    p.add_argument("--chat-history", type=int, default=500,
                   help="messages each chat thread starts with (400 characters each)")
    # A freshly started broker spends ~3x the CPU per request until its JIT has seen
    # a few thousand: without a real warm-up the first case measures the JIT.
    p.add_argument("--warmup", type=int, default=20, help="untimed threads first, per case")
    p.add_argument("--chunk", type=int, default=5,
                   help="threads per turn (HITL: twice that) before the other side's turn")
    p.add_argument("--concurrency", type=int, default=1,
                   help="threads run at once on each side (a thread pool; LangGraph gets a "
                        "connection pool of that size); turns grow to 2x this")
    p.add_argument("--cold", type=int, default=5, help="cold `amber resume` processes")
    p.add_argument("--only", choices=["both", "amber", "langgraph"], default="both")
    p.add_argument("--profile-dir", default=None,
                   help="also profile Amber's sequential and HITL cases with pyinstrument into DIR")
    args = p.parse_args()
    args.chunk = max(args.chunk, 2 * args.concurrency)  # a turn must keep every thread busy
    if args.only != "amber":
        try:
            import langgraph  # noqa: F401
        except ImportError:
            sys.exit("LangGraph is missing: .venv/bin/pip install -e '.[bench]' "
                     "(or pass --only amber)")
    claim_run()
    machine_before = machine()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="amber-bench-") as tmp:
        body = run(args, Path(tmp))
    emit({
        "benchmark": "bench/inline.py",
        "params": {"sequential_threads": args.threads, "nodes_per_thread": args.nodes,
                   "hitl_threads": args.hitl, "warmup_threads": args.warmup,
                   "chunk_threads": args.chunk, "cold_start_runs": args.cold,
                   "concurrency": args.concurrency,
                   "durability": "Amber: each event acked by Kafka (acks=all, idempotent) "
                                 "before the next node; LangGraph: durability='sync', each "
                                 "checkpoint committed to PostgreSQL before the next step",
                   "schedule": "both sides live in their own processes and take turns, "
                               f"{args.chunk} threads at a time (HITL: {2 * args.chunk}), "
                               "so machine noise hits both alike",
                   "hitl_mode": "phased: every thread runs to its interrupt, then every "
                                "thread is resumed; back_to_back: resumed right after it "
                                "stopped",
                   "kafka_bootstrap": kafka_bootstrap(),
                   "admin_database": re.sub(r"//[^@]*@", "//***@", admin_url())},
        "machine": {**machine_before, "loadavg_after": machine().get("loadavg_1_5_15")},
        "versions": versions("amber", "langgraph", "langgraph-checkpoint",
                             "langgraph-checkpoint-postgres", "kafka-python", "psycopg",
                             "fastavro", "pydantic"),
        "duration_s": round(time.perf_counter() - t0, 1),
        **body,
    })


if __name__ == "__main__":
    main()
