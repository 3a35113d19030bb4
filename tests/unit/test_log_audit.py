"""engine/log_audit.py on the in-memory log: windowed reads, and verifying a moving projection."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from engine import log_audit
from engine.checkpointer import Checkpointer
from engine.eventlog import Position
from engine.eventlog_memory import InMemoryEventLog
from engine.ledger import ThreadView
from engine.projection import LogProjection, RejectedEvent, ThreadNotFoundError
from tests.factories import ThreadWriter, raced_thread, thread_events


def _logged() -> tuple[InMemoryEventLog, ThreadWriter]:
    """A thread with a racing loser and garbage under its key, among other threads."""
    log = InMemoryEventLog(partitions=1)  # every thread on one partition: windows cut them
    w, order = raced_thread("audited")
    for i, event in enumerate(order):
        log.append([event, *thread_events(f"other-{i}", 2)])
    log.append_raw("audited", b"\x00 not an event")
    return log, w


def test_reads_in_small_windows_give_the_same_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    log, w = _logged()
    whole = log_audit.audit_thread(log, "audited")
    monkeypatch.setattr(log_audit, "WINDOW", 2)
    seen: list[tuple[int, int]] = []

    windowed = log_audit.audit_thread(log, "audited", on_progress=lambda d, t: seen.append((d, t)))

    assert windowed == whole and [cp.event for cp in whole.accepted] == w.events
    assert (len(whole.rejected), whole.undecodable) == (1, 1)
    end = log.end_offset(0)
    assert seen[-1] == (end, end) and len(seen) == (end + 1) // 2


class _Moving(LogProjection):
    """A projection that saw more than the log read: `extra` rejected rows, or a head ahead."""

    def __init__(self, log: InMemoryEventLog, *, rejected_after_end: bool = False,
                 ahead: bool = False) -> None:
        super().__init__(log)
        self.rejected_after_end, self.ahead = rejected_after_end, ahead

    def rejected(self, thread_id: str) -> list[RejectedEvent]:
        found = super().rejected(thread_id)
        if not (self.rejected_after_end and found):
            return found
        return [*found, replace(found[0], position=Position(0, 10**9))]  # after the read

    def get_thread(self, thread_id: str) -> ThreadView | None:
        view = super().get_thread(thread_id)
        return replace(view, head=replace(view.head, seq=view.head.seq + 1)) \
            if self.ahead and view else view


def _cp(log: InMemoryEventLog, **moving: Any) -> Checkpointer:
    return Checkpointer(log=log, projection=_Moving(log, **moving), catchup_timeout_s=1.0)


def test_a_faithful_projection_passes() -> None:
    log, w = _logged()
    verdict = log_audit.verify(_cp(log), "audited")
    assert verdict.differences == [] and verdict.audit.view is not None
    assert verdict.audit.view.head.hash == w.head.hash


def test_rows_projected_after_the_log_read_are_not_differences() -> None:
    log, _ = _logged()
    assert log_audit.verify(_cp(log, rejected_after_end=True), "audited").differences == []


def test_a_projection_that_keeps_moving_is_reported_as_such() -> None:
    log, _ = _logged()
    found = log_audit.verify(_cp(log, ahead=True), "audited").differences
    assert found[-1] == "thread: still moving after 3 reads; verify it at rest"


def test_a_thread_neither_side_knows_is_not_found() -> None:
    log, _ = _logged()
    with pytest.raises(ThreadNotFoundError):
        log_audit.verify(_cp(log), "nobody")


class _Hiding(LogProjection):
    """A projection that lost one thread entirely."""

    def __init__(self, log: InMemoryEventLog, hidden: str) -> None:
        super().__init__(log)
        self.hidden = hidden

    def get_thread(self, thread_id: str) -> ThreadView | None:
        return None if thread_id == self.hidden else super().get_thread(thread_id)

    def list_threads(self, **kw: Any) -> list[ThreadView]:
        return [v for v in super().list_threads(**kw) if v.thread_id != self.hidden]


def test_every_thread_of_a_faithful_projection_passes() -> None:
    log, _ = _logged()
    verdict = log_audit.verify_all(_cp(log))
    assert (verdict.threads, verdict.differing, verdict.moving) == (7, {}, [])


def test_a_thread_the_projection_lost_is_named_alone() -> None:
    log, _ = _logged()
    cp = Checkpointer(log=log, projection=_Hiding(log, "other-2"), catchup_timeout_s=1.0)

    verdict = log_audit.verify_all(cp)

    assert verdict.threads == 7
    assert verdict.differing == {"other-2": ["thread: on the log only"]}
