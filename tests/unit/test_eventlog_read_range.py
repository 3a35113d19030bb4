"""`EventLog.read` handles its arguments once; adapters supply only `_read_range`,
and every bounded read gives up alike when it stops making progress."""

from __future__ import annotations

import pytest

import engine.eventlog as eventlog
from engine.errors import LogUnavailableError
from engine.eventlog import Delivery, LogReader, StallWatch, drain
from engine.eventlog_memory import InMemoryEventLog


class _SpyLog(InMemoryEventLog):
    def __init__(self) -> None:
        super().__init__(partitions=1)
        self.ranges: list[tuple[int, int, int]] = []

    def _read_range(self, partition: int, start: int, stop: int) -> list[Delivery]:
        self.ranges.append((partition, start, stop))
        return super()._read_range(partition, start, stop)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _StuckReader(LogReader):
    """A cursor that never gets past offset 0, as when the broker stopped answering."""

    def __init__(self, clock: _Clock) -> None:
        self._clock = clock
        self.polls = 0

    def poll(self, *, max_records: int = 500, timeout_s: float = 1.0) -> list[Delivery]:
        self.polls += 1
        self._clock.now += timeout_s  # an empty poll waits out its timeout
        return []

    def positions(self) -> dict[int, int]:
        return {0: 0}

    def reseek(self, start: dict[int, int]) -> None: ...

    def close(self) -> None: ...


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


def test_read_defaults_to_the_current_end_and_skips_empty_ranges() -> None:
    log = _SpyLog()
    for i in range(3):
        log.append_raw("k", f"v{i}".encode())

    assert [d.raw for d in log.read(0, 1)] == [b"v1", b"v2"]
    assert [d.raw for d in log.read(0, 0, 2)] == [b"v0", b"v1"]
    assert list(log.read(0, 3)) == []
    assert list(log.read(0, 2, 2)) == []
    assert log.ranges == [(0, 1, 3), (0, 0, 2)]


def test_progress_postpones_the_stall(clock: _Clock) -> None:
    stall = StallWatch(0, 5, clock=clock)
    clock.now += eventlog.READ_STALL_S
    stall.note(progressed=True)
    clock.now += eventlog.READ_STALL_S
    stall.note(progressed=False)

    clock.now += 0.001
    with pytest.raises(LogUnavailableError, match="partition 0 up to 5"):
        stall.note(progressed=False)


def test_a_read_without_progress_reports_the_log_unavailable(clock: _Clock) -> None:
    reader = _StuckReader(clock)

    began = clock.now

    with pytest.raises(LogUnavailableError, match="no progress reading partition 0 up to 1"):
        list(drain(reader, 0, 1, clock=clock))
    waited = clock.now - began  # given up after the stall time, and one poll at most later
    assert eventlog.READ_STALL_S < waited <= eventlog.READ_STALL_S + 1.0
