"""Forks: a new thread that goes on from a checkpoint of another, as that thread would have.

Pure. The fork's first event, ThreadForked at seq 0, holds the source's whole
state at the checkpoint, points back at it (`parent`: thread, seq and hash), and
settles the fork's first step once, here, from what the source would have done
next (step.next_action on the source's view there):

- the source was waiting, or would pause next: the fork waits on that same
  question under an interrupt id of its own, so a human (or an auditor asking
  "what if") can answer it differently;
- the source would run a node: the fork runs it, with any decision the source
  was carrying into it;
- the source failed in a node: the fork settles its first step as the source
  did before that node ran, so it asks again at the node's gate, or runs the
  node with the decision the source gave it. This is how a thread is retried
  with mended code; the failed thread itself stays as it was.

A checkpoint after which nothing would run (the thread completed or was
cancelled there, or would complete next) is refused: its fork would only end;
so is one that fails its integrity check, and one whose next node today's graph
no longer has.
A fork is a new thread: its nodes run for real, under idempotency keys of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from engine import step
from engine.chain import Draft
from engine.delta import State, set_op
from engine.errors import ForkError, GraphMismatchError
from engine.events import Event, EventType, ForkOrigin, InterruptInfo
from engine.graph import END, CompiledGraph
from engine.ledger import ThreadView, advance, rebuild


def fork_draft(graph: CompiledGraph, history: list[Event], *, thread_id: str,
               occurred_at: int, actor: str | None, reason: str | None, mode: str,
               resolve: Callable[[State], State] = lambda state: state) -> Draft:
    """The ThreadForked draft of `thread_id`, a fork of the thread whose accepted events,
    up to the checkpoint, are `history`; `resolve` fills in blob texts for the check
    that today's model takes the state (the fork itself keeps the pointers)."""
    source, settled_by = _views(history)
    at = history[-1]
    if source.integrity_error:
        raise ForkError(f"thread {source.thread_id!r} fails its integrity check by seq "
                        f"{at.seq}: {source.integrity_error}")
    graph.schema.load(resolve(source.state), node="__fork__")  # today's model must take the state
    action = step.next_action(graph, *settled_by)
    interrupt, route, resumes = _continuation(source, at, action, thread_id)
    _require_nodes(graph, route["next"], interrupt, source.thread_id)
    state = source.state
    return Draft(thread_id=thread_id, seq=0, type=EventType.THREAD_FORKED, node=None,
                 occurred_at=occurred_at, graph=graph.ref,
                 delta=[set_op(f, v) for f, v in sorted(state.items())], state_after=state,
                 actor=actor, reason=reason, mode=mode, route=route, interrupt=interrupt,
                 io={"resumes": resumes} if resumes else None,
                 parent=ForkOrigin(thread_id=source.thread_id, seq=at.seq, hash=at.hash))


def _views(history: list[Event]) -> tuple[ThreadView, tuple[ThreadView, Event]]:
    """The source's view at the checkpoint, and the (view, head) its next step is settled
    from: the checkpoint itself, or, at a failure, the step before it, so that the
    failed node is asked again at its gate or run with the decision it was given."""
    before = rebuild(history[:-1])
    view = advance(before, history[-1]).view
    assert view is not None
    if history[-1].type is EventType.NODE_FAILED and before is not None:
        return view, (before, history[-2])
    return view, (view, history[-1])


def _continuation(source: ThreadView, at: Event, action: step.Action, thread_id: str
                  ) -> tuple[InterruptInfo | None, dict[str, Any], list[Any]]:
    """(the interrupt the fork waits on, its route, the decisions it carries)."""
    if isinstance(action, step.Pause):
        return (InterruptInfo(id=step.interrupt_id(thread_id, 0, action.node), node=action.node,
                              when=action.when, payload="null"), {"next": action.next}, [])
    if isinstance(action, step.RunNode):
        return None, {"next": action.node}, action.resumes
    if isinstance(action, step.Halt) and action.status == "interrupted" and source.interrupt:
        waiting = source.interrupt
        own = replace(waiting, id=step.interrupt_id(thread_id, 0, waiting.node))
        return own, {"next": step.route_of(at)}, step.resumes_of(at)
    raise ForkError(f"nothing would run after seq {at.seq} of thread {source.thread_id!r} "
                    f"(it {_ends(action)} there): fork an earlier checkpoint")


def _require_nodes(graph: CompiledGraph, nxt: str, interrupt: InterruptInfo | None,
                   source: str) -> None:
    """Refused before anything is appended: a fork naming a node today's graph lacks
    would be a thread nothing can run."""
    for node in (nxt, interrupt.node if interrupt else END):
        if node != END and node not in graph.nodes:
            raise GraphMismatchError(f"thread {source!r} goes on at node {node!r}, which "
                                     f"graph {graph.name!r} no longer has")


def _ends(action: step.Action) -> str:
    return f"is {action.status}" if isinstance(action, step.Halt) else "completes next"
