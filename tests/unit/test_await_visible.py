"""ensure_topic() returns only once the broker serves the new topic's metadata."""

from __future__ import annotations

import pytest

from engine.errors import LogUnavailableError
from engine.eventlog import await_visible


def test_waits_until_the_partitions_show() -> None:
    answers = iter([0, 0, 12])
    asked = []

    def partitions() -> int:
        asked.append(1)
        return next(answers)

    await_visible(partitions, "t.events", timeout_s=5)
    assert len(asked) == 3


def test_a_topic_that_never_shows_is_reported_by_name() -> None:
    with pytest.raises(LogUnavailableError, match=r"t\.events created but not visible"):
        await_visible(lambda: 0, "t.events", timeout_s=0.05)
