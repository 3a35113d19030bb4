"""The mission scenario: two OS processes, real Kafka and PostgreSQL, a human in between."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import AMBER, amber_services

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GRAPH = "examples.email_approval:graph"
INPUT = json.dumps({"recipient": "cfo@example.com", "request": "wire 2.4M EUR"})


def amber(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([*AMBER, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    if check and run.returncode != 0:
        raise AssertionError(f"amber {' '.join(args)} failed ({run.returncode}):\n{run.stderr}")
    if check:  # e.g. a Kafka client's I/O loop torn down mid-await at exit
        assert "Traceback" not in run.stderr, run.stderr
    return run


@pytest.fixture
def env(settings_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**settings_env, "AMBER_OUTBOX_DIR": str(tmp_path / "outbox"), "AMBER_GRAPHS": GRAPH,
            "AMBER_CATCHUP_TIMEOUT_S": "30"}


@pytest.fixture
def projector(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with amber_services(env, ["projector"]) as [proc]:
        yield proc


def _json(run: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(run.stdout)


def _outbox(env: dict[str, str]) -> list[Path]:
    box = Path(env["AMBER_OUTBOX_DIR"])
    return sorted(box.iterdir()) if box.exists() else []


def _processes_naming(thread: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if thread in cmd:
                found.append(cmd)
    return found


def _runner_connections(env: dict[str, str]) -> int:
    import psycopg

    with psycopg.connect(env["AMBER_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND application_name LIKE 'amber-run%'").fetchone()
    return int(row[0]) if row else 0


def _start(env: dict[str, str], thread: str) -> dict[str, Any]:
    result: dict[str, Any] = _json(amber(env, "start", GRAPH, "--thread", thread, "--input", INPUT))
    return result


def test_process_one_exits_at_the_interrupt_and_process_two_finishes(
        env: dict[str, str], projector: subprocess.Popen[bytes]) -> None:
    thread = "tx-99812"
    first = _start(env, thread)
    assert first["status"] == "interrupted" and first["interrupt"]["node"] == "human_review"
    assert _processes_naming(thread) == []  # process 1 is gone; nothing holds the thread
    assert _runner_connections(env) == 0
    state = _json(amber(env, "state", thread, "--json"))
    assert state["status"] == "interrupted" and "2.4M EUR" in state["state"]["body"]

    second = _json(amber(env, "resume", thread, "--value", '{"approved": true}',
                         "--actor", "alice@treasury"))
    assert second["status"] == "completed"
    assert len(_outbox(env)) == 1

    history = _json(amber(env, "history", thread, "--json"))["events"]
    steps = [(h["type"], h.get("node"), h.get("actor")) for h in history]
    assert steps == [("ThreadStarted", None, None), ("NodeCompleted", "draft_email", None),
                     ("Interrupted", "human_review", None),
                     ("DecisionRecorded", "human_review", "alice@treasury"),
                     ("NodeCompleted", "human_review", None), ("NodeCompleted", "send_email", None),
                     ("ThreadCompleted", None, None)]


def test_edit_from_the_command_line_records_who_changed_what(
        env: dict[str, str], projector: subprocess.Popen[bytes]) -> None:
    _start(env, "tx-edit")
    edited = _json(amber(env, "edit", "tx-edit", "--values", '{"approval_granted": true}',
                         "--as-node", "human_review", "--actor", "eve"))
    assert edited["status"] == "running" and edited["seq"] == 3
    last = _json(amber(env, "history", "tx-edit", "--json"))["events"][-1]
    assert (last["type"], last["node"], last["actor"]) == ("StateEdited", "human_review", "eve")


def test_an_auditor_forks_at_the_question_and_answers_it_otherwise(
        env: dict[str, str], projector: subprocess.Popen[bytes]) -> None:
    """What if the reviewer had said no: a fork, in new processes, from the raw log's
    checkpoint; the source keeps its history and its one email."""
    _start(env, "tx-src")
    amber(env, "resume", "tx-src", "--value", '{"approved": true}', "--actor", "alice")
    asked = _json(amber(env, "history", "tx-src", "--json"))["events"][2]
    assert asked["type"] == "Interrupted"

    forked = _json(amber(env, "fork", "tx-src", "--seq", "2", "--thread", "tx-what-if",
                         "--actor", "auditor", "--reason", "what if rejected"))
    assert forked["status"] == "interrupted" and forked["interrupt"]["id"] == \
        "tx-what-if:0:human_review"
    done = _json(amber(env, "resume", "tx-what-if", "--value", '{"approved": false}',
                       "--actor", "bob"))

    assert done["status"] == "completed" and len(_outbox(env)) == 1
    first = _json(amber(env, "history", "tx-what-if", "--json"))["events"][0]
    assert (first["type"], first["actor"], first["reason"]) == \
        ("ThreadForked", "auditor", "what if rejected")
    assert (first["parent"]["thread_id"], first["parent"]["seq"]) == ("tx-src", 2)
    assert amber(env, "verify", "tx-what-if").returncode == 0  # the projection is the log's fold
    assert _json(amber(env, "state", "tx-src", "--json"))["status"] == "completed"


def test_a_withdrawn_request_is_cancelled_and_can_no_longer_be_approved(
        env: dict[str, str], projector: subprocess.Popen[bytes]) -> None:
    _start(env, "tx-withdrawn")

    done = _json(amber(env, "cancel", "tx-withdrawn", "--actor", "ops",
                       "--reason", "customer withdrew"))
    late = amber(env, "resume", "tx-withdrawn", "--value", '{"approved": true}', check=False)

    assert done["status"] == "cancelled" and done["interrupt"] is None
    assert late.returncode != 0 and "cancelled, not waiting" in late.stderr
    last = _json(amber(env, "history", "tx-withdrawn", "--json"))["events"][-1]
    assert (last["type"], last["actor"], last["reason"]) == \
        ("ThreadCancelled", "ops", "customer withdrew")
    assert _outbox(env) == []


def test_rejection_ends_without_sending(env: dict[str, str],
                                        projector: subprocess.Popen[bytes]) -> None:
    _start(env, "tx-reject")
    done = _json(amber(env, "resume", "tx-reject", "--value", '{"approved": false}',
                       "--actor", "bob"))
    assert done["status"] == "completed" and _outbox(env) == []


def test_crash_after_send_before_ack_sends_exactly_once(
        env: dict[str, str], projector: subprocess.Popen[bytes]) -> None:
    _start(env, "tx-crash")
    crashed = amber({**env, "AMBER_FAULT": "after_node:send_email"}, "resume", "tx-crash",
                    "--value", '{"approved": true}', "--actor", "alice", check=False)
    assert crashed.returncode == -signal.SIGKILL
    assert len(_outbox(env)) == 1  # the email left before the step was recorded
    retried = _json(amber(env, "resume", "tx-crash", "--value", '{"approved": true}',
                          "--actor", "alice"))
    assert retried["status"] == "completed"
    assert len(_outbox(env)) == 1  # the retry reused the idempotency key: no second email
    history = _json(amber(env, "history", "tx-crash", "--json"))["events"]
    assert [h["type"] for h in history].count("DecisionRecorded") == 1


def _end_offsets(env: dict[str, str]) -> dict[int, int]:
    from engine.eventlog_kafka import KafkaEventLog

    log = KafkaEventLog(bootstrap=env["AMBER_KAFKA_BOOTSTRAP"],
                        topic=f"{env['AMBER_TOPIC_PREFIX']}.events")
    try:
        return log.end_offsets()
    finally:
        log.close()


def test_invalid_decisions_are_refused_and_append_nothing(
        env: dict[str, str], projector: subprocess.Popen[bytes]) -> None:
    _start(env, "tx-bad")
    before = _end_offsets(env)
    bad_json = amber(env, "resume", "tx-bad", "--value", "{not json", check=False)
    stale = amber(env, "resume", "tx-bad", "--value", "true", "--interrupt-id", "x:1:y",
                  check=False)
    unknown = amber(env, "resume", "tx-nobody", "--value", "true", check=False)
    assert bad_json.returncode != 0 and "not JSON" in bad_json.stderr
    assert stale.returncode == 2 and "StaleInterruptError" in stale.stderr
    assert unknown.returncode == 2 and "ThreadNotFoundError" in unknown.stderr
    assert _end_offsets(env) == before
