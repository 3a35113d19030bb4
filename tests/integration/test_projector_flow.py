"""The projector on real Kafka + PostgreSQL: what lands where, rebuild, reads, the CLI."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from engine.acceptance import Rejection
from engine.delta import State, fold
from engine.eventlog import EventLog
from engine.ledger import rebuild
from projector import migrations
from projector.digest import database_digests
from projector.errors import MigrationError
from projector.migrations import MIGRATIONS, migrate
from projector.reader import PostgresProjectionReader
from projector.rows import EVENT_COLUMNS, REJECTED_COLUMNS, THREAD_COLUMNS
from projector.runner import Progress, Projector, ProjectorConfig
from tests.factories import (
    ThreadWriter,
    append_records,
    noisy_log,
    prose,
    resealed,
    rival,
    thread_events,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def projector(kafka_log: EventLog, pg_url: str) -> Iterator[Projector]:
    with Projector(log=kafka_log, database_url=pg_url,
                   config=ProjectorConfig(poll_timeout_s=0.05)) as p:
        yield p


@pytest.fixture
def reader(kafka_log: EventLog, pg_url: str) -> Iterator[PostgresProjectionReader]:
    r = PostgresProjectionReader(pg_url, topic=kafka_log.topic)
    yield r
    r.close()


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


# --- what lands where --------------------------------------------------------------------

def test_racing_and_duplicate_events_land_in_rejected_never_in_checkpoints(
        kafka_log: EventLog, pg_url: str, projector: Projector) -> None:
    w = ThreadWriter("race")
    w.start()
    loser = rival(w, "slow-worker")
    w.step(node="fast-worker")
    kafka_log.append([*w.events, loser, w.events[1], w.events[0]])
    projector.catch_up()
    rejected = query(pg_url, "SELECT seq, node, rejection, kafka_offset FROM rejected_events "
                             "ORDER BY kafka_offset")
    assert [r[:3] for r in rejected] == [(1, "slow-worker", Rejection.STALE_SEQ.value),
                                         (1, "fast-worker", Rejection.DUPLICATE.value),
                                         (0, None, Rejection.STALE_SEQ.value)]
    checkpoints = query(pg_url, "SELECT seq, node, kafka_offset FROM checkpoints ORDER BY seq")
    assert [c[:2] for c in checkpoints] == [(0, None), (1, "fast-worker")]
    assert not {r[3] for r in rejected} & {c[2] for c in checkpoints}


def test_garbage_record_lands_in_dead_letters_and_projection_continues(
        kafka_log: EventLog, pg_url: str, projector: Projector,
        reader: PostgresProjectionReader) -> None:
    before = thread_events("g", 3, end="running")
    kafka_log.append(before)
    garbage = bytes(range(256))
    where = kafka_log.append_raw("g", garbage)
    after = thread_events("h", 4)
    kafka_log.append(after)
    progress = projector.catch_up()
    assert (progress.dead_letters, progress.accepted) == (1, 7)
    [dead] = reader.dead_letters()
    assert (dead.position, dead.key, dead.raw) == (where, "g", garbage)
    assert f"partition {where.partition} offset {where.offset}" in dead.error
    assert reader.get_thread("h") == rebuild(after)


def test_event_with_a_nul_character_is_dead_lettered_not_altered(
        kafka_log: EventLog, projector: Projector, reader: PostgresProjectionReader) -> None:
    w = ThreadWriter("nul")
    w.start()
    bad = resealed(rival(w), actor="mallory\x00")
    kafka_log.append([*w.events, bad])
    projector.catch_up()
    [dead] = reader.dead_letters()
    assert "NUL" in dead.error and dead.key == "nul"
    assert reader.get_thread("nul") == rebuild(w.events)


def test_nul_inside_json_is_kept_exactly_and_only_the_jsonb_copy_is_dropped(
        kafka_log: EventLog, pg_url: str, projector: Projector,
        reader: PostgresProjectionReader) -> None:
    w = ThreadWriter("nul-json")
    w.start(note="a\x00b")  # escaped as \u0000 in JSON text: storable, but not as jsonb
    kafka_log.append(w.events)
    projector.catch_up()
    [(state, text)] = query(pg_url, "SELECT state, state_text FROM threads")
    assert state is None and json.loads(text) == w.state
    assert reader.get_thread("nul-json") == rebuild(w.events)
    assert [cp.event for cp in reader.history("nul-json")] == w.events


def _has_lz4(url: str) -> bool:
    with psycopg.connect(url) as conn:
        try:
            conn.execute("SET default_toast_compression = lz4")
        except psycopg.Error:
            return False
    return True


def test_large_states_are_stored_lz4_compressed(kafka_log: EventLog, pg_url: str,
                                                projector: Projector,
                                                reader: PostgresProjectionReader) -> None:
    if not _has_lz4(pg_url):
        pytest.skip("this PostgreSQL is built without lz4: the projection keeps pglz")
    # Also through the staging table the thread rows pass: a datum compressed there would
    # be moved as it is, in pglz.
    rng = random.Random(3)
    w = ThreadWriter("wordy")
    w.start(note=prose(rng, 20_000))
    kafka_log.append(w.events)
    projector.catch_up()
    [(method, stored, raw)] = query(pg_url, "SELECT pg_column_compression(state_text), "
                                    "pg_column_size(state_text), octet_length(state_text) "
                                    "FROM threads")
    assert method == "lz4" and stored * 2 < raw, (method, stored, raw)
    assert reader.get_thread("wordy") == rebuild(w.events)


def test_state_hash_mismatch_is_recorded_on_the_thread(
        kafka_log: EventLog, pg_url: str, projector: Projector) -> None:
    w = ThreadWriter("liar")
    w.start()
    lie = resealed(w.step(), state_hash="0" * 64)
    kafka_log.append([w.events[0], lie])
    projector.catch_up()
    [(seq, error)] = query(pg_url, "SELECT head_seq, integrity_error FROM threads")
    assert seq == 1 and "seq 1: state_hash mismatch" in error


def test_columns_of_the_tables_match_the_row_mappings(pg_url: str, projector: Projector) -> None:
    def columns(table: str) -> list[str]:
        rows = query(pg_url, "SELECT column_name FROM information_schema.columns "
                             "WHERE table_name = %s ORDER BY ordinal_position", table)
        return [r[0] for r in rows]

    assert columns("checkpoints") == list(EVENT_COLUMNS)
    assert columns("rejected_events") == list(REJECTED_COLUMNS)
    assert [c for c in columns("threads") if c in THREAD_COLUMNS] == list(THREAD_COLUMNS)


# --- rebuild and reads -------------------------------------------------------------------

def test_rebuild_from_the_cli_gives_identical_tables(
        kafka_log: EventLog, pg_url: str, projector: Projector,
        settings_env: dict[str, str]) -> None:
    records = noisy_log(40, 12, seed=3)
    append_records(kafka_log, records)
    projector.catch_up()
    projector.close()
    live = database_digests(pg_url)
    with psycopg.connect(pg_url) as conn:  # damage it, so the rebuild has to mean something
        conn.execute("UPDATE threads SET status = 'cancelled' WHERE thread_id = 't-00001'")
        conn.execute("DELETE FROM checkpoints WHERE seq = 3")
    assert database_digests(pg_url) != live
    run = subprocess.run([sys.executable, "-m", "consumers", "projector", "--rebuild"],
                         env=settings_env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["records"] == len(records)
    assert summary["dead_letters"] == sum(isinstance(r, bytes) for r in records)
    assert database_digests(pg_url) == live


def test_get_state_at_every_seq_of_a_500_event_thread(
        kafka_log: EventLog, pg_url: str, projector: Projector,
        reader: PostgresProjectionReader) -> None:
    events = thread_events("long", 500, snapshot_every=25, end="running")
    kafka_log.append(events)
    projector.catch_up()
    [(snapshots,)] = query(pg_url, "SELECT count(*) FROM checkpoints WHERE snapshot IS NOT NULL")
    assert snapshots == 19  # seq 25, 50, ..., 475
    state: State = {}
    for event in events:
        state = fold(state, event.ops())
        assert reader.get_state("long", event.seq) == state, f"seq {event.seq}"


def test_list_threads_by_update_time(kafka_log: EventLog, pg_url: str, projector: Projector,
                                     reader: PostgresProjectionReader) -> None:
    t0 = 1_800_000_000_000_000
    threads = [thread_events(f"time-{i}", 3, start_at=t0 + i * 60_000_000) for i in range(5)]
    kafka_log.append([e for t in threads for e in t])
    projector.catch_up()
    updated = [t[-1].occurred_at for t in threads]
    window = reader.list_threads(updated_after=updated[1], updated_before=updated[4])
    assert [v.thread_id for v in window] == ["time-3", "time-2", "time-1"]
    assert [v.thread_id for v in reader.list_threads(updated_after=updated[4] + 1)] == []
    [(when,)] = query(pg_url, "SELECT updated_at FROM threads WHERE thread_id = 'time-0'")
    assert when == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=updated[0])


def test_reads_wait_for_a_projector_running_elsewhere(
        kafka_log: EventLog, projector: Projector, reader: PostgresProjectionReader) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=projector.run, kwargs={"should_stop": stop.is_set})
    worker.start()
    try:
        events = thread_events("ryw", 6)
        kafka_log.append(events[:3])
        assert reader.wait_for("ryw", 2, timeout_s=20).head.seq == 2
        kafka_log.append(events[3:])
        ends = kafka_log.end_offsets()
        reader.wait_for_offsets(ends, timeout_s=20)
        assert reader.get_thread("ryw") == rebuild(events)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()


def test_projector_reconnects_after_losing_its_database_connection(
        kafka_log: EventLog, pg_url: str, reader: PostgresProjectionReader) -> None:
    records = noisy_log(30, 10, seed=4)
    append_records(kafka_log, records)
    killed: list[int] = []

    def kill_connection_once(progress: Progress) -> None:
        if progress.batches == 3 and not killed:
            rows = query(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE application_name LIKE 'amber-projector:%%' "
                                 "AND datname = current_database()")
            killed.extend(1 for r in rows if r[0])

    config = ProjectorConfig(batch_size=20, poll_timeout_s=0.05, lock_wait_s=10)
    with Projector(log=kafka_log, database_url=pg_url, config=config) as p:
        progress = p.catch_up(kill_connection_once)
    assert killed  # its connections were terminated (writes and reads alike)
    assert progress.records >= len(records)  # the interrupted batch was read twice ...
    rows = query(pg_url, "SELECT (SELECT count(*) FROM checkpoints) + "
                         "(SELECT count(*) FROM rejected_events) + "
                         "(SELECT count(*) FROM dead_letters)")
    assert rows == [(len(records),)]  # ... but written once


# --- schema ------------------------------------------------------------------------------

def test_migrations_are_concurrency_safe_and_refuse_a_newer_schema(pg_url: str) -> None:
    results: list[list[int]] = []

    def run() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            results.append(migrate(conn))

    workers = [threading.Thread(target=run) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    assert sorted(results) == [[], [], [], list(range(1, len(MIGRATIONS) + 1))]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
        with pytest.raises(MigrationError, match="999"):
            migrate(conn)


def test_a_migrations_notice_reaches_the_log_and_later_ones_do_not(
        pg_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    # 0003 says so by a NOTICE when it falls back to pglz; psycopg drops notices unless told
    shipped = migrations.migration_sql
    notice = "DO $$ BEGIN RAISE NOTICE '{}'; END $$;\n"
    monkeypatch.setattr(migrations, "migration_sql", lambda index: (
        notice.format("lz4 is not available") if index == 2 else "") + shipped(index))
    with psycopg.connect(pg_url, autocommit=True) as conn, \
            caplog.at_level(logging.WARNING, logger="amber.projector"):
        migrate(conn)
        conn.execute(notice.format("a later notice on the same connection"))
    assert "migration: lz4 is not available" in caplog.text
    assert "a later notice" not in caplog.text


# --- CLI ---------------------------------------------------------------------------------

def test_cli_reads_and_lag(kafka_log: EventLog, projector: Projector,
                           settings_env: dict[str, str]) -> None:
    import consumers.cli_projection  # noqa: F401 — registers the commands
    from consumers.cli import app

    w = ThreadWriter("cli-thread", snapshot_every=2)
    w.start(messages=[])
    w.step()
    w.interrupt(payload="ok?")
    kafka_log.append(w.events)
    projector.catch_up()
    kafka_log.append(thread_events("unprojected", 2))

    def amber(*args: str) -> str:
        result = CliRunner().invoke(app, list(args), env=settings_env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "schema at version" in amber("db", "migrate")
    state = json.loads(amber("state", "cli-thread", "--json"))
    assert (state["seq"], state["status"], state["state"]) == (2, "interrupted", w.state)
    assert json.loads(amber("state", "cli-thread", "--seq", "0", "--json"))["state"] == {
        "messages": []}
    history = json.loads(amber("history", "cli-thread", "--json"))
    assert [e["type"] for e in history["events"]] == [
        "ThreadStarted", "NodeCompleted", "Interrupted"]
    assert "Interrupted" in amber("history", "cli-thread")
    listed = json.loads(amber("threads", "--status", "interrupted", "--json"))
    assert [t["thread_id"] for t in listed] == ["cli-thread"]
    assert listed[0]["interrupt"]["payload"] == {"ask": "ok?"}
    lag = json.loads(amber("projector", "--lag", "--json"))
    assert lag["total_lag"] == 2
    missing = CliRunner().invoke(app, ["state", "nope"], env=settings_env)
    assert missing.exit_code == 2 and "no thread 'nope'" in missing.output
