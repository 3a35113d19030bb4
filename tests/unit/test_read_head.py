"""read_head: the projection's row, with the thread's unapplied events folded on from the log.

A projector lags the log by a few ms. While it is demonstrably alive, a
command folds the thread's own unapplied events itself instead of waiting;
the head it acts on must be exactly what the projector will make of the log.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from engine import service
from engine.checkpointer import Checkpointer
from engine.errors import ConflictError, ThreadExistsError, ThreadNotWaitingError
from engine.eventlog import Tail
from engine.eventlog_memory import InMemoryEventLog
from engine.events import EventType
from engine.projection import (
    CatchUpTimeoutError,
    CheckpointNotFoundError,
    LogFold,
    LogProjection,
    Progress,
    folded_state,
)
from engine.service import read_head
from projector.batch import fold_batch
from projector.rows import row_event
from tests.engine_graphs import approval_graph
from tests.factories import raced_thread, resealed, rival


class LaggingProjection(LogProjection):
    """A projector that has applied each partition only below `at`; `idle_s` since it moved."""

    def __init__(self, log: InMemoryEventLog) -> None:
        super().__init__(log)
        self.at = 10**9
        self.idle_s = 0.01
        self.waited = 0

    def projected_offset(self, partition: int) -> int:
        return min(self.at, self._log.end_offset(partition))

    def progress(self, partition: int) -> Progress:
        return Progress(next_offset=self.projected_offset(partition), idle_s=self.idle_s)

    def wait_for_offset(self, partition: int, offset: int, *, timeout_s: float) -> None:
        self.waited += 1
        super().wait_for_offset(partition, offset, timeout_s=timeout_s)


@pytest.fixture
def log() -> InMemoryEventLog:
    return InMemoryEventLog(partitions=1)  # every thread on one partition


@pytest.fixture
def lagging(log: InMemoryEventLog) -> LaggingProjection:
    return LaggingProjection(log)


@pytest.fixture
def cp(log: InMemoryEventLog, lagging: LaggingProjection) -> Checkpointer:
    return Checkpointer(log=log, projection=lagging, catchup_timeout_s=0.2)


def _approval(cp: Checkpointer) -> Any:
    return approval_graph(interrupt_before=["review"], checkpointer=cp)


@pytest.mark.parametrize("cut", range(10))
def test_the_head_read_at_any_lag_is_what_the_projector_makes_of_the_log(
        cp: Checkpointer, log: InMemoryEventLog, lagging: LaggingProjection, cut: int) -> None:
    writer, records = raced_thread("t")  # a rejected rival lies among its records
    log.append([*records, resealed(rival(writer), actor="eve\x00")])  # and, last, a dead letter
    log.append_raw("t", b"\x00 not an event")
    log.append_raw("t", cast(bytes, None))  # a Kafka tombstone: no value at all

    lagging.at = cut
    found = read_head(cp, "t")

    # the reference is the projector's own fold of the whole log
    projected = fold_batch(list(log.read(0)), lambda _t: None)
    applied = [row_event(row)[0] for row in projected.checkpoints]
    assert found.view == projected.views["t"] and found.head is not None
    assert found.head.event == applied[-1]
    assert [c.event for c in found.recent] == [
        e for e, row in zip(applied, projected.checkpoints, strict=True) if row[-1] >= cut]
    assert found.end == log.end_offset(0) and lagging.waited == 0


@pytest.mark.parametrize(("last", "idle_s", "waits"), [
    ("other", 0.01, False),  # a live projector behind with another thread's event only
    ("mine", 0.01, False),  # the thread's own Interrupted is unapplied: folded from the log
    ("other", 30.0, True),  # the projector stopped 30 s ago: never trusted to be current
    ("mine", 30.0, True),
])
def test_resume_waits_only_for_a_projector_that_is_not_live(
        cp: Checkpointer, log: InMemoryEventLog, lagging: LaggingProjection, last: str,
        idle_s: float, waits: bool) -> None:
    app = _approval(cp)
    for thread in sorted(("mine", "other"), key=lambda t: t == last):
        app.start(thread, {})
    lagging.at, lagging.idle_s = log.end_offset(0) - 1, idle_s  # `last`'s Interrupted unapplied
    before = log.end_offsets()

    if not waits:
        res = app.resume("mine", {"approved": True}, actor="a")
        assert res.status == "completed" and lagging.waited == 0
        lagging.at = 10**9
        assert cp.projection.require("mine").status == "completed"  # and the log agrees
        return
    with pytest.raises(CatchUpTimeoutError, match="amber projector"):
        app.resume("mine", {"approved": True}, actor="a")
    assert log.end_offsets() == before


@pytest.mark.parametrize("applied_after_it", range(4))  # 0: not even the decision
def test_a_repeated_decision_the_projector_has_not_applied_appends_nothing(
        cp: Checkpointer, log: InMemoryEventLog, lagging: LaggingProjection,
        applied_after_it: int) -> None:
    app = _approval(cp)
    app.start("t", {})
    decision_at = log.end_offset(0)
    app.resume("t", {"approved": True}, actor="a")
    lagging.at = decision_at + applied_after_it  # the events from there on stay unapplied
    before = log.end_offsets()

    again = app.resume("t", {"approved": True}, actor="a")

    assert again.status == "completed" and log.end_offsets() == before
    with pytest.raises(ThreadNotWaitingError, match="completed"):
        app.resume("t", {"approved": False}, actor="a")
    assert log.end_offsets() == before and lagging.waited == 0


def test_a_start_the_projector_has_not_applied_refuses_a_second_start(
        cp: Checkpointer, log: InMemoryEventLog, lagging: LaggingProjection) -> None:
    app = _approval(cp)
    lagging.at = 0
    app.start("t", {})
    before = log.end_offsets()

    with pytest.raises(ThreadExistsError):
        app.start("t", {})
    assert log.end_offsets() == before and lagging.waited == 0



def test_a_tail_longer_than_the_scan_is_waited_for(
        cp: Checkpointer, log: InMemoryEventLog, lagging: LaggingProjection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "_TAIL_SCAN", 3)
    app = _approval(cp)
    app.start("t", {})
    interrupted_at = log.end_offset(0) - 1
    for other in ("o1", "o2"):
        app.start(other, {})  # more records than a command scans
    lagging.at = interrupted_at  # t's Interrupted and all after it unapplied
    before = log.end_offsets()

    with pytest.raises(CatchUpTimeoutError, match="amber projector"):
        app.resume("t", {"approved": True}, actor="a")
    assert lagging.waited == 1 and log.end_offsets() == before


def test_a_rival_that_lands_after_the_tail_was_read_wins_and_ours_is_refused(
        cp: Checkpointer, log: InMemoryEventLog, lagging: LaggingProjection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    app = _approval(cp)
    app.start("t", {})
    lagging.at = log.end_offset(0) - 1  # the Interrupted is folded from the tail
    read_tail = log.tail

    def tail_then_rival(partition: int, start: int, *, most: int,
                        thread_id: str | None = None) -> Tail:
        found = read_tail(partition, start, most=most, thread_id=thread_id)
        monkeypatch.setattr(log, "tail", read_tail)
        app.resume("t", {"approved": False}, actor="rival")  # decides first, meanwhile
        return found

    monkeypatch.setattr(log, "tail", tail_then_rival)

    with pytest.raises(ConflictError, match="first"):
        app.resume("t", {"approved": True}, actor="a")
    lagging.at = 10**9
    assert cp.projection.require("t").status == "completed"
    decisions = [c.event.actor for c in cp.projection.history("t")
                 if c.event.type is EventType.DECISION_RECORDED]
    assert decisions == ["rival"] and len(cp.projection.rejected("t")) == 1


@pytest.mark.parametrize("cut", range(0, 9, 2))
def test_state_and_history_include_what_the_projector_has_yet_to_apply(
        cp: Checkpointer, log: InMemoryEventLog, lagging: LaggingProjection, cut: int) -> None:
    app = _approval(cp)
    app.start("t", {})
    app.resume("t", {"approved": True}, actor="a")
    lagging.at = cut
    truth = LogFold().add_all(log.read(0)).checkpoints["t"]

    assert [c.event for c in app.history("t")] == [c.event for c in truth]
    assert app.get_state("t") == folded_state(truth)
    for seq in range(len(truth)):
        assert app.get_state({"configurable": {"thread_id": "t"}}, seq) == \
            folded_state(truth[:seq + 1])
    with pytest.raises(CheckpointNotFoundError):
        app.get_state("t", len(truth))
    assert lagging.waited == 0 and app.history("never") == []
