"""The inline runner: the calling process runs the nodes itself.

A thin I/O shell around engine.step: load the head → decide → run the node →
append the event and wait for the broker's ack → repeat. At an interrupt it
appends `Interrupted` and returns: nothing keeps running, nothing is held.
Another process resumes the thread later from the projection.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from engine import interrupts, step
from engine.canonical import canonical_text
from engine.chain import Draft, seal
from engine.checkpointer import Checkpointer
from engine.context import NodeContext
from engine.errors import (
    CanonicalJSONError,
    ConflictError,
    GraphMismatchError,
    InvalidDecisionError,
    StaleInterruptError,
    StateValidationError,
    ThreadExistsError,
    ThreadNotWaitingError,
)
from engine.eventlog import Position
from engine.faults import fault_point
from engine.events import ErrorInfo, Event, EventType
from engine.graph import CompiledGraph, NodeSpec
from engine.ledger import ThreadView, advance
from engine.projection import Checkpoint
from engine.race import first_writer_wins

log = logging.getLogger("amber.runner")
_REPEAT_WINDOW = 200  # how far back a retried decision is recognised


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """Where a run stopped."""

    thread_id: str
    status: str
    seq: int
    state: dict[str, Any]
    interrupt: dict[str, Any] | None = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Cursor:
    """The head of a thread as this process knows it."""

    view: ThreadView
    head: Event
    position: Position | None


class InlineRunner:
    """Runs one compiled graph's threads in the calling process."""

    def __init__(self, graph: CompiledGraph, checkpointer: Checkpointer) -> None:
        self.graph = graph
        self.cp = checkpointer

    # --- public operations -------------------------------------------------
    def start(self, thread_id: str, input: dict[str, Any], *,
              actor: str | None = None) -> RunResult:
        """Append ThreadStarted and run until the thread halts."""
        partition = self.cp.log.partition_of(thread_id)
        end = self._catch_up(partition)
        if self.cp.projection.get_thread(thread_id) is not None:
            raise ThreadExistsError(f"thread {thread_id!r} already exists")
        ops, state = self.graph.schema.initial(input)
        first = step.first_node(self.graph, self.graph.schema.load(state, node="__start__"))
        draft = Draft(thread_id=thread_id, seq=0, type=EventType.THREAD_STARTED, node=None,
                      occurred_at=self.cp.clock(), graph=self.graph.ref, delta=ops,
                      state_after=state, with_snapshot=True, actor=actor,
                      route={"next": first}, mode="inline")
        cursor = self._append_first(None, draft, since=Position(partition, end))
        return self._drive(cursor)

    def resume(self, thread_id: str, value: Any, *, actor: str,
               interrupt_id: str | None = None, reason: str | None = None) -> RunResult:
        """Record `actor`'s decision on the open interrupt, then continue."""
        try:
            canonical_text(value)
        except CanonicalJSONError as e:
            raise InvalidDecisionError(f"decision value is not JSON: {e}") from e
        cursor = self._load(thread_id)
        if self._is_repeat(cursor, value, actor, interrupt_id):
            # A retried webhook: record nothing; finish the run a crash may have cut short.
            return self._drive(cursor, confirm=True)
        self._check_waiting(cursor, interrupt_id)
        draft = step.decision(self._frame(cursor), cursor.head, value, actor, reason)
        return self._drive(self._append_first(cursor, draft))

    def update_state(self, thread_id: str, values: dict[str, Any], *, as_node: str | None,
                     actor: str | None = None, reason: str | None = None) -> RunResult:
        """Append StateEdited: `values` go through the reducers as `as_node`'s update."""
        cursor = self._load(thread_id)
        node = as_node or "__edit__"
        if as_node is not None and as_node not in self.graph.nodes:
            raise StateValidationError(node=as_node, field=None, problem="no such node")
        ops, state = self.graph.schema.apply(cursor.view.state, values, node=node)
        draft = self._edit_draft(cursor, as_node, ops, state, actor, reason)
        cursor = self._append_first(cursor, draft)
        return self._result(cursor)

    def continue_(self, thread_id: str) -> RunResult:
        """Run a thread that is not waiting from its head (after an edit or a crash)."""
        cursor = self._load(thread_id)
        return self._drive(cursor, confirm=True)

    def get_state(self, thread_id: str, seq: int | None = None) -> dict[str, Any]:
        self._catch_up(self.cp.log.partition_of(thread_id))
        return self.cp.projection.get_state(thread_id, seq)

    def history(self, thread_id: str) -> list[Checkpoint]:
        self._catch_up(self.cp.log.partition_of(thread_id))
        return self.cp.projection.history(thread_id, limit=1_000_000)

    # --- loading and appending ----------------------------------------------
    def _catch_up(self, partition: int) -> int:
        end = self.cp.log.end_offsets()[partition]
        self.cp.projection.wait_for_offset(partition, end, timeout_s=self.cp.catchup_timeout_s)
        return end

    def _load(self, thread_id: str) -> Cursor:
        self._catch_up(self.cp.log.partition_of(thread_id))
        view = self.cp.projection.require(thread_id)
        if view.graph != self.graph.name:
            raise GraphMismatchError(f"thread {thread_id!r} runs graph {view.graph!r}, "
                                     f"not {self.graph.name!r}")
        head = self.cp.projection.history(thread_id, after_seq=view.head.seq - 1, limit=1)[0]
        return Cursor(view=view, head=head.event, position=head.position)

    def _append(self, cursor: Cursor | None, draft: Draft) -> tuple[Cursor, Position]:
        event = seal(draft, prev_hash=cursor.view.head.hash if cursor else _genesis())
        fault_point("before_append")
        position = self.cp.log.append([event])[0]
        fault_point("after_append")
        outcome = advance(cursor.view if cursor else None, event)
        assert outcome.view is not None and outcome.rejection is None, outcome.rejection
        return Cursor(view=outcome.view, head=event, position=position), position

    def _append_first(self, cursor: Cursor | None, draft: Draft, *,
                      since: Position | None = None) -> Cursor:
        """Append, then make sure no other writer got this seq first."""
        start = since
        if start is None and cursor is not None and cursor.position is not None:
            start = Position(cursor.position.partition, cursor.position.offset + 1)
        new, position = self._append(cursor, draft)
        if start is not None and not first_writer_wins(self.cp.log, start, position, new.head,
                                                       cursor.view.head if cursor else None):
            raise ConflictError(f"another writer appended seq {new.head.seq} of thread "
                                f"{new.head.thread_id!r} first; ours was rejected")
        return new

    # --- the loop --------------------------------------------------------------
    def _drive(self, cursor: Cursor, *, confirm: bool = False) -> RunResult:
        while True:
            action = step.next_action(self.graph, cursor.view, cursor.head)
            if isinstance(action, step.Halt):
                return self._result(cursor)
            draft = self._execute(action, cursor)
            cursor = self._append_first(cursor, draft) if confirm else self._append(cursor, draft)[0]
            confirm = False

    def _execute(self, action: step.Action, cursor: Cursor) -> Draft:
        frame = self._frame(cursor)
        if isinstance(action, step.Finish):
            return step.finished(frame)
        if isinstance(action, step.Pause):
            return step.interrupted(frame, action.node, action.when, None, action.next, [])
        assert isinstance(action, step.RunNode)
        return self._run_node(self.graph.nodes[action.node], action, frame)

    def _run_node(self, spec: NodeSpec, action: step.RunNode, frame: step.StepFrame) -> Draft:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(spec, action, frame, attempt)
            except StateValidationError as e:
                return step.failed(frame, spec.name, e, attempt)  # loud, never retried
            except Exception as e:  # the node's own failure: data for the log
                if not spec.retry.should_retry(e, attempt):
                    log.warning("node failed", extra={"node": spec.name, "attempts": attempt})
                    return step.failed(frame, spec.name, e, attempt)
                time.sleep(spec.retry.backoff_s(attempt))

    def _attempt(self, spec: NodeSpec, action: step.RunNode, frame: step.StepFrame,
                 attempt: int) -> Draft:
        schema, view = self.graph.schema, frame.view
        ctx = NodeContext(thread_id=view.thread_id, seq=frame.seq, node=spec.name,
                          attempt=attempt, decision=action.decision)
        token = interrupts.enter(action.resumes)
        try:
            model = schema.load(view.state, node=spec.name)
            update = spec.fn(model, ctx) if spec.takes_context else spec.fn(model)
            fault_point(f"after_node:{spec.name}")
        except interrupts.NodeInterrupt as ni:
            return step.interrupted(frame, spec.name, "inside", ni.payload, spec.name,
                                    action.resumes)
        finally:
            interrupts.leave(token)
        ops, state = schema.apply(view.state, _as_update(update, spec.name), node=spec.name)
        nxt = step.route_after(self.graph, spec.name, schema.load(state, node=spec.name))
        return step.completed(frame, spec.name, ops, state, nxt, ctx.recorded_io)

    # --- helpers -----------------------------------------------------------------
    def _frame(self, cursor: Cursor) -> step.StepFrame:
        return step.StepFrame(graph=self.graph, view=cursor.view, occurred_at=self.cp.clock(),
                              snapshot_every=self.cp.snapshot_every)

    def _is_repeat(self, cursor: Cursor, value: Any, actor: str,
                   interrupt_id: str | None) -> bool:
        """True if the last decision of this thread is this very one and nothing waits."""
        if cursor.view.status == "interrupted":
            return False
        since = max(-1, cursor.view.head.seq - _REPEAT_WINDOW)
        for cp in reversed(self.cp.projection.history(cursor.view.thread_id, after_seq=since,
                                                      limit=_REPEAT_WINDOW + 1)):
            event = cp.event
            if event.type is EventType.DECISION_RECORDED:
                same_id = interrupt_id is None or interrupt_id == event.causation_id
                return same_id and event.actor == actor and \
                    step.resumes_of(event)[-1:] == [value]
        return False

    def _check_waiting(self, cursor: Cursor, interrupt_id: str | None) -> None:
        open_ = cursor.view.interrupt
        if cursor.view.status != "interrupted" or open_ is None:
            raise ThreadNotWaitingError(
                f"thread {cursor.view.thread_id!r} is {cursor.view.status}, not waiting")
        if interrupt_id is not None and interrupt_id != open_.id:
            raise StaleInterruptError(f"interrupt {interrupt_id!r} is not the open one "
                                      f"({open_.id!r})")

    def _edit_draft(self, cursor: Cursor, as_node: str | None, ops: list[Any],
                    state: dict[str, Any], actor: str | None, reason: str | None) -> Draft:
        frame = self._frame(cursor)
        open_ = cursor.view.interrupt
        if as_node is None:
            nxt = step.route_of(cursor.head)
        else:
            nxt = step.route_after(self.graph, as_node, self.graph.schema.load(state, node=as_node))
        closes = open_ is not None and as_node is not None and open_.node == as_node
        return frame.draft(EventType.STATE_EDITED, as_node, ops, state, actor=actor,
                           reason=reason, route={"next": nxt},
                           causation_id=open_.id if closes and open_ else None)

    def _result(self, cursor: Cursor) -> RunResult:
        view, head = cursor.view, cursor.head
        interrupt = None
        if view.interrupt is not None and view.status == "interrupted":
            import json

            interrupt = {"id": view.interrupt.id, "node": view.interrupt.node,
                         "when": view.interrupt.when,
                         "payload": json.loads(view.interrupt.payload)}
        return RunResult(thread_id=view.thread_id, status=view.status, seq=view.head.seq,
                         state=view.state, interrupt=interrupt, error=head.error)


def _genesis() -> str:
    from engine.chain import GENESIS_HASH

    return GENESIS_HASH


def _as_update(update: Any, node: str) -> dict[str, Any] | None:
    if update is None or isinstance(update, dict):
        return update
    raise StateValidationError(node=node, field=None,
                               problem=f"a node must return a dict or None, got "
                                       f"{type(update).__name__}")
