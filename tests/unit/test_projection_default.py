"""The default ProjectionReader.thread_head, for readers that only implement the basics."""

from __future__ import annotations

from engine.eventlog_memory import InMemoryEventLog
from engine.projection import Checkpoint, LogProjection
from tests.factories import thread_events


class _HistoryWithoutHead(LogProjection):
    """A reader whose checkpoints lag its thread rows (a torn or lagging store)."""

    def history(self, thread_id: str, *, after_seq: int = -1,
                limit: int = 1000) -> list[Checkpoint]:
        return []


def test_a_row_without_its_head_event_reports_no_head_like_postgres() -> None:
    log = InMemoryEventLog(partitions=3)
    positions = log.append(thread_events("torn", 3))
    reader = _HistoryWithoutHead(log)

    found = reader.thread_head("torn", positions[-1].partition)

    assert found.view is not None and found.view.head.seq == 2
    assert found.head is None
