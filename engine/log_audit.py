"""An auditor's reads of the raw log, and the projection verified against them (I/O).

The comparison itself is pure (engine/audit.py). Here: reading one thread's
records from its partition in bounded windows, and verifying a projection
that may still be moving — it is compared only with what it had to hold
once it caught up with the log read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from engine.audit import ThreadAudit, blob_refs, dead_letter_differences, differences
from engine.blobstore import Blobs
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
    """Every thread of the topic checked, those that differ, and the partitions whose
    dead letters differ."""

    threads: int
    differing: dict[str, list[str]]
    rechecked: list[str]  # moved during the sweep, so verified again alone
    partitions: dict[int, list[str]]  # dead letters on one side only, by partition

    @property
    def ok(self) -> bool:
        return not (self.differing or self.partitions)


def _windows(log: EventLog, partition: int, start: int, end: int, *,
             on_progress: Progress | None = None, done: int = 0,
             total: int | None = None) -> Iterator[Delivery]:
    """The records of `partition` from `start` below `end`, read WINDOW at a time;
    progress is reported as `done` + offsets read, out of `total` (default: `end`)."""
    for low in range(start, end, WINDOW):
        high = min(low + WINDOW, end)
        yield from log.read(partition, low, high)
        if on_progress is not None:
            on_progress(done + high, end if total is None else total)


def thread_records(log: EventLog, thread_id: str, start: int, end: int,
                   on_progress: Progress | None = None) -> Iterator[Delivery]:
    """The thread's records of its partition from `start` below `end`, in log order.

    As the projector reads them: an event belongs to the thread it names, whatever
    its key; a record that is not an event, to its key.
    """
    records = _windows(log, log.partition_of(thread_id), start, end, on_progress=on_progress)
    return (d for d in records
            if (d.key if d.event is None else d.event.thread_id) == thread_id)


def audit_thread(log: EventLog, thread_id: str, *,
                 on_progress: Progress | None = None) -> ThreadAudit:
    """The thread as its records up to the log's end make it."""
    end = log.end_offset(log.partition_of(thread_id))
    records = thread_records(log, thread_id, 0, end, on_progress)
    return ThreadAudit.of(thread_id, LogFold().add_all(records))


def verify(cp: Checkpointer, thread_id: str, *, on_progress: Progress | None = None,
           folded_to: tuple[LogFold, int] | None = None) -> Verdict:
    """The thread from the log, and where the projection says otherwise.

    Each round reads the log up to where the projection has caught up, then
    the projection; rows it added past that point are left out. If it moved
    on meanwhile, the next round reads only the new records. `folded_to`: the
    thread already folded below an offset (by verify_all), continued from there.
    """
    folded, read_to = folded_to or (LogFold(), 0)
    for _ in range(ROUNDS):
        end = catch_up(cp, thread_id)
        folded.add_all(thread_records(cp.log, thread_id, read_to, end, on_progress))
        read_to, audit = end, ThreadAudit.of(thread_id, folded)
        projected = _projected(cp.projection, thread_id, below=end)
        if audit.view is None and projected.view is None:
            raise ThreadNotFoundError(thread_id)
        found = projected.differences(audit)
        if not projected.moved:
            return Verdict(audit=audit, differences=found + blob_differences(cp.blobs, audit))
    return Verdict(audit=audit, differences=[
        *found, f"thread: still moving after {ROUNDS} reads; verify it at rest"])


def blob_differences(blobs: Blobs, audit: ThreadAudit) -> list[str]:
    """A line for each blob the thread points at that its store does not give back
    whole: the log alone must still hold every text a node saw."""
    found = []
    for seq, ref in blob_refs(audit):
        problem = blobs.check(ref)
        if problem is not None:
            found.append(f"seq {seq}: {problem}")
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class _Projected:
    """The projection's side of a thread, cut at the offset the log was read to."""

    view: ThreadView | None
    history: list[Checkpoint]
    rejected: list[RejectedEvent]
    moved: bool  # it holds rows from at or past the cut: the thread moved meanwhile

    def differences(self, audit: ThreadAudit) -> list[str]:
        return differences(audit, self.view, self.history, self.rejected)


def _projected(reader: ProjectionReader, thread_id: str, *, below: int) -> _Projected:
    # The row first: events projected after it show up below as rows past the cut
    # (moved), never as a head that disagrees with them.
    view = reader.get_thread(thread_id)
    history, rejected = reader.all_history(thread_id), reader.rejected(thread_id)
    moved = any(c.position.offset >= below for c in history) or \
        any(r.position.offset >= below for r in rejected)
    return _Projected(view=view, moved=moved,
                      history=[c for c in history if c.position.offset < below],
                      rejected=[r for r in rejected if r.position.offset < below])


def verify_all(cp: Checkpointer, *, on_progress: Progress | None = None) -> TopicVerdict:
    """Every thread and every partition's dead letters, partition by partition (a
    thread lives on one, so memory stays one partition's worth), against the
    projection caught up to the log's end. Threads that moved during the sweep
    are verified again, alone."""
    ends = cp.log.end_offsets()
    cp.projection.wait_for_offsets(ends, timeout_s=cp.catchup_timeout_s)
    projected = _projected_ids(cp.projection, cp.log)
    tally, done, total = _Tally(), 0, sum(ends.values())
    for partition, end in sorted(ends.items()):
        folded = LogFold().add_all(_windows(cp.log, partition, 0, end, on_progress=on_progress,
                                            done=done, total=total))
        done += end
        tally.check_dead_letters(cp.projection, folded, partition, end)
        for thread_id in sorted({*folded.views, *folded.rejected, *projected.get(partition, ())}):
            tally.check(cp, folded, thread_id, end)
    for thread_id, seed in tally.moved.items():
        tally.record(thread_id, verify(cp, thread_id, folded_to=seed).differences)
    return tally.verdict()


@dataclass(slots=True)
class _Tally:
    threads: int = 0
    differing: dict[str, list[str]] = field(default_factory=dict)
    moved: dict[str, tuple[LogFold, int]] = field(default_factory=dict)  # and how far read
    partitions: dict[int, list[str]] = field(default_factory=dict)

    def check(self, cp: Checkpointer, folded: LogFold, thread_id: str, end: int) -> None:
        self.threads += 1
        projected = _projected(cp.projection, thread_id, below=end)
        if projected.moved:
            self.moved[thread_id] = (folded.only(thread_id), end)
        else:
            audit = ThreadAudit.of(thread_id, folded)
            self.record(thread_id, projected.differences(audit)
                        + blob_differences(cp.blobs, audit))

    def check_dead_letters(self, reader: ProjectionReader, folded: LogFold, partition: int,
                           end: int) -> None:
        # Rows below `end` are final once projected there: no movement to allow for
        found = dead_letter_differences(partition, [p.offset for p in folded.dead_letters],
                                        reader.dead_letter_offsets(partition, below=end))
        if found:
            self.partitions[partition] = found

    def record(self, thread_id: str, found: list[str]) -> None:
        if found:
            self.differing[thread_id] = found

    def verdict(self) -> TopicVerdict:
        return TopicVerdict(threads=self.threads, differing=self.differing,
                            rechecked=list(self.moved), partitions=self.partitions)


def _projected_ids(reader: ProjectionReader, log: EventLog) -> dict[int, set[str]]:
    """Every thread the projection holds, by the partition its key maps to."""
    ids: dict[int, set[str]] = {}
    for thread_id in reader.thread_ids():
        ids.setdefault(log.partition_of(thread_id), set()).add(thread_id)
    return ids
