"""`amber verify` and `--from-log` on real Kafka and PostgreSQL: raw log against projection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from consumers.cli import _register, app
from engine.eventlog import EventLog
from projector.runner import Projector, ProjectorConfig
from tests.factories import ThreadWriter, raced_thread, thread_events
from tests.processes import amber_services, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def projected(kafka_log: EventLog, pg_url: str) -> ThreadWriter:
    """A thread with a rejected racing event, appended and projected."""
    w, order = raced_thread("audited")
    kafka_log.append(order)
    _project(kafka_log, pg_url)
    return w


def _project(log: EventLog, url: str) -> None:
    """Everything on the log, into the projection (then the projector stops)."""
    with Projector(log=log, database_url=url, config=ProjectorConfig(poll_timeout_s=0.05)) as p:
        p.catch_up()


def _amber(env: dict[str, str], *args: str) -> Result:
    _register()
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def _json(env: dict[str, str], *args: str) -> Any:
    result = _amber(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_verify_passes_on_a_faithful_projection(projected: ThreadWriter,
                                                settings_env: dict[str, str]) -> None:
    report = _json(settings_env, "verify", "audited")

    assert report["ok"] is True and report["differences"] == []
    assert (report["accepted"], report["rejected"]) == (len(projected.events), 1)
    assert report["head_hash"] == projected.head.hash


def test_from_log_reads_equal_the_projections(projected: ThreadWriter,
                                              settings_env: dict[str, str]) -> None:
    for seq in range(len(projected.events)):
        at = ("state", "audited", "--seq", str(seq))
        assert _json(settings_env, *at, "--from-log") == _json(settings_env, *at)
    assert _json(settings_env, "history", "audited", "--from-log") == \
        _json(settings_env, "history", "audited")


def test_from_log_needs_no_database(projected: ThreadWriter,
                                    settings_env: dict[str, str]) -> None:
    dead = {**settings_env,
            "AMBER_DATABASE_URL": f"postgresql://amber:amber@127.0.0.1:{free_port()}/gone"}

    state = _json(dead, "state", "audited", "--from-log")

    assert state["state"] == projected.state and state["status"] == "interrupted"


def test_verify_names_what_a_tampered_projection_changed(projected: ThreadWriter,
                                                         settings_env: dict[str, str],
                                                         pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE threads SET status = 'completed' WHERE thread_id = 'audited'")
        conn.execute("DELETE FROM checkpoints WHERE thread_id = 'audited' AND seq = 2")

    result = _amber(settings_env, "verify", "audited")

    assert result.exit_code == 1, result.output
    assert "head status: log 'interrupted', projection 'completed'" in result.stdout
    assert "accepted event #2 (seq 2)" in result.stdout
    assert "2 difference(s)" in result.stdout


def test_verify_of_an_unknown_thread_says_so(projected: ThreadWriter,
                                             settings_env: dict[str, str]) -> None:
    result = _amber(settings_env, "verify", "nobody")

    assert result.exit_code == 2 and "no thread 'nobody'" in result.output


def test_verify_catches_a_rewritten_past_step_and_a_hidden_rejection(
        projected: ThreadWriter, settings_env: dict[str, str], pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE checkpoints SET actor = 'mallory' "
                     "WHERE thread_id = 'audited' AND seq = 1")
        conn.execute("DELETE FROM rejected_events WHERE thread_id = 'audited'")

    report = json.loads(_amber(settings_env, "verify", "audited", "--json").stdout)

    assert report["ok"] is False
    assert [d.split(":")[0] for d in report["differences"]] == [
        "accepted event #1 (seq 1)", "rejected events"]


def test_verify_without_a_thread_checks_them_all_and_names_the_one_that_differs(
        kafka_log: EventLog, projected: ThreadWriter, settings_env: dict[str, str],
        pg_url: str) -> None:
    others = [thread_events(f"other-{i}", 4, end="interrupted") for i in range(5)]
    kafka_log.append([e for events in others for e in events])
    _project(kafka_log, pg_url)
    assert _json(settings_env, "verify") == {"ok": True, "threads": 6, "differing": {},
                                             "rechecked": [], "partitions": {}}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE checkpoints SET node = 'forged' WHERE thread_id = 'other-3' "
                     "AND seq = 2")
        conn.execute("UPDATE threads SET head_seq = 99 WHERE thread_id = 'other-4'")

    result = _amber(settings_env, "verify")

    assert result.exit_code == 1, result.output
    assert "other-3: DIFFERS accepted event #2 (seq 2)" in result.stdout
    assert "other-4: DIFFERS head head: log Head(seq=3" in result.stdout
    assert "6 threads checked (0 again, alone, as they moved meanwhile), 2 differ" \
        in result.stdout


def test_verify_without_a_thread_names_a_dead_letter_the_projection_lost(
        kafka_log: EventLog, projected: ThreadWriter, settings_env: dict[str, str],
        pg_url: str) -> None:
    garbage = kafka_log.append_raw("audited", b"\x00 not an event")
    _project(kafka_log, pg_url)
    assert _json(settings_env, "verify")["partitions"] == {}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM dead_letters WHERE kafka_partition = %s AND kafka_offset = %s",
                     (garbage.partition, garbage.offset))

    result = _amber(settings_env, "verify", "--json")

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    where = f"{garbage.partition}:{garbage.offset}"
    assert report["partitions"] == {str(garbage.partition): [
        f"dead letter at {where} on the log only"]}
    assert report["ok"] is False and report["differing"] == {}
    text = _amber(settings_env, "verify")
    assert text.exit_code == 1 and f"partition {garbage.partition}: DIFFERS dead letter at " \
        f"{where} on the log only" in text.stdout


@pytest.fixture
def live_projector(settings_env: dict[str, str]) -> Iterator[None]:
    with amber_services(settings_env, ["projector"]):
        yield


def test_replay_shows_where_todays_graph_would_route_differently(
        live_projector: None, settings_env: dict[str, str]) -> None:
    env = {**settings_env, "AMBER_CATCHUP_TIMEOUT_S": "30"}
    then, today = "tests.cli_graphs:doc_approval", "tests.cli_graphs:doc_approval_today"
    assert _amber(env, "start", then, "--thread", "r1", "--input", "{}").exit_code == 0
    resumed = _amber(env, "resume", "r1", "--value", '{"approved": true}', "--graph", then)
    assert resumed.exit_code == 0, resumed.output

    same = _json(env, "replay", "r1", "--graph", then)
    assert same["same"] is True and [s["seq"] for s in same["steps"]] == [0, 1, 4, 5]

    changed = _amber(env, "replay", "r1", "--graph", today, "--json")
    assert changed.exit_code == 1, changed.output
    assert [(s["seq"], s["recorded"], s["today"]) for s in json.loads(changed.stdout)["steps"]
            if not s["same"]] == [(4, "publish", "__end__")]
