"""A thread's state and history as of the log's end, for the caller that just wrote them.

The projection lags the log by a few ms. read_head already folds the thread's
events that a live projector has yet to apply; reads built on it return what
the caller wrote without waiting for the projector (LangGraph's get_state after
invoke). A projector that is not moving is waited for, as by every command.
"""

from __future__ import annotations

from engine.checkpointer import Checkpointer
from engine.delta import State
from engine.events import Event
from engine.ledger import ThreadView, state_after
from engine.projection import Checkpoint, CheckpointNotFoundError, ThreadNotFoundError
from engine.service import Head, read_head


def thread_state(cp: Checkpointer, thread_id: str, seq: int | None = None) -> State:
    """The state after `seq` (default: the head)."""
    found, view = _found(cp, thread_id, seq)
    if seq is None or seq == view.head.seq:
        return view.state
    first = _first_unprojected(found)
    if seq < first:  # the projection holds it
        return cp.projection.get_state(thread_id, seq)
    state = cp.projection.get_state(thread_id, first - 1) if first > 0 else {}
    for c in found.recent[:seq - first + 1]:
        state = state_after(state, c.event)  # as the projector's historical read folds
    return state


def thread_history(cp: Checkpointer, thread_id: str) -> list[Checkpoint]:
    """Every accepted event of the thread, oldest first; [] for an unknown thread."""
    found = read_head(cp, thread_id)
    projected = cp.projection.all_history(thread_id)
    last = projected[-1].event.seq if projected else -1
    return [*projected, *(c for c in found.recent if c.event.seq > last)]


def history_through(cp: Checkpointer, thread_id: str, seq: int) -> list[Event]:
    """The thread's accepted events from the first up to `seq` (a fork's source); none
    after it is read."""
    found, _view = _found(cp, thread_id, seq)
    first = _first_unprojected(found)
    projected = cp.projection.history(thread_id, limit=min(seq + 1, first))
    return [*(c.event for c in projected), *(c.event for c in found.recent[:seq - first + 1])]


def _found(cp: Checkpointer, thread_id: str, seq: int | None) -> tuple[Head, ThreadView]:
    """The thread's head, and its view; refused for an unknown thread or seq."""
    found = read_head(cp, thread_id)
    view = found.view
    if view is None:
        raise ThreadNotFoundError(thread_id)
    if seq is not None and not 0 <= seq <= view.head.seq:
        raise CheckpointNotFoundError(thread_id, seq)
    return found, view


def _first_unprojected(found: Head) -> int:
    """The seq of the first event read_head folded from the log (past the head if none)."""
    assert found.view is not None
    return found.recent[0].event.seq if found.recent else found.view.head.seq + 1
