"""Rows hold every envelope field: an event read back from its row is the same event."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.eventlog import Position
from engine.events import Event
from engine.ledger import rebuild
from projector.migrations import MIGRATIONS, migration_sql
from projector.rows import (
    EVENT_COLUMNS,
    THREAD_COLUMNS,
    event_row,
    row_event,
    row_thread,
    thread_row,
)
from tests.factories import ThreadWriter, fork_events, resealed, thread_events


def _every_kind_of_event() -> list[Event]:
    w = ThreadWriter("all", snapshot_every=2)
    w.start(messages=[], note="ünïcødé ✓ \"quoted\" \\ back")
    w.step()
    w.interrupt(payload={"x": [1, 2.5, None, True]})
    w.decide(actor="alice")
    w.fail()
    w.cancel()
    return [*w.events, *fork_events(w.events, at_seq=2, thread_id="fork")]


@pytest.mark.parametrize("event", _every_kind_of_event(), ids=lambda e: f"{e.thread_id}-{e.seq}")
def test_event_row_round_trips_exactly(event: Event) -> None:
    row = event_row(event, Position(7, 12345))
    assert len(row) == len(EVENT_COLUMNS)
    assert row_event(row) == (event, Position(7, 12345))


@pytest.mark.parametrize("end", ["completed", "interrupted", "failed", "running"])
def test_thread_row_round_trips_exactly(end: str) -> None:
    view = rebuild(thread_events(f"v-{end}", 6, end=end))
    assert view is not None
    row = thread_row(view)
    assert len(row) == len(THREAD_COLUMNS)
    assert row_thread(row) == view


def test_fork_and_integrity_error_survive_the_thread_row() -> None:
    source = thread_events("src", 4)
    fork = fork_events(source, at_seq=1, thread_id="f")
    broken = [*fork[:2], resealed(fork[2], state_hash="1" * 64)]
    view = rebuild(broken)
    assert view is not None and view.parent is not None and view.integrity_error
    assert row_thread(thread_row(view)) == view


def test_migrations_are_numbered_in_order_and_shipped() -> None:
    for index, name in enumerate(MIGRATIONS):
        assert re.fullmatch(rf"{index + 1:04d}_[a-z0-9_]+\.sql", name)
        assert migration_sql(index).strip()
    shipped = sorted(p.name for p in (Path(__file__).parents[2] / "projector" / "sql").iterdir()
                     if p.suffix == ".sql")
    assert shipped == list(MIGRATIONS)


def test_sql_columns_match_the_row_mappings() -> None:
    text = migration_sql(0)
    for table, columns in (("checkpoints", EVENT_COLUMNS), ("threads", THREAD_COLUMNS)):
        body = text.split(f"CREATE TABLE {table} (")[1].split(");")[0]
        declared = [line.split()[0] for line in body.splitlines()
                    if line.strip() and not line.strip().startswith(("PRIMARY", "--"))]
        assert [c for c in declared if c in columns] == list(columns), table


def test_the_cli_default_group_is_the_projector_default() -> None:
    from consumers.cli_projection import _DEFAULT_GROUP
    from projector.store import DEFAULT_GROUP

    assert _DEFAULT_GROUP == DEFAULT_GROUP
