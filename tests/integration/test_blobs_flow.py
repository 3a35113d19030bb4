"""Texts bigger than an event, across two OS processes on real Kafka and PostgreSQL.

Process 1 drafts a 3.2 MB document and pauses; process 2 (another `amber` run,
cold cache) resumes and its node reads the document whole from the blob topic.
The log and the projection hold pointers; the chain verifies without the blobs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine.blobs import BLOB_KEY, as_ref
from engine.blobstore_kafka import KafkaBlobStore
from tests.cli_graphs import BIG_DOC, BIG_PROMPT
from tests.integration.test_human_approval import amber
from tests.processes import amber_services

pytestmark = pytest.mark.integration

GRAPH = "tests.cli_graphs:big_review"


@pytest.fixture
def env(settings_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**settings_env, "AMBER_GRAPHS": GRAPH, "AMBER_CATCHUP_TIMEOUT_S": "30"}
    with amber_services(env, ["projector"]):
        yield env


def _state(env: dict[str, str], thread: str) -> Any:
    return json.loads(amber(env, "state", thread, "--json").stdout)


def test_a_document_bigger_than_an_event_crosses_processes(env: dict[str, str],
                                                           stack: Any) -> None:
    paused = amber(env, "start", GRAPH, "--thread", "b1", "--input", "{}")
    assert json.loads(paused.stdout)["status"] == "interrupted"

    done = json.loads(amber(env, "resume", "b1", "--value", '{"ok": true}').stdout)

    assert done["status"] == "completed"
    projected = _state(env, "b1")["state"]
    assert projected["count"] == len(BIG_DOC)  # process 2's node read it all
    ref = as_ref(projected["text"])  # what the projection keeps is the pointer
    assert ref is not None and ref.size == len(BIG_DOC)
    store = KafkaBlobStore(bootstrap=stack.kafka_bootstrap,
                           topic=f"{env['AMBER_TOPIC_PREFIX']}.blobs", partitions=12)
    try:
        assert store.get(ref) == BIG_DOC.encode()
    finally:
        store.close()
    assert _largest_projected_row(env) < 20_000
    assert amber(env, "verify", "b1").returncode == 0
    filled = json.loads(amber(env, "state", "b1", "--texts", "--json").stdout)
    assert filled["state"]["text"] == BIG_DOC


def test_recorded_io_points_at_its_prompt(env: dict[str, str]) -> None:
    amber(env, "start", GRAPH, "--thread", "b2", "--input", "{}")

    history = json.loads(amber(env, "history", "b2", "--json").stdout)["events"]

    drafted = next(h for h in history if h.get("node") == "draft")
    text = json.dumps(drafted)
    assert BLOB_KEY in text and BIG_PROMPT[:100] not in text


def _largest_projected_row(env: dict[str, str]) -> int:
    with psycopg.connect(env["AMBER_DATABASE_URL"]) as conn:
        row = conn.execute("SELECT max(pg_column_size(t.*)) FROM threads t").fetchone()
    assert row is not None
    return int(row[0])


def test_blob_min_bytes_zero_keeps_texts_inline_and_the_limit(env: dict[str, str]) -> None:
    inline = {**env, "AMBER_BLOB_MIN_BYTES": "0"}
    run = amber(inline, "start", GRAPH, "--thread", "b3", "--input", "{}")
    assert json.loads(run.stdout)["status"] == "failed"
    assert "over the log's limit" in run.stdout




def test_workers_carry_the_document_through_the_pause(env: dict[str, str]) -> None:
    from consumers.checkpointer import AmberCheckpointer
    from engine.service import ThreadService
    from engine.settings import Settings
    from tests.cli_graphs import big_review
    from tests.waiting import wait_until

    cp = AmberCheckpointer.from_settings(Settings.from_env(env), role="test")
    service = ThreadService(big_review, cp)

    def status() -> str | None:
        view = cp.projection.get_thread("w1")
        return None if view is None else view.status

    try:
        with amber_services(env, ["worker", GRAPH]):
            service.start("w1", {}, actor="test", mode="worker")
            wait_until(lambda: status() == "interrupted", 90, "the worker to draft and pause")
            service.decide("w1", {"ok": True}, actor="alice")
            wait_until(lambda: status() == "completed", 90, "the worker to send")
        view = cp.projection.get_thread("w1")
        assert view is not None and view.state["count"] == len(BIG_DOC)
        assert as_ref(view.state["text"]) is not None
    finally:
        cp.close()
