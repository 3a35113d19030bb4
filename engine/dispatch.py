"""The worker's brain: which threads are runnable, and one step for each.

Fed the events of its partitions in log order, it applies the acceptance rule
per thread (so it never advances a thread from a rejected event), remembers
each thread's head, and runs one step for every thread whose head makes a
node runnable. I/O (consumer group, projection loads, appends, commits) is
the shell's job (consumers/worker.py), but for the large texts of states, which
go through the Blobs it is given.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from engine import step
from engine.acceptance import Rejection
from engine.blobstore import Blobs
from engine.chain import seal
from engine.events import Event
from engine.executor import execute, storing
from engine.graph import CompiledGraph
from engine.ledger import ThreadView, advance

WORKER_MODE = "worker"


@dataclass(slots=True)
class _Thread:
    view: ThreadView
    head: Event
    acted_seq: int  # the head seq this worker already produced a step for


class Dispatcher:
    """Runnable-thread bookkeeping for one worker process."""

    def __init__(self, graphs: dict[str, CompiledGraph], *, clock: Callable[[], int],
                 snapshot_every: int, blobs: Blobs | None = None) -> None:
        self.graphs = graphs
        self.clock = clock
        self.snapshot_every = snapshot_every
        self.blobs = blobs or Blobs()
        self.threads: dict[str, _Thread] = {}
        # Only a thread whose head moved can have become runnable or halted: the
        # loop looks at these, not at every cached thread. `pending` waits for a
        # step_all to look at it (in log order); `looked` for forget_halted.
        self.pending: dict[str, None] = {}
        self.looked: set[str] = set()
        self.foreign: Counter[str] = Counter()  # events of graphs this worker does not serve
        self.rejected = 0

    def serves(self, event: Event) -> bool:
        if event.graph.name in self.graphs:
            return True
        self.foreign[event.graph.name] += 1
        return False

    def knows(self, thread_id: str) -> bool:
        return thread_id in self.threads

    def seed(self, view: ThreadView, head: Event) -> None:
        """A cold thread's head as the projection has it (nothing acted on yet)."""
        self.threads[view.thread_id] = _Thread(view=view, head=head, acted_seq=-1)
        self.pending[view.thread_id] = None

    def observe(self, event: Event) -> None:
        """Apply one logged event of a served graph, in log order."""
        known = self.threads.get(event.thread_id)
        outcome = advance(known.view if known else None, event)
        if outcome.rejection is None and outcome.view is not None:
            acted = known.acted_seq if known else -1
            self.threads[event.thread_id] = _Thread(view=outcome.view, head=event,
                                                    acted_seq=acted)
            self.pending[event.thread_id] = None
        elif outcome.rejection is not Rejection.DUPLICATE:
            self.rejected += 1

    def step_all(self, *, until: float | None = None) -> list[Event]:
        """One step for every pending thread; the sealed events, not yet appended.

        With `until` (time.monotonic()), threads not reached by then stay pending
        for the next call: a batch of slow nodes then ends in time for its consumer
        to poll again (else the group would take its partitions mid-batch).
        """
        out: list[Event] = []
        for n, thread_id in enumerate(list(self.pending)):
            if n and until is not None and time.monotonic() >= until:  # one, whatever the time
                break
            del self.pending[thread_id]
            self.looked.add(thread_id)
            known = self.threads.get(thread_id)
            event = self._step(known) if known is not None else None
            if event is not None:
                out.append(event)
        return out

    def appended(self, events: list[Event]) -> None:
        """The broker acknowledged these: their heads are acted on."""
        for event in events:
            known = self.threads.get(event.thread_id)
            if known is not None:
                known.acted_seq = max(known.acted_seq, event.seq - 1)

    def forget_halted(self) -> list[str]:
        """Drop threads with nothing to run (a waiting thread costs no memory either);
        the ids dropped."""
        dropped = [t for t in self.looked if t not in self.pending
                   and (known := self.threads.get(t)) is not None and self._halted(known)]
        for thread_id in dropped:
            del self.threads[thread_id]
        self.looked.clear()
        return dropped

    def forget(self, thread_ids: set[str]) -> None:
        for thread_id in thread_ids:
            self.threads.pop(thread_id, None)
            self.pending.pop(thread_id, None)
            self.looked.discard(thread_id)

    def _halted(self, s: _Thread) -> bool:
        graph = self.graphs.get(s.view.graph)
        return graph is None or s.view.mode != WORKER_MODE or \
            isinstance(step.next_action(graph, s.view, s.head), step.Halt)

    def _step(self, s: _Thread) -> Event | None:
        graph = self.graphs.get(s.view.graph)
        if graph is None or s.view.mode != WORKER_MODE or s.acted_seq >= s.head.seq:
            return None
        action = step.next_action(graph, s.view, s.head)
        if isinstance(action, step.Halt):
            return None
        frame = step.StepFrame(graph=graph, view=s.view, occurred_at=self.clock(),
                               snapshot_every=self.snapshot_every, resolve=self.blobs.resolved)
        return storing(action, frame, execute(graph, action, frame), lambda draft: seal(
            self.blobs.stored(draft, s.view.state),
            prev_hash=s.view.head.hash))
