"""The fold of accepted events into a thread's view: head, state, status, interrupt.

Pure: the projector, the runner and any auditor share this code, so they
derive the same view from the same log without the graph's code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.acceptance import Head, Rejection, judge
from engine.canonical import state_hash
from engine.delta import State, fold
from engine.errors import LedgerError
from engine.events import Event, EventType, ForkOrigin, InterruptInfo

_STATUS_AFTER = {
    EventType.THREAD_STARTED: "running",
    EventType.THREAD_FORKED: "running",
    EventType.NODE_COMPLETED: "running",
    EventType.DECISION_RECORDED: "running",
    EventType.INTERRUPTED: "interrupted",
    EventType.NODE_FAILED: "failed",
    EventType.THREAD_COMPLETED: "completed",
    EventType.THREAD_CANCELLED: "cancelled",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadView:
    """What the accepted history of a thread adds up to."""

    thread_id: str
    graph: str
    head: Head
    state: State
    status: str
    interrupt: InterruptInfo | None
    parent: ForkOrigin | None
    mode: str | None
    created_at: int
    updated_at: int
    integrity_error: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of offering one event to a thread."""

    view: ThreadView | None  # the view after the event (unchanged if rejected)
    rejection: Rejection | None


def status_after(view: ThreadView | None, event: Event) -> str:
    if event.type is EventType.THREAD_FORKED and event.interrupt is not None:
        return "interrupted"  # forked at a pause: waits on the same question
    if event.type is EventType.STATE_EDITED:
        closes = view is not None and _closes_interrupt(view, event)
        return "running" if closes else (view.status if view else "running")
    return _STATUS_AFTER[event.type]


def _closes_interrupt(view: ThreadView, event: Event) -> bool:
    open_ = view.interrupt
    return open_ is not None and event.causation_id == open_.id


def _interrupt(view: ThreadView | None, event: Event) -> InterruptInfo | None:
    if event.type in (EventType.INTERRUPTED, EventType.THREAD_FORKED):
        return event.interrupt
    if view is None or status_after(view, event) != "interrupted":
        return None
    return view.interrupt


def _fold_state(before: State, event: Event) -> tuple[State, str | None]:
    # LedgerError, not just DeltaError: a chained event whose delta holds NaN or is
    # not a list must mark the thread, not crash every reader of the log.
    try:
        after = fold(before, event.ops())
        after_hash = state_hash(after)
    except LedgerError as e:
        return before, f"seq {event.seq}: delta does not apply: {e}"
    if after_hash != event.state_hash:
        return after, f"seq {event.seq}: state_hash mismatch after fold"
    return after, None


def state_after(before: State, event: Event) -> State:
    """The state after an accepted `event`, as the fold of a view makes it (a delta
    that does not apply leaves it unchanged; the view is marked, see advance)."""
    return _fold_state(before, event)[0]


def advance(view: ThreadView | None, event: Event, *,
            sealed_from: State | None = None) -> Outcome:
    """Apply `event` to `view` if the acceptance rule lets it in.

    `sealed_from` is the state this process just sealed `event` from
    (engine.chain.seal): it is taken as the state after the event, and neither
    the hash nor the fold is checked again. Anything read from a log is.
    """
    rejection = judge(view.head if view else Head(), event,
                      sealed_here=sealed_from is not None)
    if rejection is not None:
        return Outcome(view, rejection)
    state, problem = ((sealed_from, None) if sealed_from is not None
                      else _fold_state(view.state if view else {}, event))
    new = ThreadView(
        thread_id=event.thread_id, graph=event.graph.name, head=Head(event.seq, event.hash),
        state=state, status=status_after(view, event), interrupt=_interrupt(view, event),
        parent=view.parent if view else event.parent,
        mode=event.mode if event.mode is not None else (view.mode if view else None),
        created_at=view.created_at if view else event.occurred_at,
        updated_at=event.occurred_at,
        integrity_error=view.integrity_error if view else None,
    )
    return Outcome(mark(new, problem) if problem else new, None)


def rebuild(events: list[Event]) -> ThreadView | None:
    """The view of a thread from its events in log order."""
    view: ThreadView | None = None
    for event in events:
        view = advance(view, event).view
    return view


def mark(view: ThreadView, problem: str) -> ThreadView:
    """The view with `problem` recorded, unless an earlier integrity error already is."""
    return replace(view, integrity_error=view.integrity_error or problem)
