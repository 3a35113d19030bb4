"""The inline runner: the calling process runs the nodes itself.

A thin I/O shell around engine.step: load the head → decide → run the node →
append the event and wait for the broker's ack → repeat. At an interrupt it
appends `Interrupted` and returns: nothing keeps running, nothing is held.
Another process resumes the thread later from the projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import step
from engine.checkpointer import Checkpointer
from engine.errors import BlobError
from engine.events import ErrorInfo
from engine.executor import execute, storing
from engine.graph import CompiledGraph
from engine.projection import Checkpoint
from engine.reads import history_through, thread_history, thread_state
from engine.service import Cursor, ThreadService, interrupt_dict


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """Where a run stopped."""

    thread_id: str
    status: str
    seq: int
    state: dict[str, Any]
    interrupt: dict[str, Any] | None = None
    error: ErrorInfo | None = None


class InlineRunner:
    """Runs one compiled graph's threads in the calling process."""

    def __init__(self, graph: CompiledGraph, checkpointer: Checkpointer) -> None:
        self.graph = graph
        self.cp = checkpointer
        self.threads = ThreadService(graph, checkpointer)

    def start(self, thread_id: str, input: dict[str, Any], *,
              actor: str | None = None) -> RunResult:
        """Append ThreadStarted and run until the thread halts."""
        return self._drive(self.threads.start(thread_id, input, actor=actor, mode="inline"))

    def resume(self, thread_id: str, value: Any, *, actor: str,
               interrupt_id: str | None = None, reason: str | None = None) -> RunResult:
        """Record `actor`'s decision on the open interrupt, then continue.

        An identical retried decision appends nothing and finishes whatever
        run a crash may have cut short.
        """
        decided = self.threads.decide(thread_id, value, actor=actor,
                                      interrupt_id=interrupt_id, reason=reason)
        return self._drive(decided.cursor, confirm=decided.repeated)

    def cancel(self, thread_id: str, *, actor: str, reason: str | None = None) -> RunResult:
        """Append ThreadCancelled: the thread stops for good (a repeat is a no-op)."""
        return self._result(self.threads.cancel(thread_id, actor=actor, reason=reason).cursor)

    def update_state(self, thread_id: str, values: dict[str, Any], *, as_node: str | None,
                     actor: str | None = None, reason: str | None = None) -> RunResult:
        """Append StateEdited; `run(None)` / `continue_` proceeds from there."""
        cursor = self.threads.edit(thread_id, values, as_node=as_node, actor=actor,
                                   reason=reason)
        return self._result(cursor)

    def continue_(self, thread_id: str) -> RunResult:
        """Run a thread that is not waiting from its head (after an edit or a crash)."""
        return self._drive(self.threads.load(thread_id), confirm=True)

    def fork(self, source_id: str, seq: int, thread_id: str, *, actor: str | None = None,
             reason: str | None = None) -> RunResult:
        """Append ThreadForked for `thread_id`, a fork of `source_id` after `seq` (see
        engine.forking), and run it until it halts."""
        history = history_through(self.cp, source_id, seq)
        return self._drive(self.threads.fork(history, thread_id, actor=actor, reason=reason,
                                             mode="inline"))

    def get_state(self, thread_id: str, seq: int | None = None) -> dict[str, Any]:
        """State after `seq` (default: the head), everything this process wrote included;
        texts kept in blobs are filled in."""
        return self.cp.blobs.resolved(thread_state(self.cp, thread_id, seq))

    def history(self, thread_id: str) -> list[Checkpoint]:
        """Every accepted event of the thread, oldest first, likewise."""
        return thread_history(self.cp, thread_id)

    def _drive(self, cursor: Cursor, *, confirm: bool = False) -> RunResult:
        """Step until the thread halts. Worker-mode threads are left to the workers."""
        while cursor.view.mode != "worker":
            action = step.next_action(self.graph, cursor.view, cursor.head)
            if isinstance(action, step.Halt):
                break
            pending = self._pending(cursor, action)
            if confirm:
                cursor = self.threads.commit_confirmed(cursor, pending)[-1]
            else:
                cursor = self.threads.commit(pending)[-1]
            confirm = False
        return self._result(cursor)

    def _pending(self, cursor: Cursor, action: step.Action) -> list[Cursor]:
        """The step's event, plus the control event after it when no node runs in between.

        Interrupted and ThreadCompleted follow a step without running user code,
        so appending them in the same flush keeps "durable before the next node"
        and saves one broker round trip per interrupt and per completion.
        """
        frame = self.threads.frame(cursor)
        first = storing(action, frame, execute(self.graph, action, frame),
                        lambda draft: self.threads.seal_next(cursor, draft))
        follow = step.next_action(self.graph, first.view, first.head)
        if not isinstance(follow, step.Pause | step.Finish):
            return [first]
        draft = execute(self.graph, follow, self.threads.frame(first))
        return [first, self.threads.seal_next(first, draft)]

    def _result(self, cursor: Cursor) -> RunResult:
        view = cursor.view
        return RunResult(thread_id=view.thread_id, status=view.status, seq=view.head.seq,
                         state=self._texts_of(view.state), interrupt=interrupt_dict(view),
                         error=cursor.head.error)

    def _texts_of(self, state: dict[str, Any]) -> dict[str, Any]:
        """The state with its blob texts, or with their pointers when a blob is gone: the
        thread's outcome (a step failed with BlobError, say) is still reported."""
        try:
            return self.cp.blobs.resolved(state)
        except BlobError:
            return state
