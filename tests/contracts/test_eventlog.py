"""The EventLog port contract, written once and run against every adapter.

Backends: `memory` (InMemoryEventLog, the reference semantics), `kafka`
(KafkaEventLog, kafka-python) and `confluent` (ConfluentEventLog, librdkafka),
both on a fresh topic of the real broker. A test here states what any adapter
must do; an adapter-specific fact belongs in its own test file.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading

import pytest

from engine.acceptance import Rejection, accepted_history
from engine.chain import seal
from engine.delta import set_op
from engine.errors import EventDecodeError
from engine.eventlog import Delivery, EventLog, Position, Tail, encode_event
from engine.events import Event, EventType
from engine.sizing import MAX_EVENT_BYTES, SNAPSHOT_ROOM, estimated_bytes
from schemas.errors import EncodeError
from tests.eventbuild import chain, poll_at_least
from tests.factories import ThreadWriter


def _same_partition(log: EventLog, count: int, prefix: str) -> list[str]:
    """`count` thread ids that all live on one partition (so their records interleave)."""
    by_partition: dict[int, list[str]] = {}
    for i in itertools.count():
        tid = f"{prefix}-{i}"
        group = by_partition.setdefault(log.partition_of(tid), [])
        group.append(tid)
        if len(group) == count:
            return group
    raise AssertionError("unreachable")


def _other_partition(log: EventLog, thread_id: str, prefix: str) -> str:
    return next(f"{prefix}-{i}" for i in itertools.count()
                if log.partition_of(f"{prefix}-{i}") != log.partition_of(thread_id))


def _events(deliveries: list[Delivery]) -> list[Event | None]:
    return [d.event for d in deliveries]


def test_append_returns_positions_in_order_on_the_threads_partition(log: EventLog) -> None:
    log.connect_soon()  # connecting ahead changes nothing a caller can see
    events = chain("t-order", 5)
    partition = log.partition_of("t-order")
    start = log.end_offsets()[partition]

    positions = log.append(events)

    assert positions == [Position(partition, start + i) for i in range(5)]


def test_read_thread_returns_what_was_appended_in_order_and_only_that_thread(
        log: EventLog) -> None:
    a, b = _same_partition(log, 2, "t-read")
    events_a, events_b = chain(a, 4), chain(b, 4)
    positions_a = []
    for ea, eb in zip(events_a, events_b, strict=True):  # interleaved on one partition
        positions_a += log.append([ea])
        log.append([eb])

    deliveries = list(log.read_thread(a))

    assert _events(deliveries) == events_a
    assert [d.position for d in deliveries] == positions_a
    assert all(d.key == a and d.error is None for d in deliveries)
    assert [d.raw for d in deliveries] == [encode_event(e) for e in events_a]
    assert list(log.read_thread("t-never-written")) == []


def test_a_duplicate_append_keeps_both_records(log: EventLog) -> None:
    # The log never deduplicates; the acceptance rule does, identically for every reader.
    first, second = chain("t-dup", 2)

    positions = log.append([first, second]) + log.append([second])

    deliveries = list(log.read_thread("t-dup"))
    assert _events(deliveries) == [first, second, second]
    assert len(set(positions)) == 3
    history = accepted_history(d.event for d in deliveries if d.event)
    assert history.accepted == [first, second]
    assert history.rejected == [(second, Rejection.DUPLICATE)]


def test_concurrent_writers_each_keep_their_own_order(log: EventLog) -> None:
    thread_ids = _same_partition(log, 4, "t-conc") + [f"t-conc-solo-{i}" for i in range(4)]
    written = {tid: chain(tid, 25, writer=tid) for tid in thread_ids}
    positions: dict[str, list[Position]] = {tid: [] for tid in thread_ids}
    failures: list[BaseException] = []
    start = threading.Barrier(len(thread_ids))

    def writer(tid: str) -> None:
        try:
            start.wait(timeout=30)
            for event in written[tid]:  # one at a time: each waits for its ack
                positions[tid] += log.append([event])
        except BaseException as e:  # collected, asserted in the test thread below
            failures.append(e)

    workers = [threading.Thread(target=writer, args=(tid,)) for tid in thread_ids]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)

    assert failures == []
    for tid in thread_ids:
        offsets = [p.offset for p in positions[tid]]
        assert offsets == sorted(offsets) and len(set(offsets)) == 25
        assert _events(list(log.read_thread(tid))) == written[tid]
    shared = log.partition_of(thread_ids[0])
    assert [d.position.offset for d in log.read(shared)] == list(range(log.end_offsets()[shared]))


def test_a_reader_resumes_exactly_at_a_position(log: EventLog) -> None:
    events = chain("t-resume", 13)
    positions = log.append(events[:10])
    partition = positions[0].partition

    reader = log.reader({partition: positions[4].offset})
    try:
        first = poll_at_least(reader, 6)
        log.append(events[10:])
        then = poll_at_least(reader, 3)
        assert reader.positions() == {partition: positions[-1].offset + 4}
    finally:
        reader.close()

    assert [d.position for d in first] == positions[4:]
    assert _events(first) == events[4:10]
    assert _events(then) == events[10:]  # a live tail: nothing skipped, nothing repeated


def test_a_gathering_reader_delivers_a_lone_record_and_then_a_burst(log: EventLog) -> None:
    # The broker holds a gathering fetch until enough bytes wait OR the hold ends:
    # a single small record must still arrive, and a later burst arrive whole.
    events = chain("t-gather", 41)
    partition = log.partition_of("t-gather")
    reader = log.reader({partition: log.end_offsets()[partition]}, gather_ms=50)
    try:
        log.append(events[:1])
        lone = poll_at_least(reader, 1)
        log.append(events[1:])
        burst = poll_at_least(reader, 40)
    finally:
        reader.close()

    assert _events(lone) == events[:1]
    assert _events(burst) == events[1:]


def test_read_honours_its_start_and_end(log: EventLog) -> None:
    events = chain("t-range", 8)
    positions = log.append(events)
    partition = positions[0].partition

    middle = list(log.read(partition, positions[2].offset, positions[5].offset))
    tail = list(log.read(partition, positions[6].offset))

    assert _events(middle) == events[2:5]
    assert _events(tail) == events[6:]
    assert list(log.read(partition, positions[-1].offset + 1)) == []


def test_undecodable_bytes_become_a_located_error_and_reading_goes_on(log: EventLog) -> None:
    events = chain("t-bad", 3)
    log.append(events[:1])
    garbage = log.append_raw("t-bad", b"\x00 not an event")
    truncated = log.append_raw("t-bad", encode_event(events[1])[:25])
    log.append(events[1:])

    deliveries = list(log.read_thread("t-bad"))
    reader = log.reader({garbage.partition: garbage.offset})
    try:
        polled = poll_at_least(reader, 4)
    finally:
        reader.close()

    for seen in (deliveries[1:], polled):
        bad = seen[:2]
        assert [d.event for d in bad] == [None, None]
        assert all(isinstance(d.error, EventDecodeError) for d in bad)
        assert [(d.error.partition, d.error.offset) for d in bad if d.error] == [
            (garbage.partition, garbage.offset), (truncated.partition, truncated.offset)]
        assert bad[0].raw == b"\x00 not an event"
        assert _events(seen[2:4]) == events[1:]
    assert deliveries[0].event == events[0]


def test_end_offsets_grow_by_the_number_appended(log: EventLog) -> None:
    here = "t-ends"
    there = _other_partition(log, here, "t-ends-other")
    p_here, p_there = log.partition_of(here), log.partition_of(there)
    before = log.end_offsets()

    log.append(chain(here, 4))
    log.append_raw(there, b"raw")
    log.append_raw(there, b"raw")

    after = log.end_offsets()
    assert set(after) == set(range(log.partitions))
    assert after[p_here] == before[p_here] + 4
    assert after[p_there] == before[p_there] + 2
    assert {p: o for p, o in after.items() if p not in (p_here, p_there)} == \
        {p: o for p, o in before.items() if p not in (p_here, p_there)}
    assert [log.end_offset(p) for p in range(log.partitions)] == \
        [after[p] for p in range(log.partitions)]


def test_an_event_that_does_not_encode_is_refused_before_anything_is_written(
        log: EventLog) -> None:
    good, next_one = chain("t-invalid", 2)
    bad = dataclasses.replace(next_one, seq="one")  # type: ignore[arg-type]
    before = log.end_offsets()

    with pytest.raises(EncodeError):
        log.append([good, bad])

    assert log.end_offsets() == before
    assert list(log.read_thread("t-invalid")) == []


def _largest_events(thread_id: str) -> list[Event]:
    """The biggest events `seal` lets through: a node's result and the pause after it
    with the largest state a snapshot may hold, then recorded I/O up to the limit."""
    w = ThreadWriter(thread_id)
    w.start()
    big = "s" * (MAX_EVENT_BYTES - SNAPSHOT_ROOM - 64)
    events = [w.emit(EventType.NODE_COMPLETED, node="load", delta=[set_op("doc", big)]),
              w.interrupt()]
    probe = seal(w.draft(EventType.NODE_COMPLETED, node="llm", io=""), prev_hash=w.head.hash)
    room = MAX_EVENT_BYTES - estimated_bytes(probe.to_record())
    return [*events, w.emit(EventType.NODE_COMPLETED, node="llm", io="r" * room)]


def test_the_largest_events_seal_allows_are_appended_and_read_back_intact(
        log: EventLog) -> None:
    """MAX_EVENT_BYTES fits the broker's default message limit, batched or not."""
    events = _largest_events("t-largest")
    assert estimated_bytes(events[-1].to_record()) == MAX_EVENT_BYTES

    positions = log.append(events)

    written = list(zip(positions, events, strict=True))
    partition, offset = positions[0].partition, positions[0].offset
    read = list(log.read(partition, offset))
    assert [(d.position, d.event) for d in read] == written
    reader = log.reader({partition: offset}, gather_ms=20)  # the projector's and workers' way
    try:
        assert [(d.position, d.event) for d in poll_at_least(reader, 3)] == written
    finally:
        reader.close()


def test_tail_gives_the_end_and_every_record_from_a_start(log: EventLog) -> None:
    a, b = _same_partition(log, 2, "t-tail")
    partition = log.partition_of(a)
    start = log.append(chain(a, 2))[-1].offset
    log.append(chain(b, 1))

    tail = log.tail(partition, start, most=10)

    assert tail.end == start + 2
    assert tail.records is not None
    assert [d.position.offset for d in tail.records] == [start, start + 1]
    assert [d.key for d in tail.records] == [a, b]
    assert log.tail(partition, tail.end, most=10).records == []


def test_tail_leaves_out_the_records_when_more_than_asked_for_lie_before_the_end(
        log: EventLog) -> None:
    partition = log.partition_of("t-long-tail")
    start = log.append(chain("t-long-tail", 5))[0].offset

    tail = log.tail(partition, start, most=4)

    assert tail == Tail(start + 5, None)
    assert log.tail(partition, start + 5, most=0) == Tail(start + 5, [])
    exact = log.tail(partition, start, most=5).records  # as many as asked for: all of them
    assert exact is not None and [d.position.offset for d in exact] == list(range(start, start + 5))


def test_a_tail_past_the_end_is_the_end_and_nothing(log: EventLog) -> None:
    partition = log.partition_of("t-past")
    end = log.append(chain("t-past", 2))[-1].offset + 1

    assert log.tail(partition, end + 5, most=10) == Tail(end, [])


def test_a_tail_for_one_thread_holds_its_records_and_none_that_name_another(
        log: EventLog) -> None:
    mine, other = _same_partition(log, 2, "t-tail-of")
    partition = log.partition_of(mine)
    events, others = chain(mine, 3), chain(other, 3)
    start = log.append([events[0], others[0]])[0].offset
    garbage = log.append_raw(other, b"\x00 not an event")  # names no thread: kept, undecodable
    log.append([others[1], events[1], others[2], events[2]])

    tail = log.tail(partition, start, most=10, thread_id=mine)

    assert tail.end == start + 7
    assert tail.records is not None
    assert [d.event for d in tail.records if d.event is not None] == events
    assert [d.position for d in tail.records if d.event is None] == [garbage]
    assert log.tail(partition, start, most=6, thread_id=mine) == Tail(start + 7, None)


def test_an_event_off_its_threads_partition_is_a_dead_letter_wherever_it_is_read(
        log: EventLog) -> None:
    """Readers that follow one thread read only its partition; everyone else must agree."""
    events = chain("t-placed", 2)
    log.append(events[:1])
    stray = _other_partition(log, "t-placed", "t-stray")
    at = log.append_raw(stray, encode_event(events[1]))  # seq 1 of t-placed, under another key

    [read] = [d for d in log.read(at.partition, at.offset, at.offset + 1)]
    [polled] = poll_at_least(log.reader({at.partition: at.offset}), 1)

    for d in (read, polled):
        assert d.event is None and isinstance(d.error, EventDecodeError)
        assert "belongs on partition" in str(d.error)
    assert _events(list(log.read_thread("t-placed"))) == events[:1]
