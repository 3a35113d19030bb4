"""Runs one step of a thread: the user's node (with retries) or a control event.

Shared by the inline runner and the workers, so a thread produces the same
events whichever of them executes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from engine import interrupts, step
from engine.awaiting import settled, settled_within
from engine.chain import Draft
from engine.context import NodeContext
from engine.delta import State
from engine.errors import (
    BlobError,
    CanonicalJSONError,
    EventTooLargeError,
    GraphDefinitionError,
    StateValidationError,
    UnstorableTextError,
)
from engine.faults import fault_point
from engine.graph import CompiledGraph, NodeSpec
from engine.state import detached, require_returned

log = logging.getLogger("amber.executor")
T = TypeVar("T")


def storing(action: step.Action, frame: step.StepFrame, draft: Draft,
            seal: Callable[[Draft], T]) -> T:
    """seal(draft); a node whose result cannot be sealed fails instead, naming itself.

    The seal is where a value that is not JSON, text with a NUL, or an event too
    big for the log is found; a crash there would replay the same step forever in
    a worker. A control event the engine made that cannot be sealed is a bug and
    is raised.
    """
    try:
        return seal(draft)
    except (CanonicalJSONError, UnstorableTextError, EventTooLargeError) as e:
        if not isinstance(action, step.RunNode):
            raise
        field = e.field if isinstance(e, EventTooLargeError) else None
        problem = StateValidationError(node=action.node, field=field,
                                       problem=f"its result cannot be stored: {e}")
        log.warning("node result unstorable", extra={"node": action.node, "error": str(e),
                                                     "thread_id": frame.view.thread_id})
        return seal(step.failed(frame, action.node, problem, 1))


def execute(graph: CompiledGraph, action: step.Action, frame: step.StepFrame) -> Draft:
    """The draft of the event that `action` produces from `frame`'s head."""
    if isinstance(action, step.Finish):
        return step.finished(frame)
    if isinstance(action, step.Pause):
        return step.interrupted(frame, action.node, action.when, None, action.next, [])
    assert isinstance(action, step.RunNode), action
    spec = graph.nodes.get(action.node)
    if spec is None:  # a thread of an older version of the graph: failed, not a crash
        missing = GraphDefinitionError(f"graph {graph.name!r} has no node {action.node!r}, "
                                       "where the thread goes next")
        return step.failed(frame, action.node, missing, 0)
    return run_node(graph, spec, action, frame)


def run_node(graph: CompiledGraph, spec: NodeSpec, action: step.RunNode,
             frame: step.StepFrame) -> Draft:
    """Run the node, retrying per its policy; failures become NodeFailed drafts.

    The node sees the state's texts, not their blob pointers; a blob that is gone or
    not what its pointer says fails the step before the node runs (an unreachable
    log is raised: the step is then not taken at all).
    """
    try:
        state = frame.resolve(frame.view.state)
    except BlobError as e:
        return step.failed(frame, spec.name, e, 0)
    attempt = 0
    while True:
        attempt += 1
        try:
            return _attempt(graph, spec, action, frame, state, attempt)
        except (StateValidationError, step.RouteError) as e:
            # the graph's or the state's fault, the same on every attempt: a retry
            # would only run the node's side effects again
            return step.failed(frame, spec.name, e, attempt)
        except Exception as e:  # the node's own failure: data for the log
            if not spec.retry.should_retry(e, attempt):
                log.warning("node failed", extra={"node": spec.name, "attempts": attempt,
                                                  "thread_id": frame.view.thread_id})
                return step.failed(frame, spec.name, e, attempt)
            time.sleep(spec.retry.backoff_s(attempt))


def _attempt(graph: CompiledGraph, spec: NodeSpec, action: step.RunNode,
             frame: step.StepFrame, state: State, attempt: int) -> Draft:
    schema, view = graph.schema, frame.view
    ctx = NodeContext(thread_id=view.thread_id, seq=frame.seq, node=spec.name,
                      attempt=attempt, decision=action.decision)
    token = interrupts.enter(action.resumes)
    given = detached(state)  # the node's own copy: it cannot change the stored state
    try:
        model = schema.load(given, node=spec.name)
        update = _called(spec, (model, ctx) if spec.takes_context else (model,))
        fault_point(f"after_node:{spec.name}")
    except interrupts.NodeInterrupt as ni:
        return step.interrupted(frame, spec.name, "inside", ni.payload, spec.name,
                                action.resumes)
    finally:
        interrupts.leave(token)
    update = _as_update(update, spec.name)
    require_returned(state, given, update, node=spec.name)
    ops, after = schema.apply(state, update, node=spec.name)
    nxt = step.route_after(graph, spec.name, schema.load(after, node=spec.name))
    return step.completed(frame, spec.name, ops, after, nxt, ctx.recorded_io)


def _called(spec: NodeSpec, args: tuple[Any, ...]) -> Any:
    if spec.timeout_s is None:
        return settled(spec.fn(*args))  # in this thread: nothing to watch
    return settled_within(spec.fn, args, spec.timeout_s, node=spec.name)


def _as_update(update: Any, node: str) -> dict[str, Any] | None:
    if update is None or isinstance(update, dict):
        return update
    raise StateValidationError(node=node, field=None,
                               problem=f"a node must return a dict or None, got "
                                       f"{type(update).__name__}")
