"""What the HTTP API does, without HTTP: start and decide through ThreadService, and reads.

The API never runs a node: a start appends ThreadStarted in worker mode and a
decision appends DecisionRecorded; `amber worker` takes it from there.

Idempotency is derived from the log, never stored beside it (nothing may exist
that a rebuild from the topic would not restore):

- start: a thread id is the natural key. A start whose thread already exists
  with the same graph, actor and input (the ThreadStarted delta) is the same
  request again and gets the first answer; anything else is a 409.
- decide: ThreadService.decide recognises a repeat of the last decision once
  nothing waits; a retry that arrives after the thread moved on, or that lost
  a race to an identical request, is recognised here by finding the decision
  that answered its interrupt.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from consumers.api_errors import (
    GraphNotServedError,
    IdempotencyMismatchError,
    NotOnWorkersError,
    UnknownGraphError,
)
from consumers.api_models import (
    CancelResponse,
    DecisionResponse,
    ForkResponse,
    HistoryPage,
    StartResponse,
    StateOut,
    ThreadList,
    cancel_of,
    decision_of,
    event_of,
    forked_of,
    summary_of,
)
from engine.canonical import same_json
from engine.checkpointer import Checkpointer
from engine.errors import (
    ConflictError,
    StaleInterruptError,
    ThreadExistsError,
    ThreadNotWaitingError,
)
from engine.events import Event, EventType, ForkOrigin
from engine.graph import CompiledGraph
from engine.ledger import ThreadView
from engine.projection import ThreadNotFoundError
from engine.reads import history_through
from engine.service import ThreadService, catch_up, read_head

WORKER_MODE = "worker"
# Never change without a version: the same Idempotency-Key must keep naming the same thread.
_KEY_NAMESPACE = uuid.UUID("0b7c3f0e-5d2a-4c1e-9a57-3e0f6d1b2a94")

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer(Generic[T]):
    body: T
    replayed: bool  # the first answer to an identical earlier request; nothing was appended


@dataclass(frozen=True, slots=True)
class _First:
    event: Event  # the thread's first event
    repeated: bool  # appended by an earlier, identical request




def thread_id_for_key(actor: str, key: str) -> str:
    """The thread a start with this Idempotency-Key names (per actor: keys never collide)."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{actor}\x1f{key}"))


class Commands:
    """The API's operations over one checkpointer and the graphs it serves (by name)."""

    def __init__(self, *, cp: Checkpointer,
                 graphs: Iterable[CompiledGraph], max_waiting: int) -> None:
        """`max_waiting` bounds the requests that may wait for the projection at once.

        The PostgreSQL reader holds a pooled connection while a request waits: as
        many waiters as the pool has connections would leave none for plain reads,
        so the API allows pool size - 1.
        """
        self.cp = cp
        self.graphs: dict[str, CompiledGraph] = {g.name: g for g in graphs}
        self._gate = threading.BoundedSemaphore(max_waiting)

    # --- commands ----------------------------------------------------------------
    def start(self, *, graph_name: str, thread_id: str, input: dict[str, Any], actor: str,
              from_key: bool) -> Answer[StartResponse]:
        """Append ThreadStarted (worker mode); the first answer again for a repeat."""
        with self._gate:
            return self._start(graph_name, thread_id, input, actor, from_key)

    def _start(self, graph_name: str, thread_id: str, input: dict[str, Any], actor: str,
               from_key: bool) -> Answer[StartResponse]:
        graph = self.graphs.get(graph_name)
        if graph is None:
            served = ", ".join(sorted(self.graphs)) or "none (set AMBER_GRAPHS)"
            raise UnknownGraphError(f"graph {graph_name!r} is not served here; served: {served}")
        service = ThreadService(graph, self.cp)
        first = self._opened(
            thread_id, from_key,
            lambda: service.start(thread_id, input, actor=actor, mode=WORKER_MODE).head,
            lambda earlier: self._same_start(graph, earlier, input, actor))
        return Answer(body=_started(first.event), replayed=first.repeated)

    def fork(self, *, source_id: str, seq: int, thread_id: str, reason: str | None,
             actor: str, from_key: bool) -> Answer[ForkResponse]:
        """Append ThreadForked (worker mode) from checkpoint `seq` of `source_id`; the
        first answer again for a repeat."""
        with self._gate:
            return self._fork(source_id, seq, thread_id, reason, actor, from_key)

    def _fork(self, source_id: str, seq: int, thread_id: str, reason: str | None, actor: str,
              from_key: bool) -> Answer[ForkResponse]:
        history = history_through(self.cp, source_id, seq)
        at = history[-1]
        graph = self._serving(source_id, at.graph.name)
        service = ThreadService(graph, self.cp)
        first = self._opened(
            thread_id, from_key,
            lambda: service.fork(history, thread_id, actor=actor, reason=reason,
                                 mode=WORKER_MODE).head,
            lambda earlier: _same_fork(earlier, at, actor))
        return Answer(body=forked_of(first.event), replayed=first.repeated)

    def decide(self, *, thread_id: str, value: Any, interrupt_id: str | None,
               reason: str | None, actor: str) -> Answer[DecisionResponse]:
        """Append DecisionRecorded on the open interrupt; the first answer for a repeat."""
        with self._gate:
            return self._decide(thread_id, value, interrupt_id, reason, actor)

    def _decide(self, thread_id: str, value: Any, interrupt_id: str | None,
                reason: str | None, actor: str) -> Answer[DecisionResponse]:
        found = read_head(self.cp, thread_id)
        service = ThreadService(self._served_on_workers(thread_id, found.view), self.cp)
        cursor = service.cursor_of(thread_id, found)
        view = cursor.view
        aimed_at = interrupt_id or (view.interrupt.id if view.status == "interrupted"
                                    and view.interrupt is not None else None)
        try:
            decided = service.decide_on(cursor, value, actor=actor, interrupt_id=interrupt_id,
                                        reason=reason)
        except (ThreadNotWaitingError, StaleInterruptError, ConflictError):
            earlier = service.answer_to(thread_id, aimed_at, value, actor)
            if earlier is None:
                raise
            return Answer(body=decision_of(earlier), replayed=True)
        return Answer(body=decision_of(decided.event), replayed=decided.repeated)

    def cancel(self, *, thread_id: str, reason: str | None,
               actor: str) -> Answer[CancelResponse]:
        """Append ThreadCancelled, whatever runs the thread; the first answer for a repeat."""
        with self._gate:
            found = read_head(self.cp, thread_id)  # the graph and the first try's head
            if found.view is None:
                raise ThreadNotFoundError(thread_id)
            service = ThreadService(self._serving(thread_id, found.view.graph), self.cp)
            done = service.cancel(thread_id, actor=actor, reason=reason,
                                  cursor=service.cursor_of(thread_id, found))
            return Answer(body=cancel_of(done.event), replayed=done.repeated)

    # --- reads ---------------------------------------------------------------------
    def thread(self, thread_id: str) -> ThreadView:
        """The thread's view; a miss waits for the projection once (read-your-writes)."""
        view = self.cp.projection.get_thread(thread_id)
        if view is not None:
            return view
        with self._gate:
            return self._caught_up(thread_id)

    def history(self, thread_id: str, *, after_seq: int, limit: int) -> HistoryPage:
        self.thread(thread_id)
        page = self.cp.projection.history(thread_id, after_seq=after_seq, limit=limit)
        nxt = page[-1].event.seq if len(page) == limit and page else None
        return HistoryPage(thread_id=thread_id, events=[event_of(c) for c in page],
                           next_after_seq=nxt)

    def list_threads(self, *, status: str | None, graph: str | None, limit: int,
                     offset: int) -> ThreadList:
        views = self.cp.projection.list_threads(status=status, graph=graph, limit=limit,
                                                offset=offset)
        return ThreadList(threads=[summary_of(v) for v in views], limit=limit, offset=offset)

    def state(self, thread_id: str, seq: int | None, *, texts: bool = False) -> StateOut:
        view = self.thread(thread_id)
        state = view.state if seq is None or seq == view.head.seq else \
            self.cp.projection.get_state(thread_id, seq)
        if texts:
            state = self.cp.blobs.resolved(state)
        return StateOut.model_validate({"thread_id": thread_id, "status": view.status,
                                        "seq": view.head.seq if seq is None else seq,
                                        "state": state})

    # --- helpers (callers hold the gate) --------------------------------------------------
    def _served_on_workers(self, thread_id: str, found: ThreadView | None) -> CompiledGraph:
        """The thread's graph, if this server serves it and the workers drive the thread."""
        if found is None:
            raise ThreadNotFoundError(thread_id)
        graph = self._serving(thread_id, found.graph)
        if found.mode != WORKER_MODE:
            raise NotOnWorkersError(f"thread {thread_id!r} runs {found.mode or 'inline'}, not on "
                                    "the workers: nothing would continue it after a decision "
                                    "here; resume it with `amber resume`")
        return graph

    def _serving(self, thread_id: str, graph_name: str) -> CompiledGraph:
        """The thread's graph, if this server serves it (it validates against its code)."""
        graph = self.graphs.get(graph_name)
        if graph is None:
            raise GraphNotServedError(f"thread {thread_id!r} runs graph {graph_name!r}, which "
                                      "this server does not serve")
        return graph

    def _caught_up(self, thread_id: str) -> ThreadView:
        """The view once the projection holds the thread's events (read-your-writes)."""
        catch_up(self.cp, thread_id)
        return self.cp.projection.require(thread_id)

    def _opened(self, thread_id: str, from_key: bool,
                open_: Callable[[], Event], same: Callable[[Event], bool]) -> _First:
        """open_() a new thread; if the id is taken, its first event when it is this very
        request's (a retry, or the winner of a race with one), else the refusal."""
        try:
            return _First(event=open_(), repeated=False)
        except (ThreadExistsError, ConflictError) as e:
            first = self._first_event(thread_id)
            if first is not None and same(first):
                return _First(event=first, repeated=True)
            if from_key and first is not None:
                raise IdempotencyMismatchError(
                    f"this Idempotency-Key already made thread {thread_id!r}, from another "
                    "request (graph, input, checkpoint or actor)") from None
            raise e from None

    def _first_event(self, thread_id: str) -> Event | None:
        catch_up(self.cp, thread_id)  # a racing winner may not be projected yet
        first = self.cp.projection.history(thread_id, limit=1)
        return first[0].event if first else None

    def _same_start(self, graph: CompiledGraph, first: Event, input: dict[str, Any],
                    actor: str) -> bool:
        if first.type is not EventType.THREAD_STARTED or first.graph.name != graph.name \
                or first.actor != actor or first.mode != WORKER_MODE:
            return False
        ops, _ = graph.schema.initial(input)  # an input that does not validate raises here
        return same_json(ops, self.cp.blobs.filled_in(first.ops()))  # texts, not pointers


def _same_fork(first: Event, at: Event, actor: str) -> bool:
    return first.type is EventType.THREAD_FORKED and first.actor == actor \
        and first.mode == WORKER_MODE and first.parent == ForkOrigin(
            thread_id=at.thread_id, seq=at.seq, hash=at.hash)


def _started(first: Event) -> StartResponse:
    return StartResponse(thread_id=first.thread_id, graph=first.graph.name, status="running",
                         seq=first.seq)

