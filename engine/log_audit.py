"""An auditor's reads of the raw log, and the projection verified against them (I/O).

The comparison itself is pure (engine/audit.py). Here: reading one thread's
records from its partition in bounded windows, and verifying a projection
that may still be moving — it is compared only with what it had to hold
once it caught up with the log read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicVerdict:
    """Every thread of the topic checked: those that differ, and those that moved meanwhile."""

    threads: int
    differing: dict[str, list[str]]
    moving: list[str]  # the projection had gone past the log read: check them alone, at rest


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


def verify_all(cp: Checkpointer, *, on_progress: Progress | None = None) -> TopicVerdict:
    """Every thread, partition by partition (a thread lives on one, so memory stays
    one partition's worth), against the projection caught up to the log's end."""
    ends = cp.log.end_offsets()
    for partition, end in ends.items():
        cp.projection.wait_for_offset(partition, end, timeout_s=cp.catchup_timeout_s)
    projected = _projected_ids(cp.projection, cp.log)
    tally, done, total = _Tally(), 0, sum(ends.values())
    for partition, end in sorted(ends.items()):
        folded = LogFold().add_all(_partition(cp.log, partition, end, done, total, on_progress))
        done += end
        for thread_id in sorted({*folded.views, *folded.rejected, *projected.get(partition, ())}):
            tally.check(cp.projection, ThreadAudit.of(thread_id, folded), end)
    return tally.verdict()


@dataclass(slots=True)
class _Tally:
    threads: int = 0
    differing: dict[str, list[str]] = field(default_factory=dict)
    moving: list[str] = field(default_factory=list)

    def check(self, reader: ProjectionReader, audit: ThreadAudit, end: int) -> None:
        self.threads += 1
        view, history, rejected = _projected(reader, audit.thread_id, below=end)
        if _ahead(view, audit.view):
            self.moving.append(audit.thread_id)
        elif found := differences(audit, view, history, rejected):
            self.differing[audit.thread_id] = found

    def verdict(self) -> TopicVerdict:
        return TopicVerdict(threads=self.threads, differing=self.differing, moving=self.moving)


def _partition(log: EventLog, partition: int, end: int, done: int, total: int,
               on_progress: Progress | None) -> Iterator[Delivery]:
    for low in range(0, end, WINDOW):
        high = min(low + WINDOW, end)
        yield from log.read(partition, low, high)
        if on_progress is not None:
            on_progress(done + high, total)


def _projected_ids(reader: ProjectionReader, log: EventLog) -> dict[int, set[str]]:
    """Every thread the projection holds, by the partition its key maps to."""
    ids: dict[int, set[str]] = {}
    seen = 0
    while page := reader.list_threads(limit=10_000, offset=seen):
        seen += len(page)
        for view in page:
            ids.setdefault(log.partition_of(view.thread_id), set()).add(view.thread_id)
    return ids
