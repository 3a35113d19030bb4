"""An auditor's reads of the raw log, and the projection verified against them (I/O).

The comparison itself is pure (engine/audit.py). Here: reading one thread's
records from its partition in bounded windows, and verifying a projection
that may still be moving — it is compared only with what it had to hold
once it caught up with the log read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from engine.audit import ThreadAudit, differences
from engine.checkpointer import Checkpointer
from engine.eventlog import Delivery, EventLog
from engine.ledger import ThreadView
from engine.projection import (
    Checkpoint,
    LogFold,
    ProjectionReader,
    RejectedEvent,
    ThreadNotFoundError,
)
from engine.service import catch_up

WINDOW = 2_000  # records per read: a partition of millions is never held whole
ROUNDS = 3  # a thread that keeps moving while it is verified is reported, not chased
Progress = Callable[[int, int], None]  # (offsets read, offsets to read)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    audit: ThreadAudit
    differences: list[str]


def thread_records(log: EventLog, thread_id: str, start: int, end: int,
                   on_progress: Progress | None = None) -> Iterator[Delivery]:
    """The thread's records of its partition from `start` below `end`, in log order."""
    partition = log.partition_of(thread_id)
    for low in range(start, end, WINDOW):
        high = min(low + WINDOW, end)
        yield from (d for d in log.read(partition, low, high) if d.key == thread_id)
        if on_progress is not None:
            on_progress(high, end)


def audit_thread(log: EventLog, thread_id: str, *, end: int | None = None,
                 on_progress: Progress | None = None) -> ThreadAudit:
    """The thread as its records below `end` (default: the log's end) make it."""
    stop = log.end_offset(log.partition_of(thread_id)) if end is None else end
    records = thread_records(log, thread_id, 0, stop, on_progress)
    return ThreadAudit.of(thread_id, LogFold().add_all(records))


def verify(cp: Checkpointer, thread_id: str, *,
           on_progress: Progress | None = None) -> Verdict:
    """The thread from the log, and where the projection says otherwise.

    Each round reads the log up to where the projection has caught up, then
    the projection; rows it added past that point are left out. If it moved
    on meanwhile, the next round reads only the new records.
    """
    folded, read_to = LogFold(), 0
    for _ in range(ROUNDS):
        end = catch_up(cp, thread_id)
        folded.add_all(thread_records(cp.log, thread_id, read_to, end, on_progress))
        read_to, audit = end, ThreadAudit.of(thread_id, folded)
        view, history, rejected = _projected(cp.projection, thread_id, below=end)
        if audit.view is None and view is None:
            raise ThreadNotFoundError(thread_id)
        found = differences(audit, view, history, rejected)
        if not _ahead(view, audit.view):
            return Verdict(audit=audit, differences=found)
    return Verdict(audit=audit, differences=[
        *found, f"thread: still moving after {ROUNDS} reads; verify it at rest"])


def _ahead(projected: ThreadView | None, logged: ThreadView | None) -> bool:
    return projected is not None and projected.head.seq > (logged.head.seq if logged else -1)


def _projected(reader: ProjectionReader, thread_id: str, *, below: int,
               ) -> tuple[ThreadView | None, list[Checkpoint], list[RejectedEvent]]:
    """The projection's thread, its accepted and rejected events before offset `below`."""
    history: list[Checkpoint] = []
    while page := reader.history(thread_id, after_seq=_last_seq(history), limit=1000):
        history += page
    return (reader.get_thread(thread_id), [c for c in history if c.position.offset < below],
            [r for r in reader.rejected(thread_id) if r.position.offset < below])


def _last_seq(history: list[Checkpoint]) -> int:
    return history[-1].event.seq if history else -1
