"""An auditor's view of one thread from the raw log, and its check against the projection.

The projection is a cache of the log. An auditor who trusts only the log
re-folds the thread's records with the acceptance rule (`LogFold`, the
projector's semantics without a database) and compares: the head, every
accepted event with its position, every rejected one; and, per partition,
the records that are not events (dead letters). Pure: the I/O is in
engine/log_audit.py and consumers/cli_audit.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields

from engine.blobs import BLOB_KEY, BlobRef, refs_in
from engine.delta import State
from engine.events import EventType
from engine.ledger import ThreadView
from engine.projection import (
    Checkpoint,
    CheckpointNotFoundError,
    LogFold,
    RejectedEvent,
    ThreadNotFoundError,
    folded_state,
)

_NAMED = 5  # dead letters named per side of a partition; the rest are counted


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadAudit:
    """One thread as its records on the log make it."""

    thread_id: str
    view: ThreadView | None
    accepted: list[Checkpoint]
    rejected: list[RejectedEvent]
    undecodable: int = 0  # records keyed by the thread that do not decode: never applied

    @classmethod
    def of(cls, thread_id: str, folded: LogFold) -> ThreadAudit:
        return cls(thread_id=thread_id, view=folded.views.get(thread_id),
                   accepted=folded.checkpoints.get(thread_id, []),
                   rejected=folded.rejected.get(thread_id, []),
                   undecodable=folded.undecodable.get(thread_id, 0))

    def state_at(self, seq: int | None = None) -> State:
        """The state after `seq` (default: the head), folded from the deltas alone."""
        if self.view is None:
            raise ThreadNotFoundError(self.thread_id)
        upto = self.view.head.seq if seq is None else seq
        if not 0 <= upto <= self.view.head.seq:
            raise CheckpointNotFoundError(self.thread_id, upto)
        return folded_state(self.accepted[:upto + 1])


def differences(audit: ThreadAudit, projected: ThreadView | None,
                history: list[Checkpoint], rejected: list[RejectedEvent]) -> list[str]:
    """Where the projection disagrees with the log, or the log with itself; [] if nowhere."""
    return [*_integrity(audit), *_head(audit.view, projected),
            *_events("accepted", audit.accepted, history),
            *_events("rejected", audit.rejected, rejected)]


def dead_letter_differences(partition: int, logged: Sequence[int],
                            projected: Sequence[int]) -> list[str]:
    """Offsets of undecodable records on one side only (the log's, the projection's
    dead letters), a few named per side; [] if both hold the same."""
    return [*_named(partition, sorted(set(logged) - set(projected)), "on the log only"),
            *_named(partition, sorted(set(projected) - set(logged)), "in the projection only")]


def _named(partition: int, offsets: list[int], where: str) -> list[str]:
    # A wiped dead_letters table may miss millions: name a few, count the rest
    named = [f"dead letter at {partition}:{o} {where}" for o in offsets[:_NAMED]]
    rest = len(offsets) - _NAMED
    return named if rest <= 0 else [*named, f"… and {rest} more dead letters {where}"]


def _integrity(audit: ThreadAudit) -> list[str]:
    error = audit.view.integrity_error if audit.view else None
    return [] if error is None else [f"log: {error}"]


def _head(logged: ThreadView | None, projected: ThreadView | None) -> list[str]:
    if logged is None or projected is None:
        if logged is projected:
            return []
        return [f"thread: {'on the log' if projected is None else 'in the projection'} only"]
    return [_field(f.name, getattr(logged, f.name), getattr(projected, f.name))
            for f in fields(ThreadView) if getattr(logged, f.name) != getattr(projected, f.name)]


def _field(name: str, logged: object, projected: object) -> str:
    if name == "state":  # may be megabytes: the head hashes already tell which is which
        return "head state: differs"
    return f"head {name}: log {logged!r}, projection {projected!r}"


def _events(kind: str, logged: Sequence[Checkpoint | RejectedEvent],
            projected: Sequence[Checkpoint | RejectedEvent]) -> list[str]:
    """The first place the two lists part, if they do."""
    for i, (a, b) in enumerate(zip(logged, projected, strict=False)):
        if a != b:
            return [f"{kind} event #{i} (seq {a.event.seq}): log {_where(a)}, "
                    f"projection {_where(b)}"]
    if len(logged) != len(projected):
        return [f"{kind} events: {len(logged)} on the log, {len(projected)} in the projection"]
    return []


def _where(entry: Checkpoint | RejectedEvent) -> str:
    p = entry.position
    return f"{entry.event.event_id} at {p.partition}:{p.offset}"


def blob_refs(audit: ThreadAudit) -> list[tuple[int, BlobRef]]:
    """Each blob the thread's accepted events point at, with the seq that first did: from
    deltas and nodes' recorded I/O, where the engine writes pointers (a snapshot only
    repeats a delta's). Every copy counts: one text may have been written twice."""
    first: dict[BlobRef, int] = {}
    for checkpoint in audit.accepted:
        event = checkpoint.event
        io = event.io if event.type is EventType.NODE_COMPLETED else None
        if BLOB_KEY not in event.delta and (io is None or BLOB_KEY not in io):
            continue  # most events: no pointer, nothing to parse
        for ref in refs_in([event.ops(), json.loads(io) if io is not None else None]):
            first.setdefault(ref, event.seq)
    return [(seq, ref) for ref, seq in first.items()]
