"""Thread commands on the ports: start, decide, edit — validated, appended, confirmed.

Used by the inline runner (which then drives the thread) and by the HTTP API
(which leaves driving to the workers). Every refusal raises a RunError
subclass before anything is appended.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from engine import step
from engine.blobs import RESERVED, refs_in
from engine.canonical import canonical_text
from engine.chain import GENESIS_HASH, Draft, seal
from engine.checkpointer import Checkpointer
from engine.errors import (
    CanonicalJSONError,
    ConflictError,
    GraphMismatchError,
    InvalidDecisionError,
    StaleInterruptError,
    StateValidationError,
    ThreadBusyError,
    ThreadEndedError,
    ThreadExistsError,
    ThreadNotWaitingError,
    ThreadRunningInlineError,
    UnstorableTextError,
)
from engine.eventlog import Position, Tail
from engine.events import Event, EventType
from engine.faults import fault_point
from engine.forking import fork_draft
from engine.graph import CompiledGraph
from engine.ledger import ThreadView, advance
from engine.projection import (
    Checkpoint,
    CheckpointNotFoundError,
    Progress,
    ThreadGraph,
    ThreadHead,
    ThreadNotFoundError,
)
from engine.race import first_writer_wins

_REPEAT_WINDOW = 200  # how far back a retried decision is recognised
_ANSWER_WINDOW = 50  # events after a question searched for its answer
_CANCEL_TRIES = 3  # a cancel that loses a race to a worker's step looks again
# A command skips waiting for the projector only while it is demonstrably alive and
# just a few ms behind: it advanced on the partition within _LIVE_S, and the tail
# it has not applied yet is short. Otherwise it waits, and says plainly when no
# projector comes: nothing is appended on a head a dead projector cannot vouch for.
_LIVE_S = 1.0
_TAIL_SCAN = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Cursor:
    """The head of a thread as this process knows it."""

    view: ThreadView
    head: Event
    position: Position | None
    projected_end: int = 0  # partition offset below which `view` holds all of the thread
    recent: tuple[Checkpoint, ...] = ()  # events in `view` the projection had yet to apply


@dataclass(frozen=True, slots=True, kw_only=True)
class Recorded:
    """A human's command (a decision, a cancel) as the log holds it."""

    cursor: Cursor
    # When this very command was already recorded: that event; nothing was appended.
    earlier: Event | None = None

    @property
    def repeated(self) -> bool:
        return self.earlier is not None

    @property
    def event(self) -> Event:
        """The event that records it: the earlier one for a repeat, else the new one."""
        return self.earlier or self.cursor.head


def catch_up(cp: Checkpointer, thread_id: str) -> int:
    """Wait until the projection holds every event of the thread logged so far.

    Returns the end offset of the thread's partition, below which that holds;
    CatchUpTimeoutError after cp.catchup_timeout_s.
    """
    partition = _partition(cp, thread_id)
    progress = cp.projection.progress(partition)
    tail = _tail(cp, thread_id, partition, progress)
    if _behind(progress, tail, thread_id):
        cp.projection.wait_for_offset(partition, tail.end, timeout_s=cp.catchup_timeout_s)
    return tail.end


def thread_graph(cp: Checkpointer, thread_id: str) -> ThreadGraph:
    """The thread's graph and mode; catches up only for a thread the projection lacks.

    A thread never changes graph, so a projection that knows the thread at all knows it.
    """
    _storable_id(thread_id)
    found = cp.projection.thread_graph(thread_id)
    if found is None:
        catch_up(cp, thread_id)
        found = cp.projection.thread_graph(thread_id)
    if found is None:
        raise ThreadNotFoundError(thread_id)
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """A thread as of its partition's end offset, read for acting on it."""

    view: ThreadView | None  # None: the thread has no accepted event
    head: Checkpoint | None  # the event at view.head.seq
    end: int  # the partition's end offset when read
    # Accepted events of the thread that the projection had yet to apply, oldest first.
    recent: tuple[Checkpoint, ...] = ()


def read_head(cp: Checkpointer, thread_id: str) -> Head:
    """The thread as the projection holds it, with the thread's newer events folded on.

    The row and the partition's progress come in one round trip, the unapplied
    tail in one fetch. While the projector is demonstrably alive and the tail is
    short, the thread's own events in it are folded here by the projector's rule
    (a resume right after an interrupt then waits for nobody); otherwise the
    projector is waited for, and the row read again.
    """
    partition = _partition(cp, thread_id)
    found = cp.projection.thread_head(thread_id, partition)
    tail = _tail(cp, thread_id, partition, found.progress)
    if tail.records is not None:
        return _folded(found, tail, thread_id)
    cp.projection.wait_for_offset(partition, tail.end, timeout_s=cp.catchup_timeout_s)
    again = cp.projection.thread_head(thread_id, partition)
    return Head(view=again.view, head=again.head, end=tail.end)


def _partition(cp: Checkpointer, thread_id: str) -> int:
    _storable_id(thread_id)
    return cp.log.partition_of(thread_id)


def _storable_id(thread_id: str) -> None:
    """No event can name a thread whose id holds NUL: said before any read."""
    if "\x00" in thread_id:
        raise UnstorableTextError(f"thread id {thread_id!r} holds a NUL character, which no "
                                  "reader can store")


def _tail(cp: Checkpointer, thread_id: str, partition: int, progress: Progress) -> Tail:
    """The partition's end and, from a live projector's position, the thread's records
    before it.

    Under load the projector lags the log by a few ms with other threads' events;
    those are scanned (not decoded) only while it advanced lately (else `records`
    is None).
    """
    live = progress.idle_s <= _LIVE_S
    return cp.log.tail(partition, progress.next_offset, most=_TAIL_SCAN if live else 0,
                       thread_id=thread_id)


def _behind(progress: Progress, tail: Tail, thread_id: str) -> bool:
    """Whether the unprojected records may hold one of the thread's events."""
    if progress.next_offset >= tail.end:
        return False
    return tail.records is None or any(True for _ in _own_events(tail, thread_id))


def _own_events(tail: Tail, thread_id: str) -> Iterator[tuple[Event, Position]]:
    """The thread's events among the tail's records. An undecodable record is a
    dead letter: never applied, it cannot move a head."""
    for d in tail.records or ():
        if d.event is not None and d.event.thread_id == thread_id:
            yield d.event, d.position


def _folded(found: ThreadHead, tail: Tail, thread_id: str) -> Head:
    """The projection's head with the thread's events from `tail` folded on, as the
    projector will: rejected events and dead letters leave the head where it is."""
    view, head, recent = found.view, found.head, []
    for event, position in _own_events(tail, thread_id):
        outcome = advance(view, event)
        if outcome.rejection is None:
            view, head = outcome.view, Checkpoint(event=event, position=position)
            recent.append(head)
    return Head(view=view, head=head, end=tail.end, recent=tuple(recent))


class ThreadService:
    """Start, decide and edit threads of one graph through a checkpointer's ports."""

    def __init__(self, graph: CompiledGraph, cp: Checkpointer) -> None:
        self.graph = graph
        self.cp = cp

    # --- reading -------------------------------------------------------------
    def catch_up(self, thread_id: str) -> int:
        return catch_up(self.cp, thread_id)

    def load(self, thread_id: str) -> Cursor:
        return self.cursor_of(thread_id, read_head(self.cp, thread_id))

    def cursor_of(self, thread_id: str, found: Head) -> Cursor:
        """The cursor on a head read_head() returned, if it is a thread of this graph."""
        view, head = found.view, found.head
        if view is None:
            raise ThreadNotFoundError(thread_id)
        if head is None:
            raise CheckpointNotFoundError(thread_id, view.head.seq)
        self._require_graph(thread_id, view.graph)
        return Cursor(view=view, head=head.event, position=head.position,
                      projected_end=found.end, recent=found.recent)

    # --- commands ------------------------------------------------------------
    def start(self, thread_id: str, input: dict[str, Any], *, actor: str | None,
              mode: str) -> Cursor:
        """Append ThreadStarted; ThreadExistsError if the thread has any accepted event."""
        def started() -> Draft:
            ops, state = self.graph.schema.initial(input)
            first = step.first_node(self.graph, self.graph.schema.load(state, node="__start__"))
            # No snapshot: the delta sets every field, so it already is the whole state.
            return Draft(thread_id=thread_id, seq=0, type=EventType.THREAD_STARTED, node=None,
                         occurred_at=self.cp.clock(), graph=self.graph.ref, delta=ops,
                         state_after=state, actor=actor, route={"next": first}, mode=mode)
        return self._open(thread_id, started)

    def fork(self, history: list[Event], thread_id: str, *, actor: str | None,
             reason: str | None, mode: str) -> Cursor:
        """Append ThreadForked: `thread_id` goes on from the last of `history` (the source's
        accepted events up to the checkpoint), see engine.forking."""
        self._require_graph(history[-1].thread_id, history[-1].graph.name)
        return self._open(thread_id, lambda: fork_draft(
            self.graph, history, thread_id=thread_id, occurred_at=self.cp.clock(),
            actor=actor, reason=reason, mode=mode, resolve=self.cp.blobs.resolved))

    def _require_graph(self, thread_id: str, graph_name: str) -> None:
        if graph_name != self.graph.name:
            raise GraphMismatchError(f"thread {thread_id!r} runs graph {graph_name!r}, "
                                     f"not {self.graph.name!r}")

    def _open(self, thread_id: str, first: Callable[[], Draft]) -> Cursor:
        """Append a new thread's first event; ThreadExistsError if it has any already."""
        found = read_head(self.cp, thread_id)
        if found.view is not None:
            raise ThreadExistsError(f"thread {thread_id!r} already exists")
        partition = self.cp.log.partition_of(thread_id)
        return self.append_confirmed(None, first(), since=Position(partition, found.end))

    def decide(self, thread_id: str, value: Any, *, actor: str, interrupt_id: str | None = None,
               reason: str | None = None) -> Recorded:
        """Append DecisionRecorded on the open interrupt (a repeat appends nothing)."""
        _require_json_decision(value)  # refused before anything is read
        return self._decided(self.load(thread_id), value, actor, interrupt_id, reason)

    def decide_on(self, cursor: Cursor, value: Any, *, actor: str,
                  interrupt_id: str | None = None, reason: str | None = None) -> Recorded:
        """decide() on the thread as the caller just load()ed it: one read fewer."""
        _require_json_decision(value)
        return self._decided(cursor, value, actor, interrupt_id, reason)

    def _decided(self, cursor: Cursor, value: Any, actor: str, interrupt_id: str | None,
                 reason: str | None) -> Recorded:
        earlier = self.find_repeat(cursor, value, actor, interrupt_id)
        if earlier is not None:
            return Recorded(cursor=cursor, earlier=earlier)
        self._check_waiting(cursor, interrupt_id)
        draft = step.decision(self.frame(cursor), cursor.head, value, actor, reason)
        return Recorded(cursor=self.append_confirmed(cursor, draft))

    def cancel(self, thread_id: str, *, actor: str, reason: str | None,
               cursor: Cursor | None = None) -> Recorded:
        """Append ThreadCancelled: the thread stops for good. A repeat by the same actor
        appends nothing; a thread already ended is ThreadEndedError. `cursor`: the
        thread as the caller just load()ed it, for the first try (one read fewer).

        A thread run inline that is running is refused (ThreadRunningInlineError): its
        runner confirms only a run's first append, so it would go on running nodes
        past the cancel. Waiting, failed and worker threads have no such runner.
        """
        for _ in range(_CANCEL_TRIES - 1):
            try:
                return self._cancelled(cursor or self.load(thread_id), actor, reason)
            except ConflictError:  # a worker (or a racing cancel) wrote first: look again
                cursor = None
        return self._cancelled(cursor or self.load(thread_id), actor, reason)

    def _cancelled(self, cursor: Cursor, actor: str, reason: str | None) -> Recorded:
        view, head = cursor.view, cursor.head
        if view.status == "cancelled" and head.actor == actor:
            return Recorded(cursor=cursor, earlier=head)
        if view.status in ("completed", "cancelled"):
            raise ThreadEndedError(f"thread {view.thread_id!r} is already {view.status}")
        if view.status == "running" and view.mode != "worker":
            raise ThreadRunningInlineError(
                f"thread {view.thread_id!r} is running inline: stop its process, or cancel "
                "it once it waits or has failed")
        draft = step.cancelled(self.frame(cursor), actor, reason)
        return Recorded(cursor=self.append_confirmed(cursor, draft))

    def edit(self, thread_id: str, values: dict[str, Any], *, as_node: str | None,
             actor: str | None, reason: str | None) -> Cursor:
        """Append StateEdited: `values` through the reducers as `as_node`'s update."""
        cursor = self.load(thread_id)
        if as_node is not None and as_node not in self.graph.nodes:
            raise StateValidationError(node=as_node, field=None, problem="no such node")
        if as_node is None and not step.edit_keeps_course(self.graph, cursor.view,
                                                          cursor.head):
            raise ThreadBusyError(f"thread {thread_id!r} has a step under way (a decision on "
                                  "its way to its node, or a pause due): edit it once that "
                                  "step has run, or edit as a node")
        ops, state = self.graph.schema.apply(self.cp.blobs.resolved(cursor.view.state), values,
                                             node=as_node or "__edit__")
        return self.append_confirmed(cursor, self._edit_draft(cursor, as_node, ops, state,
                                                              actor, reason))

    # --- appending -------------------------------------------------------------
    def seal_next(self, cursor: Cursor | None, draft: Draft) -> Cursor:
        """The cursor after `draft`, sealed and applied but not yet appended.

        Its large texts are written to the blob store first (the only I/O here, and
        only when there are any), so the event can point at them.
        """
        prior = cursor.view.state if cursor else {}
        draft = self.cp.blobs.stored(draft, prior)
        event = seal(draft, prev_hash=cursor.view.head.hash if cursor else GENESIS_HASH)
        outcome = advance(cursor.view if cursor else None, event, sealed_from=draft.state_after)
        assert outcome.view is not None and outcome.rejection is None, outcome.rejection
        return Cursor(view=outcome.view, head=event, position=None,
                      projected_end=cursor.projected_end if cursor else 0)

    def commit(self, pending: list[Cursor]) -> list[Cursor]:
        """Append the pending events in order in one flush; every one is acked on return."""
        fault_point("before_append")
        positions = self.cp.log.append([c.head for c in pending])
        fault_point("after_append")
        return [replace(c, position=p) for c, p in zip(pending, positions, strict=True)]

    def append(self, cursor: Cursor | None, draft: Draft) -> Cursor:
        """Seal, append, wait for the ack; the new cursor."""
        return self.commit([self.seal_next(cursor, draft)])[-1]

    def append_confirmed(self, cursor: Cursor | None, draft: Draft, *,
                         since: Position | None = None) -> Cursor:
        """Append, then make sure no other writer got this seq first (ConflictError)."""
        return self.commit_confirmed(cursor, [self.seal_next(cursor, draft)], since=since)[-1]

    def commit_confirmed(self, base: Cursor | None, pending: list[Cursor], *,
                         since: Position | None = None) -> list[Cursor]:
        """commit(), then check the first pending event won its seq against other writers.

        Records below the projected end were folded into the head we acted on, so
        only records from there up to ours can have beaten us.
        """
        if since is None and base is not None and base.position is not None:
            since = Position(base.position.partition,
                             max(base.position.offset + 1, base.projected_end))
        done = self.commit(pending)
        first = done[0]
        assert first.position is not None
        if since is not None and not first_writer_wins(self.cp.log, since, first.position,
                                                       first.head, base.view.head if base
                                                       else None):
            raise ConflictError(f"another writer appended seq {first.head.seq} of thread "
                                f"{first.head.thread_id!r} first; ours was rejected")
        return done

    # --- helpers -----------------------------------------------------------------
    def frame(self, cursor: Cursor) -> step.StepFrame:
        return step.StepFrame(graph=self.graph, view=cursor.view, occurred_at=self.cp.clock(),
                              snapshot_every=self.cp.snapshot_every,
                              resolve=self.cp.blobs.resolved)

    def find_repeat(self, cursor: Cursor, value: Any, actor: str,
                    interrupt_id: str | None) -> Event | None:
        """The thread's last decision if it is this very one and nothing waits, else None."""
        if cursor.view.status == "interrupted":
            return None
        for event in self._recent_events(cursor):
            if event.type is EventType.THREAD_CANCELLED:  # what it closed has no answer
                return None
            if event.type is EventType.DECISION_RECORDED:
                return event if step.is_decision(event, value, actor, interrupt_id) else None
        return None

    def answer_to(self, thread_id: str, interrupt_id: str | None, value: Any,
                  actor: str) -> Event | None:
        """The accepted decision on `interrupt_id` if it is this very one (same actor and
        value), however far the thread has moved on since; find_repeat, for a caller that
        names the interrupt it answers."""
        seq = step.interrupt_seq(thread_id, interrupt_id)
        if interrupt_id is None or seq is None:
            return None
        self.catch_up(thread_id)
        # edits made while it waited may lie between the question and its answer
        for cp in self.cp.projection.history(thread_id, after_seq=seq, limit=_ANSWER_WINDOW):
            if cp.event.type is EventType.DECISION_RECORDED \
                    and cp.event.causation_id == interrupt_id:
                return cp.event if step.is_decision(cp.event, value, actor, interrupt_id) \
                    else None
        return None

    def _recent_events(self, cursor: Cursor) -> Iterator[Event]:
        """The thread's recent events, newest first: those the cursor folded from the
        log, then up to _REPEAT_WINDOW of the projection's (read only if still wanted)."""
        yield from (c.event for c in reversed(cursor.recent))
        below = cursor.recent[0].event.seq if cursor.recent else cursor.view.head.seq + 1
        since = max(-1, cursor.view.head.seq - _REPEAT_WINDOW)
        older = self.cp.projection.history(cursor.view.thread_id, after_seq=since,
                                           limit=_REPEAT_WINDOW + 1)
        yield from (c.event for c in reversed(older) if c.event.seq < below)

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
        open_ = cursor.view.interrupt
        if as_node is None:
            nxt = step.route_of(cursor.head)
        else:
            nxt = step.route_after(self.graph, as_node, self.graph.schema.load(state, node=as_node))
        # An edit as a node moves the thread on: the open question, if any, is closed
        # (answered, when it is that node's). Without one the question stays open, and
        # the answers its node already got from interrupt() must reach the next decision.
        closes = open_ is not None and as_node is not None
        kept = step.resumes_of(cursor.head) if cursor.view.status == "interrupted" \
            and not closes else []
        return self.frame(cursor).draft(EventType.STATE_EDITED, as_node, ops, state, actor=actor,
                                        reason=reason, route={"next": nxt},
                                        causation_id=open_.id if closes and open_ else None,
                                        io={"resumes": kept} if kept else None)


def _require_json_decision(value: Any) -> None:
    try:
        canonical_text(value)
    except CanonicalJSONError as e:
        raise InvalidDecisionError(f"decision value is not JSON: {e}") from e
    if refs_in(value):  # `amber verify` would look for the blob it seems to name
        raise InvalidDecisionError(f"decision value {RESERVED}")


def interrupt_dict(view: ThreadView) -> dict[str, Any] | None:
    """The open interrupt as plain data (payload parsed)."""
    if view.interrupt is None or view.status != "interrupted":
        return None
    i = view.interrupt
    return {"id": i.id, "node": i.node, "when": i.when, "payload": json.loads(i.payload)}
