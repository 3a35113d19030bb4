"""Exactly once across crashes: the projector killed anywhere ends with the same tables.

Each test projects the same topic twice: once undisturbed, in-process, into a
reference database; once by `amber projector` subprocesses that are killed
(SIGKILL at random moments, or at a named fault point) and restarted. The
table digests must be equal, and after every kill the rows must cover
exactly the records below the committed positions: nothing lost, nothing twice.
"""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from engine.eventlog import EventLog
from projector.digest import database_digests
from projector.faults import PROJECTOR_POINTS
from projector.runner import Projector
from tests.factories import append_records, noisy_log
from tests.processes import AMBER, spawn
from tests.scratch import fresh_database
from tests.stack import Endpoints
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


# --- helpers -----------------------------------------------------------------------------

@pytest.fixture
def reference_url(stack: Endpoints) -> Iterator[str]:
    """A second fresh database, for the undisturbed reference projection."""
    with fresh_database(stack.database_url) as url:
        yield url


def project_reference(log: EventLog, url: str) -> dict[str, str]:
    with Projector(log=log, database_url=url) as p:
        p.catch_up()
    return database_digests(url)


def projector_proc(env: dict[str, str], *args: str, fault: str | None = None,
                   ) -> subprocess.Popen[str]:
    full = {k: v for k, v in env.items() if k != "AMBER_FAULT"}
    if fault is not None:
        full["AMBER_FAULT"] = fault
    return spawn([*AMBER, "projector", "--wait-lock", "30", *args], env=full,
                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(env: dict[str, str]) -> None:
    proc = projector_proc(env, "--once")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


def covered(url: str) -> int:
    """Records below the committed positions (0 before the schema exists)."""
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('projector_positions')").fetchone()
        if not exists or exists[0] is None:
            return 0
        row = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM projector_positions"
                           ).fetchone()
    return int(row[0]) if row else 0


def assert_exactly_once(url: str) -> int:
    """Every record below a committed position has exactly one row; none above. Returns count."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "WITH r AS (SELECT kafka_partition p, kafka_offset o FROM checkpoints "
            "  UNION ALL SELECT kafka_partition, kafka_offset FROM rejected_events "
            "  UNION ALL SELECT kafka_partition, kafka_offset FROM dead_letters) "
            "SELECT (SELECT count(*) FROM r), (SELECT count(DISTINCT (p, o)) FROM r), "
            " (SELECT count(*) FROM r LEFT JOIN projector_positions pp ON pp.kafka_partition = r.p"
            "   WHERE pp.next_offset IS NULL OR r.o >= pp.next_offset), "
            " (SELECT coalesce(sum(next_offset), 0) FROM projector_positions), "
            " (SELECT count(*) FROM threads t WHERE t.head_seq <> "
            "   (SELECT max(seq) FROM checkpoints c WHERE c.thread_id = t.thread_id))"
        ).fetchone()
    assert rows is not None
    total, distinct, above, positions, stale_heads = (int(x) for x in rows)
    assert (total, above, stale_heads) == (distinct, 0, 0)
    assert total == positions, "a record below the positions has no row"
    return total


def progressed(url: str, before: int, proc: subprocess.Popen[str],
               producer: threading.Thread, total: int) -> Callable[[], bool]:
    """A condition: the projector committed more, exited, or has nothing left to do."""

    def check() -> bool:
        now = covered(url)
        return now > before or proc.poll() is not None or (
            not producer.is_alive() and now >= total)

    return check


# --- tests -------------------------------------------------------------------------------

def test_sigkill_at_random_moments_yields_the_same_tables(
        kafka_log: EventLog, pg_url: str, reference_url: str,
        settings_env: dict[str, str]) -> None:
    records = noisy_log(200, 20)
    # Paced so the log keeps growing for several projector lifetimes (~1 s each).
    producer = threading.Thread(target=append_records, args=(kafka_log, records, 100, 0.15))
    producer.start()
    rng = random.Random(42)
    kills, kills_mid_stream = 0, 0
    try:
        while kills < 10 and (producer.is_alive() or covered(pg_url) < len(records)):
            before = covered(pg_url)
            proc = projector_proc(settings_env, "--batch-size", "50")
            wait_until(progressed(pg_url, before, proc, producer, len(records)), 60,
                       "the projector to commit", every_s=0.01)
            time.sleep(rng.uniform(0, 0.1))  # the random moment of the kill
            proc.kill()
            proc.communicate(timeout=30)
            assert proc.returncode == -9, proc.stderr
            kills += 1
            kills_mid_stream += assert_exactly_once(pg_url) < len(records)
    finally:
        producer.join(timeout=120)
    finish(settings_env)
    assert kills_mid_stream >= 3
    assert assert_exactly_once(pg_url) == len(records)
    assert database_digests(pg_url) == project_reference(kafka_log, reference_url)


_COMMITTED = re.compile(r"batch committed .*\brecords=(\d+)")


@pytest.mark.parametrize("point", PROJECTOR_POINTS)
def test_crash_at_each_fault_point_loses_and_repeats_nothing(
        point: str, kafka_log: EventLog, pg_url: str, reference_url: str,
        settings_env: dict[str, str]) -> None:
    records = noisy_log(50, 20, seed=2)
    append_records(kafka_log, records)
    proc = projector_proc(settings_env, "--once", "--batch-size", "100", "-v",
                          fault=f"{point}@3")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -9, err
    logged = sum(int(n) for n in _COMMITTED.findall(err))  # commits the process saw finish
    done = assert_exactly_once(pg_url)
    # after_poll runs on the folding thread: the two batches before it may still be in flight.
    assert (0 if point == "after_poll" else 1) <= done < len(records)
    if point == "after_pg_commit":
        assert done > logged  # the third batch committed, the process died before noting it
    else:
        assert done == logged  # the third batch left nothing behind
    finish(settings_env)
    assert database_digests(pg_url) == project_reference(kafka_log, reference_url)


def test_a_second_projector_of_the_group_refuses_then_waits(
        kafka_log: EventLog, pg_url: str, settings_env: dict[str, str]) -> None:
    append_records(kafka_log, noisy_log(5, 4))
    holder = Projector(log=kafka_log, database_url=pg_url)
    holder.open()
    try:
        refused = projector_proc(settings_env, "--once", "--wait-lock", "0")
        _, err = refused.communicate(timeout=60)
        assert refused.returncode == 3
        assert "already running" in err and "amber-projector" in err
        waiting = projector_proc(settings_env, "--once")  # --wait-lock 30
    finally:
        holder.close()
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert assert_exactly_once(pg_url) == sum(kafka_log.end_offsets().values())
