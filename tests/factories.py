"""Builders of valid (and deliberately invalid) event chains for tests and benchmarks.

`ThreadWriter` plays the engine for one thread: each call seals the next event
after the last one, so the chain and every state_hash are right. The helpers
below build whole threads, racing writers and tampered copies from it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from engine.acceptance import Head
from engine.chain import Draft, compute_hash, seal
from engine.delta import Op, State, append_op, fold, merge_op, set_op, unset_op
from engine.eventlog import EventLog
from engine.events import (
    SNAPSHOT_TYPES,
    ErrorInfo,
    Event,
    EventType,
    ForkOrigin,
    GraphRef,
    InterruptInfo,
)

GRAPH = GraphRef(name="demo", fingerprint="f00d" * 4)
T0 = 1_700_000_000_000_000  # µs since the epoch: 2023-11-14


class ThreadWriter:
    """Seals a valid chain for one thread, one event per call."""

    def __init__(self, thread_id: str, *, graph: GraphRef = GRAPH, start_at: int = T0,
                 snapshot_every: int = 0, step_us: int = 1000) -> None:
        self.thread_id = thread_id
        self.graph = graph
        self.snapshot_every = snapshot_every
        self.state: State = {}
        self.head = Head()
        self.events: list[Event] = []
        self._clock = start_at
        self._step_us = step_us

    @property
    def next_seq(self) -> int:
        return self.head.seq + 1

    def draft(self, type_: EventType, *, node: str | None = None,
              delta: Sequence[Op] = (), **fields: Any) -> Draft:
        """The Draft of the next event, without sealing or recording it."""
        seq = self.next_seq
        every = self.snapshot_every
        with_snapshot = type_ in SNAPSHOT_TYPES or (every > 0 and seq > 0 and seq % every == 0)
        return Draft(thread_id=self.thread_id, seq=seq, type=type_, node=node,
                     occurred_at=self._clock + seq * self._step_us, graph=self.graph,
                     delta=list(delta), state_after=fold(self.state, delta),
                     with_snapshot=fields.pop("with_snapshot", with_snapshot), **fields)

    def emit(self, type_: EventType, *, node: str | None = None,
             delta: Sequence[Op] = (), **fields: Any) -> Event:
        """Seal the next event after the head and make it the new head."""
        draft = self.draft(type_, node=node, delta=delta, **fields)
        event = seal(draft, prev_hash=self.head.hash)
        self.state = draft.state_after
        self.head = Head(event.seq, event.hash)
        self.events.append(event)
        return event

    def start(self, **state: Any) -> Event:
        ops = [set_op(k, v) for k, v in sorted(state.items())] or [set_op("messages", [])]
        return self.emit(EventType.THREAD_STARTED, delta=ops, mode="inline")

    def step(self, node: str = "agent", message: str | None = None) -> Event:
        """A NodeCompleted that exercises append, set, merge and unset."""
        seq = self.next_seq
        ops = [append_op("messages", [message or f"m{seq}"]), set_op("step", seq)]
        if seq % 3 == 0:
            ops.append(merge_op("meta", {f"k{seq % 5}": seq}))
        if seq % 7 == 0:
            ops.append(unset_op("meta"))
        return self.emit(EventType.NODE_COMPLETED, node=node, delta=ops,
                         route={"next": "agent"}, io={"llm": {"tokens": seq}})

    def interrupt(self, node: str = "review", payload: Any = None) -> Event:
        info = InterruptInfo(id=f"{self.thread_id}:int:{self.next_seq}", node=node,
                             when="before", payload=_json({"ask": payload or "approve?"}))
        return self.emit(EventType.INTERRUPTED, node=node, interrupt=info)

    def decide(self, actor: str = "alice", approve: bool = True) -> Event:
        open_id = self.events[-1].interrupt.id if self.events[-1].interrupt else None
        return self.emit(EventType.DECISION_RECORDED, node="review", actor=actor,
                         causation_id=open_id, delta=[set_op("approved", approve)],
                         reason="looks good")

    def fail(self, node: str = "agent") -> Event:
        err = ErrorInfo(type="TimeoutError", message="llm timed out", retryable=True,
                        attempts=3)
        return self.emit(EventType.NODE_FAILED, node=node, error=err)

    def complete(self) -> Event:
        return self.emit(EventType.THREAD_COMPLETED, delta=[set_op("done", True)])

    def cancel(self, actor: str = "bob") -> Event:
        return self.emit(EventType.THREAD_CANCELLED, actor=actor, reason="no longer needed")


def _json(value: Any) -> str:
    from engine.canonical import canonical_text

    return canonical_text(value)


def thread_events(thread_id: str, n: int, *, snapshot_every: int = 0, end: str = "completed",
                  graph: GraphRef = GRAPH, start_at: int = T0) -> list[Event]:
    """A valid thread of `n` events: started, steps, then `end`.

    `end` is the status the thread ends in: completed, interrupted, failed,
    cancelled or running (no closing event).
    """
    w = ThreadWriter(thread_id, graph=graph, start_at=start_at, snapshot_every=snapshot_every)
    closing = {"completed": w.complete, "interrupted": w.interrupt, "failed": w.fail,
               "cancelled": w.cancel, "running": None}[end]
    w.start(messages=[], topic=thread_id)
    while w.next_seq < n - (0 if closing is None else 1):
        w.step()
    if closing is not None and n > 1:
        closing()
    return w.events[:n]


def fork_events(source: Sequence[Event], *, at_seq: int, thread_id: str,
                steps: int = 2) -> list[Event]:
    """A thread forked from `source` at `at_seq`, with `steps` NodeCompleted after it."""
    state: State = {}
    for event in source[:at_seq + 1]:
        state = fold(state, event.ops())
    origin = source[at_seq]
    w = ThreadWriter(thread_id, graph=origin.graph, start_at=origin.occurred_at + 1)
    ops = [set_op(k, v) for k, v in sorted(state.items())]
    w.emit(EventType.THREAD_FORKED, delta=ops, actor="carol", reason="try again",
           parent=ForkOrigin(thread_id=origin.thread_id, seq=origin.seq, hash=origin.hash),
           with_snapshot=True)
    for _ in range(steps):
        w.step()
    return w.events


def rival(writer: ThreadWriter, node: str = "rival") -> Event:
    """A second, different event for the writer's next seq (a racing writer), not recorded."""
    draft = writer.draft(EventType.NODE_COMPLETED, node=node,
                         delta=[set_op("winner", node)])
    return seal(draft, prev_hash=writer.head.hash)


def raced_thread(thread_id: str) -> tuple[ThreadWriter, list[Event]]:
    """A thread stopped at an interrupt, and its records in log order: a racing
    writer's event for seq 2 landed right after the winner's (rejected)."""
    w = ThreadWriter(thread_id, snapshot_every=2)
    w.start(messages=[])
    w.step()
    loser = rival(w)
    w.step()
    w.step()
    w.interrupt(payload="ok?")
    return w, [*w.events[:3], loser, *w.events[3:]]


def resealed(event: Event, **changes: Any) -> Event:
    """`event` with fields changed and its hash recomputed: chained, but maybe inconsistent."""
    changed = replace(event, **changes)
    return changed.with_hash(compute_hash(changed.to_record()))


def many_threads(count: int, events_per_thread: int, *, prefix: str = "t",
                 snapshot_every: int = 0) -> list[list[Event]]:
    """`count` threads of `events_per_thread` events, ids `{prefix}-{i:05d}`."""
    ends = ("completed", "interrupted", "running", "failed", "cancelled")
    return [thread_events(f"{prefix}-{i:05d}", events_per_thread, snapshot_every=snapshot_every,
                          end=ends[i % len(ends)], start_at=T0 + i * 1_000_000_000)
            for i in range(count)]


def interleaved(threads: Sequence[Sequence[Event]]) -> list[Event]:
    """Round-robin merge keeping each thread's order: how concurrent threads hit the log."""
    out: list[Event] = []
    longest = max((len(t) for t in threads), default=0)
    for i in range(longest):
        out.extend(t[i] for t in threads if i < len(t))
    return out


def noisy_log(threads: int, events_per_thread: int, seed: int = 1) -> list[Event | bytes]:
    """A realistic messy log: interleaved threads plus, for every tenth thread, a retried
    duplicate, a racing pair (one loser), a state_hash lie and random garbage bytes."""
    rng = random.Random(seed)
    built = many_threads(threads, events_per_thread, snapshot_every=5)
    log: list[Event | bytes] = list(interleaved(built))
    for t in built[:: max(threads // 10, 1)]:
        log.insert(rng.randrange(len(log)), t[rng.randrange(len(t))])  # a retry
        w = ThreadWriter(f"{t[0].thread_id}-race")
        w.start()
        w.step()
        loser = rival(w, "a")
        liar = resealed(w.step(), state_hash="0" * 64)  # accepted, marks an integrity error
        log += [*w.events[:2], liar, loser]
        log.insert(rng.randrange(len(log)), rng.randbytes(rng.randrange(1, 64)))
    return log


def append_records(log: EventLog, records: Sequence[Event | bytes], chunk: int = 500,
                   pause_s: float = 0.0) -> None:
    """Append in order, `chunk` events per call; bytes go through append_raw under their own key.

    `pause_s` between chunks paces a background producer; it is never a way to
    wait for a consumer.
    """
    batch: list[Event] = []
    for i, record in enumerate(records):
        if isinstance(record, bytes):
            log.append(batch)
            batch = []
            log.append_raw(f"garbage-{i}", record)
        else:
            batch.append(record)
        if len(batch) >= chunk:
            log.append(batch)
            batch = []
            time.sleep(pause_s)  # pacing the producer, not synchronising with it
    log.append(batch)


_VOCABULARY = ("refund", "invoice", "approved", "the", "customer", "account", "wire", "policy")


def prose(rng: random.Random, words: int) -> str:
    """Words of a small vocabulary in random order: text that compresses like model
    output for lz4 and zstd, though its first KB may let pglz give up."""
    return " ".join(rng.choice(_VOCABULARY) for _ in range(words))
