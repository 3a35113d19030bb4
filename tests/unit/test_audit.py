"""engine/audit.py: a thread re-folded from its raw records, and its check against a projection."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.audit import ThreadAudit, differences
from engine.delta import State, fold
from engine.eventlog import EventLog
from engine.eventlog_memory import InMemoryEventLog
from engine.events import Event
from engine.ledger import ThreadView
from engine.projection import (
    Checkpoint,
    CheckpointNotFoundError,
    LogFold,
    LogProjection,
    RejectedEvent,
    ThreadNotFoundError,
)
from tests.factories import ThreadWriter, raced_thread, resealed, rival


def _raced() -> tuple[ThreadWriter, list[Event]]:
    """A thread with a racing loser, a duplicate and an interrupt, in log order."""
    w, order = raced_thread("audited")
    return w, [*order, w.events[1]]


def _logged(events: list[Event]) -> tuple[EventLog, ThreadAudit]:
    log = InMemoryEventLog(partitions=2)
    log.append(events)
    records = log.read_thread("audited")
    return log, ThreadAudit.of("audited", LogFold().add_all(records))


def _projected(log: EventLog) -> tuple[ThreadView, list[Checkpoint], list[RejectedEvent]]:
    r = LogProjection(log)
    view = r.get_thread("audited")
    assert view is not None
    return view, r.history("audited"), r.rejected("audited")


def test_a_faithful_projection_has_no_differences() -> None:
    w, order = _raced()
    log, audit = _logged(order)

    assert differences(audit, *_projected(log)) == []
    assert [cp.event for cp in audit.accepted] == w.events
    assert len(audit.rejected) == 2  # the racing loser and the duplicate


def test_a_projection_that_lost_an_event_is_named() -> None:
    _, order = _raced()
    log, audit = _logged(order)
    view, history, rejected = _projected(log)

    found = differences(audit, view, history[:-1], rejected)

    assert found == [f"accepted events: {len(history)} on the log, "
                     f"{len(history) - 1} in the projection"]


def test_a_projection_with_another_head_names_each_field_but_not_the_state() -> None:
    _, order = _raced()
    log, audit = _logged(order)
    view, history, rejected = _projected(log)
    tampered = replace(view, status="completed", state={"messages": ["forged"]})

    found = differences(audit, tampered, history, rejected)

    assert found == ["head state: differs",
                     "head status: log 'interrupted', projection 'completed'"]


def test_a_swapped_event_is_reported_where_the_lists_part() -> None:
    _, order = _raced()
    log, audit = _logged(order)
    view, history, rejected = _projected(log)
    swapped = [*history[:2], replace(history[2], event=rejected[0].event), *history[3:]]

    [found] = differences(audit, view, swapped, rejected)

    assert found.startswith("accepted event #2 (seq 2): log ")
    assert rejected[0].event.event_id in found


def test_a_log_that_contradicts_itself_is_reported_even_when_the_projection_agrees() -> None:
    w = ThreadWriter("audited")
    w.start(messages=[])
    w.step()
    lying = resealed(rival(w), state_hash="00" * 32)  # chained, but its state hash is wrong
    log, audit = _logged([*w.events, lying])

    found = differences(audit, *_projected(log))

    assert len(found) == 1 and found[0].startswith("log: ")


def test_the_state_at_every_seq_is_the_fold_of_the_deltas() -> None:
    w, order = _raced()
    _, audit = _logged(order)
    state: State = {}
    for event in w.events:
        state = fold(state, event.ops())
        assert audit.state_at(event.seq) == state
    assert audit.state_at() == w.state
    with pytest.raises(CheckpointNotFoundError):
        audit.state_at(len(w.events))
    with pytest.raises(ThreadNotFoundError):
        ThreadAudit.of("nobody", LogFold()).state_at()
