"""Builders of sealed ledger events for the ledger-foundation tests.

Deterministic on purpose (fixed graph, fixed clock) so hypothesis can shrink and
the same inputs always give the same hashes. Graph-level fixtures live in
tests/factories.py; this module only knows the envelope.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.chain import GENESIS_HASH, Draft, seal
from engine.checkpointer import Checkpointer
from engine.delta import Op, State, append_op, fold, set_op
from engine.eventlog import Delivery, LogReader
from engine.events import ErrorInfo, Event, EventType, ForkOrigin, GraphRef, InterruptInfo

GRAPH = GraphRef(name="approval", fingerprint="sha256:" + "ab" * 32)
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds


def step(prev: Event | None, state: State, delta: list[Op], *, thread_id: str = "thread-1",
         type_: EventType | None = None, node: str | None = "step",
         occurred_at: int | None = None, **fields: Any) -> tuple[Event, State]:
    """The event that applies `delta` to `state` right after `prev`, and the state after it."""
    seq = 0 if prev is None else prev.seq + 1
    after = fold(state, delta)
    if type_ is None:
        type_ = EventType.THREAD_STARTED if seq == 0 else EventType.NODE_COMPLETED
    draft = Draft(thread_id=prev.thread_id if prev else thread_id, seq=seq, type=type_,
                  node=node, occurred_at=T0 + seq * 1_000 if occurred_at is None else occurred_at,
                  graph=GRAPH, delta=delta, state_after=after, **fields)
    return seal(draft, prev_hash=GENESIS_HASH if prev is None else prev.hash), after


def chain(thread_id: str, n: int, *, writer: str = "w0") -> list[Event]:
    """A valid thread of `n` events whose state counts steps and logs who wrote them."""
    events: list[Event] = []
    state: State = {}
    for seq in range(n):
        delta = [set_op("count", seq), append_op("log", [f"{writer}:{seq}"])]
        event, state = step(events[-1] if events else None, state, delta, thread_id=thread_id,
                            node=None if seq == 0 else f"{writer}-node")
        events.append(event)
    return events


def full_event(*, thread_id: str = "thread-full", seq: int = 3,
               prev_hash: str = "11" * 32) -> Event:
    """An event with every optional envelope field set, non-ASCII text included."""
    state = {"answer": "Grüße ✓", "n": 2, "ok": True, "tags": ["a", "b"]}
    draft = Draft(
        thread_id=thread_id, seq=seq, type=EventType.INTERRUPTED, node="review",
        occurred_at=T0 + 42, graph=GRAPH,
        delta=[set_op("answer", "Grüße ✓"), append_op("tags", ["b"])], state_after=state,
        with_snapshot=True, actor="alice@example.com", causation_id="cause-1",
        interrupt=InterruptInfo(id="int-1", node="review", when="before",
                                payload='{"question":"Approve?"}'),
        route={"next": "send"}, io={"llm": {"request": "hi", "response": "hé"}},
        error=ErrorInfo(type="Timeout", message="slow", retryable=True, attempts=2),
        mode="worker", reason="because", parent=ForkOrigin(thread_id="parent", seq=7,
                                                            hash="22" * 32),
    )
    return seal(draft, prev_hash=prev_hash)


def poll_at_least(reader: LogReader, count: int) -> list[Delivery]:
    """At least `count` deliveries, or whatever came within 60 bounded polls."""
    got: list[Delivery] = []
    for _ in range(60):
        got += reader.poll(max_records=500, timeout_s=0.5)
        if len(got) >= count:
            break
    return got


def logged(cp: Checkpointer, thread_id: str) -> list[Event]:
    """The thread's events as its log holds them (decodable ones), in order."""
    return [d.event for d in cp.log.read_thread(thread_id) if d.event is not None]


@contextmanager
def appending_nothing(cp: Checkpointer) -> Iterator[None]:
    """The block must leave the log as it found it: a refusal appends nothing."""
    ends = cp.log.end_offsets()
    yield
    assert cp.log.end_offsets() == ends
