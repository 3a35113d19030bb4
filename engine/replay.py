"""Re-run a thread's routing with today's graph: where would today's code decide differently?

The log records, for every step that chose where to go next, the state after
it and the route taken. Routers are pure functions of the state, so today's
graph can be asked the same question at every such step without running any
node or repeating any side effect. Pure; the reads are the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine import step
from engine.delta import State, fold
from engine.events import Event, EventType
from engine.graph import START, CompiledGraph


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteCheck:
    """One routing decision on the log, and the one today's graph makes from the same state."""

    seq: int
    node: str | None  # the node whose result was routed (None: the start)
    recorded: str
    today: str

    @property
    def same(self) -> bool:
        return self.recorded == self.today


def replay_routes(graph: CompiledGraph, events: list[Event], *, from_seq: int = 0,
                  resolve: Callable[[State], State] = lambda state: state) -> list[RouteCheck]:
    """A check for every routing decision at or after `from_seq`, in order.

    `events` are the thread's accepted events, from seq 0: states are folded
    from the deltas alone; routers see them through `resolve` (their texts in
    place of blob pointers, engine.blobstore.Blobs.resolved).
    """
    state: State = {}
    checks = []
    for event in events:
        state = fold(state, event.ops())
        decider = _decider(event)
        if event.seq >= from_seq and decider is not None:
            checks.append(RouteCheck(
                seq=event.seq, node=None if decider == START else decider,
                recorded=step.route_of(event),
                today=_route_today(graph, decider, state, resolve)))
    return checks


def _decider(event: Event) -> str | None:
    """The node whose routing the event recorded; None if it only carried a route on."""
    if event.type is EventType.THREAD_STARTED:
        return START
    if event.type in (EventType.NODE_COMPLETED, EventType.STATE_EDITED) and event.node:
        return event.node
    return None


def _route_today(graph: CompiledGraph, node: str, state: State,
                 resolve: Callable[[State], State]) -> str:
    if node != START and node not in graph.nodes:
        return f"error: no node {node!r} in today's graph"
    try:
        return step.route_after(graph, node, graph.schema.load(resolve(state), node=node))
    except Exception as e:  # today's router failing is the answer, not a crash
        return f"error: {type(e).__name__}: {e}"
