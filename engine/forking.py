"""Forks: a new thread that goes on from a checkpoint of another, as that thread would have.

Pure. The fork's first event, ThreadForked at seq 0, holds the source's whole
state at the checkpoint, points back at it (`parent`: thread, seq and hash), and
settles the fork's first step once, here, from what the source would have done
next (step.next_action on the source's view there):

- the source was waiting, or would pause next: the fork waits on that same
  question under an interrupt id of its own, so a human (or an auditor asking
  "what if") can answer it differently;
- the source would run a node, or failed in one: the fork runs that node, with
  any decision the source was carrying into it (a node that failed asks
  again). Forking at a failure is how a thread is retried with mended code; the
  failed thread itself stays as it was.

A checkpoint after which nothing would run (the thread completed or was
cancelled there, or would complete next) is refused: its fork would only end.
A fork is a new thread: its nodes run for real, under idempotency keys of its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine import step
from engine.chain import Draft
from engine.delta import set_op
from engine.errors import ForkError
from engine.events import Event, EventType, ForkOrigin, InterruptInfo
from engine.graph import CompiledGraph
from engine.ledger import ThreadView


def fork_draft(graph: CompiledGraph, source: ThreadView, at: Event, *, thread_id: str,
               occurred_at: int, actor: str | None, reason: str | None, mode: str) -> Draft:
    """The ThreadForked draft of a fork of `source` (its view after `at`) as `thread_id`."""
    action = step.next_action(graph, source, at)
    interrupt, route, resumes = _continuation(source, at, action, thread_id)
    state = source.state
    return Draft(thread_id=thread_id, seq=0, type=EventType.THREAD_FORKED, node=None,
                 occurred_at=occurred_at, graph=graph.ref,
                 delta=[set_op(f, v) for f, v in sorted(state.items())], state_after=state,
                 actor=actor, reason=reason, mode=mode, route=route, interrupt=interrupt,
                 io={"resumes": resumes} if resumes else None,
                 parent=ForkOrigin(thread_id=source.thread_id, seq=at.seq, hash=at.hash))


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
    if isinstance(action, step.Halt) and action.status == "failed":
        return None, {"next": step.route_of(at)}, []
    raise ForkError(f"nothing would run after seq {at.seq} of thread {source.thread_id!r} "
                    f"(it {_ends(action)} there): fork an earlier checkpoint")


def _ends(action: step.Action) -> str:
    return f"is {action.status}" if isinstance(action, step.Halt) else "completes next"
