"""The ProjectionReader contract, written once and run against every adapter.

Backends: `memory` (engine.projection.LogProjection over InMemoryEventLog, the
reference) and `postgres` (projector.reader.PostgresProjectionReader over the
tables the projector fills from a real Kafka topic). Each test appends to the
backend's log, calls `sync()` (the projector catching up, or nothing) and
compares what the reader says with a fold of the same events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pytest

from engine.acceptance import Rejection, accepted_history
from engine.chain import seal
from engine.delta import State, fold, set_op
from engine.eventlog import EventLog, Position
from engine.eventlog_memory import InMemoryEventLog
from engine.events import Event, EventType, GraphRef
from engine.ledger import rebuild
from engine.projection import (
    CatchUpTimeoutError,
    CheckpointNotFoundError,
    LogProjection,
    Progress,
    ProjectionReader,
    ThreadGraph,
    ThreadNotFoundError,
)
from tests.factories import (
    GRAPH,
    ThreadWriter,
    fork_events,
    resealed,
    rival,
    thread_events,
)


@dataclass
class Backend:
    log: EventLog
    reader: ProjectionReader
    sync: Callable[[], object]

    def append(self, events: Sequence[Event]) -> list[Position]:
        positions = self.log.append(list(events))
        self.sync()
        return positions


def _memory() -> Iterator[Backend]:
    log = InMemoryEventLog(partitions=12)
    yield Backend(log, LogProjection(log), lambda: None)


def _postgres(request: pytest.FixtureRequest) -> Iterator[Backend]:
    from projector.reader import PostgresProjectionReader
    from projector.runner import Projector, ProjectorConfig

    log: EventLog = request.getfixturevalue("kafka_log")
    url: str = request.getfixturevalue("pg_url")
    projector = Projector(log=log, database_url=url,
                          config=ProjectorConfig(poll_timeout_s=0.05, group="contract"))
    projector.open()
    reader = PostgresProjectionReader(url, topic=log.topic, group="contract")
    try:
        yield Backend(log, reader, projector.catch_up)
    finally:
        reader.close()
        projector.close()


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from (_memory() if request.param == "memory" else _postgres(request))


def _fold_upto(events: Sequence[Event], seq: int) -> State:
    state: State = {}
    for e in events[:seq + 1]:
        state = fold(state, e.ops())
    return state


# --- threads -----------------------------------------------------------------------------

def test_unknown_thread_is_absent_everywhere(backend: Backend) -> None:
    backend.append(thread_events("known", 3))
    r = backend.reader
    assert r.get_thread("nope") is None
    assert r.thread_graph("nope") is None
    assert r.history("nope") == []
    assert r.rejected("nope") == []
    with pytest.raises(ThreadNotFoundError):
        r.require("nope")
    with pytest.raises(ThreadNotFoundError):
        r.get_state("nope")


def test_known_threads_are_those_of_the_asked_ids_the_projection_holds(
        backend: Backend) -> None:
    backend.append([*thread_events("kt-a", 2), *thread_events("kt-b", 1)])

    assert backend.reader.known_threads(["kt-b", "nope", "kt-a"]) == {"kt-a", "kt-b"}
    assert backend.reader.known_threads(["nope"]) == set()
    assert backend.reader.known_threads([]) == set()


def test_thread_ids_are_every_thread_sorted(backend: Backend) -> None:
    for name in ("b-thread", "a-thread", "c-thread"):
        backend.append(thread_events(name, 2))
    assert backend.reader.thread_ids() == ["a-thread", "b-thread", "c-thread"]


def test_thread_graph_is_the_graph_and_mode_it_started_with(backend: Backend) -> None:
    events = thread_events("routed", 5, end="interrupted")
    backend.append(events)

    found = backend.reader.thread_graph("routed")

    assert found == ThreadGraph(graph=GRAPH.name, mode="inline")
    assert events[0].mode == "inline" and events[0].graph == GRAPH


@pytest.mark.parametrize("end", ["completed", "interrupted", "failed", "cancelled", "running"])
def test_view_equals_the_fold_of_the_thread(backend: Backend, end: str) -> None:
    events = thread_events(f"th-{end}", 9, snapshot_every=4, end=end)
    backend.append(events)
    view = backend.reader.get_thread(f"th-{end}")
    assert view == rebuild(events)
    assert view is not None and view.status == end


def test_history_returns_the_exact_events_and_positions(backend: Backend) -> None:
    w = ThreadWriter("rich", snapshot_every=3)
    w.start(messages=[], topic="ünïcødé ✓")
    w.step()
    w.interrupt(payload={"draft": "wire 2.4M EUR", "n": 1.5})
    w.decide(actor="alice@treasury")
    w.fail()
    w.step()
    w.cancel()
    positions = backend.append(w.events)
    got = backend.reader.history("rich")
    assert [cp.event for cp in got] == w.events
    assert [cp.position for cp in got] == positions


def test_history_pages_by_seq(backend: Backend) -> None:
    events = thread_events("paged", 25)
    backend.append(events)
    r = backend.reader
    first = r.history("paged", limit=10)
    rest = r.history("paged", after_seq=first[-1].event.seq, limit=100)
    assert [cp.event.seq for cp in first] == list(range(10))
    assert [cp.event.seq for cp in rest] == list(range(10, 25))
    assert r.history("paged", after_seq=24) == []


def test_fork_keeps_its_origin(backend: Backend) -> None:
    source = thread_events("origin", 6, end="running")
    fork = fork_events(source, at_seq=3, thread_id="forked")
    backend.append([*source, *fork])
    view = backend.reader.get_thread("forked")
    assert view is not None and view.parent is not None
    assert (view.parent.thread_id, view.parent.seq, view.parent.hash) == (
        "origin", 3, source[3].hash)
    assert view.state == fold(_fold_upto(source, 3), fork[1].ops() + fork[2].ops())


# --- listing -----------------------------------------------------------------------------

def test_list_threads_filters_orders_and_pages(backend: Backend) -> None:
    other = GraphRef(name="other", fingerprint="0" * 16)
    threads = [thread_events(f"l-{i}", 4, end=("interrupted" if i % 2 else "completed"),
                             start_at=1_700_000_000_000_000 + i * 10_000_000,
                             graph=other if i % 3 == 0 else GRAPH)
               for i in range(7)]
    backend.append([e for t in threads for e in t])
    r = backend.reader
    newest_first = [f"l-{i}" for i in reversed(range(7))]
    assert [v.thread_id for v in r.list_threads()] == newest_first
    assert [v.thread_id for v in r.list_threads(limit=3, offset=2)] == newest_first[2:5]
    assert [v.thread_id for v in r.list_threads(status="interrupted")] == ["l-5", "l-3", "l-1"]
    assert [v.thread_id for v in r.list_threads(graph="other")] == ["l-6", "l-3", "l-0"]
    assert [v.thread_id for v in r.list_threads(graph="other", status="completed")] == [
        "l-6", "l-0"]
    assert [v.thread_id for v in r.open_interrupts()] == ["l-5", "l-3", "l-1"]
    assert all(v.interrupt is not None for v in r.open_interrupts())


# --- acceptance --------------------------------------------------------------------------

def test_racing_and_duplicate_events_are_rejected_never_applied(backend: Backend) -> None:
    w = ThreadWriter("race")
    w.start()
    w.step()
    loser = rival(w)  # built for seq 2 before the winner is appended
    w.step()
    w.step()
    duplicate = w.events[3]
    stale_retry = w.events[1]
    gap = resealed(loser, seq=9)
    forged = resealed(rival(w), prev_hash="ab" * 32)  # right seq, another history
    log_order = [*w.events[:3], loser, w.events[3], duplicate, stale_retry, gap, forged]
    backend.append(log_order)

    r = backend.reader
    expected = accepted_history(log_order)
    assert [cp.event for cp in r.history("race")] == w.events == expected.accepted
    got = [(x.event, x.reason) for x in r.rejected("race")]
    assert got == expected.rejected
    assert [reason for _, reason in got] == [Rejection.STALE_SEQ, Rejection.DUPLICATE,
                                             Rejection.STALE_SEQ, Rejection.GAP,
                                             Rejection.BAD_PREV_HASH]
    assert r.get_thread("race") == rebuild(w.events)


def test_event_whose_hash_does_not_match_is_rejected(backend: Backend) -> None:
    from dataclasses import replace

    w = ThreadWriter("badhash")
    w.start()
    honest = seal(w.draft(EventType.NODE_COMPLETED, node="x"), prev_hash=w.head.hash)
    forged = replace(honest, node="y")  # the hash still covers node "x"
    backend.append([*w.events, forged])
    [rejected] = backend.reader.rejected("badhash")
    assert rejected.reason is Rejection.BAD_HASH and rejected.event == forged
    assert [cp.event for cp in backend.reader.history("badhash")] == w.events


def test_state_hash_mismatch_marks_the_thread(backend: Backend) -> None:
    w = ThreadWriter("liar")
    w.start()
    draft = w.draft(EventType.NODE_COMPLETED, node="x", delta=[set_op("a", 1)])
    lie = resealed(seal(draft, prev_hash=w.head.hash), state_hash="0" * 64)
    events = [*w.events, lie]
    backend.append(events)
    view = backend.reader.get_thread("liar")
    assert view is not None and view.head.seq == lie.seq
    assert view.integrity_error is not None and "state_hash" in view.integrity_error
    assert view == rebuild(events)


def test_garbage_record_does_not_stop_the_projection(backend: Backend) -> None:
    first = thread_events("before-garbage", 3, end="running")
    backend.log.append(first)
    backend.log.append_raw("before-garbage", b"\x00not an event at all")
    backend.log.append_raw("before-garbage", b"\xc3\x01" + b"\x00" * 8 + b"junk")
    later = thread_events("after-garbage", 4)
    backend.append(later)
    assert backend.reader.get_thread("after-garbage") == rebuild(later)
    assert backend.reader.get_thread("before-garbage") == rebuild(first)


def test_dead_letter_offsets_are_a_partitions_garbage_below_an_offset(backend: Backend) -> None:
    log = backend.log
    keys = {log.partition_of(f"junk-{i}"): f"junk-{i}" for i in range(40)}
    (mixed, key), (other, other_key) = sorted(keys.items())[:2]
    garbage = [log.append_raw(key, b"\x00not an event").offset]
    backend.append(thread_events(key, 3))  # events between the garbage are not dead letters
    garbage += [log.append_raw(key, junk).offset for junk in (b"\xc3\x01junk", b"")]
    elsewhere = log.append_raw(other_key, b"\x00garbage on another partition")
    backend.append(thread_events("after-garbage", 2))  # and the projection catches up
    r = backend.reader

    assert r.dead_letter_offsets(mixed, below=log.end_offset(mixed)) == garbage
    assert r.dead_letter_offsets(mixed, below=garbage[2]) == garbage[:2]
    assert r.dead_letter_offsets(mixed, below=garbage[0]) == []
    assert r.dead_letter_offsets(other, below=elsewhere.offset + 1) == [elsewhere.offset]
    quiet = next(p for p in range(log.partitions) if p not in (mixed, other))
    assert r.dead_letter_offsets(quiet, below=log.end_offset(quiet)) == []


# --- historical state --------------------------------------------------------------------

def test_get_state_at_every_seq_equals_the_fold(backend: Backend) -> None:
    events = thread_events("long", 120, snapshot_every=10)
    backend.append(events)
    r = backend.reader
    for seq in range(len(events)):
        assert r.get_state("long", seq) == _fold_upto(events, seq), f"seq {seq}"
    assert r.get_state("long") == _fold_upto(events, 119)


def test_get_state_outside_the_thread_is_refused(backend: Backend) -> None:
    backend.append(thread_events("short", 3))
    for seq in (-1, 3, 100):
        with pytest.raises(CheckpointNotFoundError):
            backend.reader.get_state("short", seq)


# --- waiting -----------------------------------------------------------------------------

def test_wait_for_returns_the_view_once_projected(backend: Backend) -> None:
    events = thread_events("waited", 5)
    backend.append(events)
    assert backend.reader.wait_for("waited", 4, timeout_s=5) == rebuild(events)
    with pytest.raises(CatchUpTimeoutError):
        backend.reader.wait_for("waited", 5, timeout_s=0.2)
    with pytest.raises(CatchUpTimeoutError):
        backend.reader.wait_for("never", 0, timeout_s=0.2)


def test_wait_for_offset_covers_every_appended_record(backend: Backend) -> None:
    positions = backend.append(thread_events("offsets", 4))
    last = positions[-1]
    backend.reader.wait_for_offset(last.partition, last.offset + 1, timeout_s=5)
    assert backend.reader.projected_offset(last.partition) >= last.offset + 1
    with pytest.raises(CatchUpTimeoutError):
        backend.reader.wait_for_offset(last.partition, last.offset + 2, timeout_s=0.2)


def test_progress_is_the_projected_offset_and_its_age(backend: Backend) -> None:
    last = backend.append(thread_events("progress", 3))[-1]

    progress = backend.reader.progress(last.partition)

    assert progress.next_offset == backend.reader.projected_offset(last.partition)
    assert progress.next_offset >= last.offset + 1
    assert progress.idle_s >= 0.0
    from projector.reader import PostgresProjectionReader

    if not isinstance(backend.reader, PostgresProjectionReader):
        return  # the reference is always current and cannot tell an age
    assert progress.idle_s < 60.0  # a batch was just committed here
    unread = next(p for p in range(backend.log.partitions)
                  if p not in backend.reader.projected_offsets())
    assert backend.reader.progress(unread) == Progress(next_offset=0, idle_s=math.inf)


def test_thread_head_is_the_row_its_head_event_and_the_progress(backend: Backend) -> None:
    events = thread_events("headed", 6, snapshot_every=4, end="interrupted")
    positions = backend.append(events)
    partition = positions[-1].partition
    r = backend.reader

    found = r.thread_head("headed", partition)

    assert found.view == r.get_thread("headed") == rebuild(events)
    assert found.head == r.history("headed", after_seq=events[-1].seq - 1)[0]
    assert found.head is not None and found.head.position == positions[-1]
    assert found.progress.next_offset == r.projected_offset(partition)
    absent = r.thread_head("never-started", partition)
    assert absent.view is None and absent.head is None
    assert absent.progress.next_offset == found.progress.next_offset
