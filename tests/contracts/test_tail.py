"""engine.tail over every EventLog adapter: the switch between cursors loses and repeats nothing."""

from __future__ import annotations

from engine.eventlog import EventLog
from engine.tail import GatheringTail, tail
from tests.eventbuild import chain, poll_at_least


def _drain_until_quiet(reader: GatheringTail) -> None:
    while reader.poll(max_records=500, timeout_s=0.2):
        pass


def test_a_tail_switches_cursors_at_exact_positions(log: EventLog) -> None:
    events = chain("t-tail", 30)
    partition = log.partition_of("t-tail")
    start = log.end_offsets()[partition]
    reader = tail(log, {partition: start}, gather_ms=20)
    assert isinstance(reader, GatheringTail)
    got = []
    try:
        for lo, hi in ((0, 1), (1, 12), (12, 13), (13, 30)):  # records, pauses, records
            log.append(events[lo:hi])
            got += poll_at_least(reader, hi - lo)
            assert reader.gathering  # records flowed: the next fetches are held
            _drain_until_quiet(reader)
            assert not reader.gathering  # an empty poll: back to the long poll
        assert reader.positions() == {partition: start + 30}
    finally:
        reader.close()

    assert [d.event for d in got] == events
    assert [d.position.offset for d in got] == list(range(start, start + 30))


def test_no_gathering_is_a_plain_reader(log: EventLog) -> None:
    reader = tail(log, {0: 0}, gather_ms=0)
    try:
        assert not isinstance(reader, GatheringTail)
    finally:
        reader.close()
