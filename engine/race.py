"""Did our append win? Reads back the log between the known head and our event.

Kafka cannot compare-and-set, so a writer that must not duplicate side
effects (a resume, a start) re-applies the acceptance rule to the records
that landed on the partition since the head it acted on.
"""

from __future__ import annotations

from engine.acceptance import Head, judge
from engine.eventlog import EventLog, Position
from engine.events import Event


def first_writer_wins(log: EventLog, since: Position, ours: Position, event: Event,
                      head: Head | None) -> bool:
    """True iff `event` (at `ours`) is accepted given the records from `since` on."""
    if since.offset >= ours.offset:
        return True  # nothing was appended to the partition between the head and ours
    current = head or Head()
    for delivery in log.read(since.partition, since.offset, ours.offset + 1):
        other = delivery.event
        if other is None or other.thread_id != event.thread_id:
            continue
        if judge(current, other) is None:
            if delivery.position == ours:
                return True
            current = Head(other.seq, other.hash)
    return False
