"""engine/log_audit.py on the in-memory log: windowed reads; verifying still and moving threads."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine import log_audit
from engine.checkpointer import Checkpointer
from engine.eventlog import encode_event
from engine.eventlog_memory import InMemoryEventLog
from engine.ledger import ThreadView
from engine.projection import LogProjection, RejectedEvent, ThreadNotFoundError
from projector.batch import fold_batch
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


class _Racing(LogProjection):
    """A projection read while writers go on: each of its first `races` reads of the
    thread's rejected events follows a retried append (a duplicate) landing on the log."""

    def __init__(self, log: InMemoryEventLog, races: int) -> None:
        super().__init__(log)
        self.races = races

    def rejected(self, thread_id: str) -> list[RejectedEvent]:
        if self.races > 0 and thread_id == "audited":
            self.races -= 1
            head = self.history(thread_id)[-1].event
            self._log.append([head])  # the same event again: rejected, as a duplicate
        return super().rejected(thread_id)


class _Forged(LogProjection):
    """A projection edited at rest: a head moved on, a thread the log never had, or
    one it lost."""

    def __init__(self, log: InMemoryEventLog, *, bumped: str | None = None,
                 ghost: ThreadView | None = None, hidden: str | None = None) -> None:
        super().__init__(log)
        self.bumped, self.ghost, self.hidden = bumped, ghost, hidden

    def get_thread(self, thread_id: str) -> ThreadView | None:
        if self.ghost is not None and thread_id == self.ghost.thread_id:
            return self.ghost
        view = None if thread_id == self.hidden else super().get_thread(thread_id)
        if view is None or thread_id != self.bumped:
            return view
        return replace(view, head=replace(view.head, seq=99))

    def thread_ids(self) -> list[str]:
        ghost = [self.ghost.thread_id] if self.ghost else []
        return sorted(t for t in [*super().thread_ids(), *ghost] if t != self.hidden)


class _DeadLettersEdited(LogProjection):
    """A projection whose dead_letters table lost rows (`lost`) or gained some (`extra`),
    as offsets by partition."""

    def __init__(self, log: InMemoryEventLog, *, lost: dict[int, set[int]] | None = None,
                 extra: dict[int, set[int]] | None = None) -> None:
        super().__init__(log)
        self.lost, self.extra = lost or {}, extra or {}

    def dead_letter_offsets(self, partition: int, *, below: int) -> list[int]:
        kept = set(super().dead_letter_offsets(partition, below=below))
        kept = kept - self.lost.get(partition, set()) | self.extra.get(partition, set())
        return sorted(o for o in kept if o < below)


def _with_garbage(per_partition: int) -> tuple[InMemoryEventLog, dict[int, list[int]]]:
    """Threads on a 4-partition log, two of whose partitions also hold `per_partition`
    undecodable records (their offsets, by partition) and then a thread's events."""
    log = InMemoryEventLog(partitions=4)
    log.append([e for i in range(6) for e in thread_events(f"t-{i}", 3)])
    keys = {log.partition_of(f"junk-{i}"): f"junk-{i}" for i in range(20)}
    garbage: dict[int, list[int]] = {}
    for partition, key in sorted(keys.items())[:2]:
        garbage[partition] = [log.append_raw(key, b"\x00 not an event").offset
                              for _ in range(per_partition)]
        log.append(thread_events(key, 2))
    return log, garbage


def _cp(log: InMemoryEventLog, projection: LogProjection | None = None) -> Checkpointer:
    return Checkpointer(log=log, projection=projection or LogProjection(log),
                        catchup_timeout_s=1.0)


def test_a_faithful_projection_passes() -> None:
    log, w = _logged()
    verdict = log_audit.verify(_cp(log), "audited")
    assert verdict.differences == [] and verdict.audit.view is not None
    assert verdict.audit.view.head.hash == w.head.hash


def test_rows_projected_after_the_log_read_are_read_in_the_next_round() -> None:
    log, _ = _logged()
    verdict = log_audit.verify(_cp(log, _Racing(log, races=2)), "audited")
    assert verdict.differences == [] and len(verdict.audit.rejected) == 3


def test_a_thread_that_keeps_moving_is_reported_as_such() -> None:
    log, _ = _logged()
    found = log_audit.verify(_cp(log, _Racing(log, races=10)), "audited").differences
    assert found == ["thread: still moving after 3 reads; verify it at rest"]


def test_a_head_edited_at_rest_is_a_difference_not_a_movement() -> None:
    log, _ = _logged()
    found = log_audit.verify(_cp(log, _Forged(log, bumped="audited")), "audited").differences
    [difference] = found
    assert difference.startswith("head head: log Head(seq=4") and "Head(seq=99" in difference


def test_a_thread_neither_side_knows_is_not_found() -> None:
    log, _ = _logged()
    with pytest.raises(ThreadNotFoundError):
        log_audit.verify(_cp(log), "nobody")


def test_every_thread_of_a_faithful_projection_passes() -> None:
    log, _ = _logged()  # with a dead letter, which the projection holds too
    verdict = log_audit.verify_all(_cp(log))
    assert (verdict.threads, verdict.differing, verdict.rechecked) == (7, {}, [])
    assert verdict.partitions == {} and verdict.ok


def test_a_thread_the_projection_lost_is_named_alone() -> None:
    log, _ = _logged()
    verdict = log_audit.verify_all(_cp(log, _Forged(log, hidden="other-2")))
    assert verdict.threads == 7
    assert verdict.differing == {"other-2": ["thread: on the log only"]}


def test_a_thread_only_the_projection_has_is_a_difference() -> None:
    log, _ = _logged()
    real = LogProjection(log).get_thread("other-1")
    assert real is not None
    ghost = replace(real, thread_id="ghost")

    verdict = log_audit.verify_all(_cp(log, _Forged(log, ghost=ghost)))

    assert verdict.threads == 8
    assert verdict.differing == {"ghost": ["thread: in the projection only"]}


def test_a_thread_that_moved_during_the_sweep_is_verified_again_alone() -> None:
    log, _ = _logged()
    verdict = log_audit.verify_all(_cp(log, _Racing(log, races=1)))
    assert verdict.differing == {} and verdict.rechecked == ["audited"]


def test_dead_letters_lost_or_added_are_named_under_their_partition() -> None:
    log, garbage = _with_garbage(per_partition=2)
    (lossy, [kept, gone]), (padded, real) = garbage.items()
    forged = log.end_offset(padded) - 1  # an event's offset: no dead letter on the log

    verdict = log_audit.verify_all(_cp(log, _DeadLettersEdited(
        log, lost={lossy: {gone}}, extra={padded: {forged}})))

    assert forged not in real and kept != gone
    assert verdict.partitions == {
        lossy: [f"dead letter at {lossy}:{gone} on the log only"],
        padded: [f"dead letter at {padded}:{forged} in the projection only"]}
    assert verdict.differing == {} and not verdict.ok


def test_many_missing_dead_letters_are_counted_past_the_first_few() -> None:
    log, garbage = _with_garbage(per_partition=8)
    partition, offsets = next(iter(garbage.items()))

    verdict = log_audit.verify_all(_cp(log, _DeadLettersEdited(
        log, lost={partition: set(offsets)})))

    assert verdict.partitions == {partition: [
        *(f"dead letter at {partition}:{o} on the log only" for o in offsets[:5]),
        "… and 3 more dead letters on the log only"]}


def test_an_event_under_another_key_belongs_to_the_thread_it_names() -> None:
    # as for the projector, which goes by the event's thread_id
    log = InMemoryEventLog(partitions=1)
    w = ThreadWriter("named")
    log.append([w.start()])
    log.append_raw("a-different-key", encode_event(w.step()))  # a foreign producer's key
    log.append([w.step()])

    audit = log_audit.audit_thread(log, "named")

    projected = fold_batch(list(log.read(0)), lambda _t: None)
    assert [c.event for c in audit.accepted] == w.events
    assert audit.view == projected.views["named"]
