"""The pure half of the projector: fold a batch of log records into rows to write.

No I/O here. `fold_batch` applies the acceptance rule (engine.ledger.advance)
to each decoded event in log order and sorts every record into exactly one
of checkpoints, rejected events or dead letters, plus the final view of each
thread it touched and the next offset of each partition it read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.acceptance import Rejection
from engine.eventlog import Delivery, Position
from engine.events import Event
from engine.ledger import ThreadView, advance
from projector.rows import Row, event_row

ViewLookup = Callable[[str], ThreadView | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A record that could not be projected: its coordinates, its bytes, why."""

    position: Position
    key: str | None
    raw: bytes
    error: str


@dataclass(slots=True, kw_only=True)
class Batch:
    """What one PostgreSQL transaction writes. Rows are in log order."""

    checkpoints: list[Row] = field(default_factory=list)
    rejected: list[tuple[Row, Rejection]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    views: dict[str, ThreadView] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)
    integrity_errors: list[str] = field(default_factory=list)  # threads newly marked

    @property
    def records(self) -> int:
        return len(self.checkpoints) + len(self.rejected) + len(self.dead_letters)


def fold_batch(deliveries: Sequence[Delivery], known: ViewLookup) -> Batch:
    """Sort `deliveries` (log order per partition) into a Batch.

    `known(thread_id)` gives the committed view of a thread, or None if the
    projection has never seen it; views changed earlier in the batch win.
    """
    batch = Batch()
    for d in deliveries:
        _place(batch, d, known)
        pos = d.position
        batch.positions[pos.partition] = max(batch.positions.get(pos.partition, 0), pos.offset + 1)
    return batch


def _place(batch: Batch, d: Delivery, known: ViewLookup) -> None:
    event = d.event
    if event is None:
        error = str(d.error) if d.error is not None else "record is not an event"
        batch.dead_letters.append(_dead(d, error))
        return
    # An event with a NUL in its text never gets here: it does not decode
    # (engine.events.nul_field), for this reader as for every other.
    _apply(batch, event, event_row(event, d.position), known)


def _apply(batch: Batch, event: Event, row: Row, known: ViewLookup) -> None:
    before = batch.views.get(event.thread_id) or known(event.thread_id)
    outcome = advance(before, event)
    if outcome.rejection is not None or outcome.view is None:
        batch.rejected.append((row, outcome.rejection or Rejection.GAP))
        return
    after = outcome.view
    if after.integrity_error and not (before and before.integrity_error):
        batch.integrity_errors.append(event.thread_id)
    batch.views[event.thread_id] = after
    batch.checkpoints.append(row)


def _dead(d: Delivery, error: str) -> DeadLetter:
    # Text columns cannot hold NUL; the raw bytes keep the truth.
    return DeadLetter(position=d.position, key=_text(d.key), raw=d.raw, error=_text(error) or "")


def _text(value: str | None) -> str | None:
    return None if value is None else value.replace("\x00", "\\x00")
