"""The pure step logic: from a thread's head, what happens next, and the event drafts.

No I/O, clock or randomness here: the runner and the workers are thin shells
around these functions, and replay re-runs them against recorded history.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from engine.canonical import canonical_text, same_json
from engine.chain import Draft
from engine.delta import Op, State
from engine.errors import StateValidationError
from engine.events import SNAPSHOT_TYPES, ErrorInfo, Event, EventType, InterruptInfo
from engine.graph import END, START, CompiledGraph
from engine.ledger import ThreadView

_HALTING = {"interrupted": "interrupted", "completed": "completed", "failed": "failed",
            "cancelled": "cancelled"}


@dataclass(frozen=True, slots=True)
class RunNode:
    node: str
    resumes: list[Any]  # decisions for interrupt() calls, in order
    decision: Any


@dataclass(frozen=True, slots=True)
class Pause:
    node: str
    when: str  # "before" or "after"
    next: str


@dataclass(frozen=True, slots=True)
class Finish:
    pass


@dataclass(frozen=True, slots=True)
class Halt:
    status: str


Action = RunNode | Pause | Finish | Halt


def route_of(event: Event) -> str:
    """The node the thread goes to after `event` (END when none)."""
    if event.route is None:
        return END
    return str(json.loads(event.route).get("next") or END)


def resumes_of(event: Event) -> list[Any]:
    if event.io is None:
        return []
    return list(json.loads(event.io).get("resumes", []))


def interrupt_id(thread_id: str, seq: int, node: str) -> str:
    """The id of the interrupt opened by the event at `seq`: `thread:seq:node`."""
    return f"{thread_id}:{seq}:{node}"


def interrupt_seq(thread_id: str, interrupt: str | None) -> int | None:
    """The seq inside an id made by interrupt_id for this thread; None for any other string."""
    prefix = f"{thread_id}:"
    if interrupt is None or not interrupt.startswith(prefix):
        return None
    seq, _, _ = interrupt[len(prefix):].partition(":")
    return int(seq) if seq.isascii() and seq.isdigit() and len(seq) < 16 else None


def is_decision(event: Event, value: Any, actor: str, interrupt: str | None) -> bool:
    """Whether `event` records this very decision (on `interrupt`, if one is named)."""
    return (event.type is EventType.DECISION_RECORDED and event.actor == actor
            and (interrupt is None or interrupt == event.causation_id)
            and same_json(resumes_of(event)[-1:], [value]))


def next_action(graph: CompiledGraph, view: ThreadView, head: Event) -> Action:
    """What the thread does next, decided from its view and head event alone."""
    if view.status in _HALTING:
        return Halt(view.status)
    nxt = route_of(head)
    if head.type is EventType.NODE_COMPLETED and head.node in graph.interrupt_after:
        return Pause(node=str(head.node), when="after", next=nxt)
    if head.type is EventType.THREAD_FORKED:  # its first step was settled when it was made
        return _onward(graph, nxt, resumes_of(head), answered=True)
    carried = head.type is EventType.DECISION_RECORDED and head.node == nxt
    answered = carried or (head.type is EventType.STATE_EDITED and head.node == nxt)
    return _onward(graph, nxt, resumes_of(head) if carried else [], answered=answered)


def _onward(graph: CompiledGraph, nxt: str, resumes: list[Any], *, answered: bool) -> Action:
    """The step towards `nxt`: the end, the gate before it unless answered, or the node."""
    if nxt == END:
        return Finish()
    if nxt in graph.interrupt_before and not answered:
        return Pause(node=nxt, when="before", next=nxt)
    return RunNode(node=nxt, resumes=resumes, decision=resumes[-1] if resumes else None)


def edit_keeps_course(graph: CompiledGraph, view: ThreadView, head: Event) -> bool:
    """Whether a running thread's next step would stay as it is under an edit without
    as_node. It would not while a decision is on its way to its node, a pause after a
    node is due, or a fork's first step was settled past a gate: the edit, as the new
    head, would drop what that step needs (the answer, the pause)."""
    if view.status != "running":
        return True
    plain = _onward(graph, route_of(head), [], answered=False)  # what an edit's head gives
    return next_action(graph, view, head) == plain


class RouteError(Exception):
    """A router raised, or returned a key its mapping does not know: the graph's fault,
    so the node whose result it routes is failed, never retried."""


def route_after(graph: CompiledGraph, node: str, state: BaseModel) -> str:
    """The next node after `node` ran (or was edited as) on `state`."""
    branch = graph.branches.get(node)
    if branch is None:
        return graph.edges[node]
    try:
        key = branch.router(state)
    except Exception as e:  # retrying the node would only run its effects again
        raise RouteError(f"router of {node!r} raised {type(e).__name__}: {e}") from e
    target = branch.mapping.get(key) if branch.mapping is not None else key
    if not isinstance(target, str) or (target not in graph.nodes and target != END):
        raise RouteError(f"router of {node!r} returned {key!r}, which leads nowhere")
    return target


def first_node(graph: CompiledGraph, state: BaseModel) -> str:
    return route_after(graph, START, state)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFrame:
    """The facts every draft of the next event shares."""

    graph: CompiledGraph
    view: ThreadView
    occurred_at: int
    snapshot_every: int
    # The stored state with its blob pointers filled in, for nodes and routers
    # (engine.blobstore.Blobs.resolved); as it is when no blob store is configured.
    resolve: Callable[[State], State] = lambda state: state

    @property
    def seq(self) -> int:
        return self.view.head.seq + 1

    def draft(self, type_: EventType, node: str | None, ops: list[Op], state: State,
              **extra: Any) -> Draft:
        snap = type_ in SNAPSHOT_TYPES or self.seq % self.snapshot_every == 0
        return Draft(thread_id=self.view.thread_id, seq=self.seq, type=type_, node=node,
                     occurred_at=self.occurred_at, graph=self.graph.ref, delta=ops,
                     state_after=state, with_snapshot=snap, mode=self.view.mode, **extra)


def completed(frame: StepFrame, node: str, ops: list[Op], state: State, nxt: str,
              io: list[dict[str, Any]]) -> Draft:
    return frame.draft(EventType.NODE_COMPLETED, node, ops, state, route={"next": nxt},
                       io=io or None)


def interrupted(frame: StepFrame, node: str, when: str, payload: Any, nxt: str,
                resumes: list[Any]) -> Draft:
    try:
        text = canonical_text(payload)
    except Exception as e:
        raise StateValidationError(node=node, field=None,
                                   problem=f"interrupt payload is not JSON: {e}") from e
    info = InterruptInfo(id=interrupt_id(frame.view.thread_id, frame.seq, node), node=node,
                         when=when, payload=text)
    return frame.draft(EventType.INTERRUPTED, node, [], frame.view.state, interrupt=info,
                       route={"next": nxt}, io={"resumes": resumes} if resumes else None)


def decision(frame: StepFrame, head: Event, value: Any, actor: str, reason: str | None) -> Draft:
    info = frame.view.interrupt
    assert info is not None  # the runner checked the thread is waiting
    resumes = [*resumes_of(head), value]
    return frame.draft(EventType.DECISION_RECORDED, info.node, [], frame.view.state,
                       actor=actor, causation_id=info.id, reason=reason,
                       route={"next": route_of(head)},
                       io={"resumes": resumes, "interrupt_id": info.id})


def failed(frame: StepFrame, node: str, error: BaseException, attempts: int) -> Draft:
    # escaped: a NUL in an exception's text must not keep the failure from the log
    message = str(error)[:4000].replace("\x00", "\\x00")
    kind = type(error).__name__.replace("\x00", "\\x00")
    info = ErrorInfo(type=kind, message=message, retryable=False, attempts=attempts)
    return frame.draft(EventType.NODE_FAILED, node, [], frame.view.state, error=info,
                       route={"next": node})


def cancelled(frame: StepFrame, actor: str, reason: str | None) -> Draft:
    """ThreadCancelled: nothing runs after it; an open question is closed by it."""
    open_ = frame.view.interrupt if frame.view.status == "interrupted" else None
    return frame.draft(EventType.THREAD_CANCELLED, None, [], frame.view.state, actor=actor,
                       reason=reason, causation_id=open_.id if open_ else None)


def finished(frame: StepFrame) -> Draft:
    return frame.draft(EventType.THREAD_COMPLETED, None, [], frame.view.state)
