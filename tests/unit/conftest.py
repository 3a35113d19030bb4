"""Fixtures shared by the unit tests (the in-memory log: no services)."""

from __future__ import annotations

import pytest

from engine.checkpointer import Checkpointer
from engine.eventlog_memory import InMemoryEventLog
from engine.projection import LogProjection


@pytest.fixture
def cp() -> Checkpointer:
    """A checkpointer on a fresh in-memory log, its projection folded from that log."""
    log = InMemoryEventLog(partitions=2)
    return Checkpointer(log=log, projection=LogProjection(log))
