"""The librdkafka adapter on a real broker: it and the kafka-python one share one log.

The port contract runs in tests/contracts for both adapters; here are the facts
specific to this one: records written by either adapter read back identically
through the other, both place a key where Kafka's own murmur2 partitioner does,
load from many threads, topic configuration, a dead broker, and the choice of
adapter through AMBER_KAFKA_CLIENT.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.acceptance import accepted_history
from engine.errors import EventLogError, LogUnavailableError, SettingsError
from engine.eventlog import EventLog
from engine.settings import Settings
from tests.eventbuild import chain, poll_at_least
from tests.processes import AMBER, amber_services
from tests.stack import Endpoints, require_confluent

require_confluent(module=True)

from confluent_kafka import Producer  # noqa: E402

from engine import eventlog_confluent  # noqa: E402
from engine.eventlog_confluent import ConfluentEventLog  # noqa: E402
from engine.eventlog_kafka import KafkaEventLog  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
integration = pytest.mark.integration


@pytest.fixture
def logs(stack: Endpoints, topic_prefix: str) -> Iterator[dict[str, EventLog]]:
    """Both adapters on one fresh topic (created by the librdkafka one)."""
    topic = f"{topic_prefix}.events"
    fast = ConfluentEventLog(bootstrap=stack.kafka_bootstrap, topic=topic, partitions=12)
    fast.ensure_topic()
    classic = KafkaEventLog(bootstrap=stack.kafka_bootstrap, topic=topic, partitions=12)
    yield {"confluent": fast, "kafka": classic}
    fast.close()
    classic.close()


# --- interoperability ------------------------------------------------------------------
@integration
@pytest.mark.parametrize(("writer", "reader"), [("kafka", "confluent"), ("confluent", "kafka")])
def test_what_one_adapter_writes_the_other_reads_identically(
        logs: dict[str, EventLog], writer: str, reader: str) -> None:
    threads = [f"interop-{writer}-{i}" for i in range(12)]
    written = {tid: chain(tid, 6, writer=writer) for tid in threads}
    positions = {tid: logs[writer].append(events) for tid, events in written.items()}
    bad = logs[writer].append_raw(threads[0], b"\x00 not an event")

    for tid, events in written.items():
        seen = [d for d in logs[reader].read_thread(tid) if d.event is not None]
        assert [d.event for d in seen] == events
        assert [d.position for d in seen] == positions[tid]
        assert {p.partition for p in positions[tid]} == {logs[reader].partition_of(tid)}
        assert logs[reader].partition_of(tid) == logs[writer].partition_of(tid)
    assert logs[reader].end_offsets() == logs[writer].end_offsets()

    cursor = logs[reader].reader({bad.partition: positions[threads[0]][0].offset})
    try:
        polled = [d for d in poll_at_least(cursor, 7) if d.key == threads[0]]
    finally:
        cursor.close()
    assert [d.event for d in polled[:6]] == written[threads[0]]
    assert polled[6].position == bad and polled[6].event is None and polled[6].error is not None


@integration
def test_both_adapters_place_keys_where_kafkas_murmur2_partitioner_does(
        logs: dict[str, EventLog], stack: Endpoints) -> None:
    """librdkafka's default partitioner is CRC32-based: that is why we name the partition."""
    fast = logs["confluent"]
    java_compatible = Producer({"bootstrap.servers": stack.kafka_bootstrap,
                                "partitioner": "murmur2_random"})
    placed: dict[str, int] = {}

    def report(err: Any, msg: Any) -> None:
        assert err is None, err
        placed[msg.key().decode()] = msg.partition()

    keys = [f"placement-{i}" for i in range(60)] + ["tx-99812", "ünïcödé-thread", "k"]
    for key in keys:
        java_compatible.produce(fast.topic, key=key.encode(), value=b"x", on_delivery=report)
    assert java_compatible.flush(30) == 0

    assert placed == {key: fast.partition_of(key) for key in keys}
    assert all(logs["kafka"].partition_of(key) == placed[key] for key in keys)


@integration
def test_the_two_adapters_can_write_one_thread_alternately(logs: dict[str, EventLog]) -> None:
    events = chain("t-alternate", 10)
    for i, event in enumerate(events):
        logs["confluent" if i % 2 else "kafka"].append([event])

    for log in logs.values():
        read_back = [d.event for d in log.read_thread("t-alternate")]
        assert read_back == events
        assert accepted_history(e for e in read_back if e).accepted == events


# --- this adapter under load -------------------------------------------------------------
@integration
def test_the_reused_reader_serves_any_range_in_any_order(logs: dict[str, EventLog]) -> None:
    log = logs["confluent"]
    positions = log.append(chain("t-ranges", 40))
    partition = positions[0].partition
    rng = random.Random(7)

    for _ in range(25):
        start = rng.randrange(0, 40)
        end = rng.randrange(start, 41)
        got = [d.position.offset for d in log.read(partition, start, end)]
        assert got == list(range(start, end)), (start, end)


@integration
def test_a_record_the_broker_refuses_is_a_typed_permanent_error(
        logs: dict[str, EventLog]) -> None:
    with pytest.raises(EventLogError) as caught:
        logs["confluent"].append_raw("t-huge", b"x" * 2_000_000)

    assert not isinstance(caught.value, LogUnavailableError)
    assert not caught.value.retryable
    assert logs["confluent"].append_raw("t-huge", b"fine").offset == 0  # still usable


# A dead broker: tests/integration/test_kafka_log.py runs that case for both adapters.


@integration
def test_a_read_only_log_readies_no_producer(stack: Endpoints, topic_prefix: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # `amber verify` and `amber replay` only read: an idempotent producer's identity
    # is a broker round trip and a connection they would never use
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(eventlog_confluent, "Producer", lambda conf: made.append(conf) or
                        Producer(conf))
    log = ConfluentEventLog(bootstrap=stack.kafka_bootstrap, topic=f"{topic_prefix}.events")
    try:
        log.ensure_topic()
        log.connect_soon(writes=False)
        assert list(log.read(0)) == [] and made == []
        log.connect_soon()
        assert len(made) == 1 and made[0]["enable.idempotence"] is True
    finally:
        log.close()


# --- choosing the adapter ------------------------------------------------------------------
def test_amber_kafka_client_chooses_the_adapter() -> None:
    from consumers.checkpointer import event_log

    assert Settings.from_env({}).kafka_client == "kafka-python"
    chosen = {name: event_log(Settings.from_env({"AMBER_KAFKA_CLIENT": name}))
              for name in ("kafka-python", "confluent", " Confluent ")}
    try:
        assert type(chosen["kafka-python"]) is KafkaEventLog
        assert type(chosen["confluent"]) is ConfluentEventLog
        assert type(chosen[" Confluent "]) is ConfluentEventLog
    finally:
        for log in chosen.values():
            log.close()


def test_an_unknown_kafka_client_fails_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"AMBER_KAFKA_CLIENT: must be one of "
                                            r"kafka-python, confluent \(got 'librdkafka'\)"):
        Settings.from_env({"AMBER_KAFKA_CLIENT": "librdkafka"})


def test_the_default_client_does_not_import_librdkafka() -> None:
    probe = ("import sys; from consumers.checkpointer import event_log;"
             "from engine.settings import Settings; event_log(Settings()).close();"
             "print('confluent_kafka' in sys.modules, 'engine.eventlog_confluent' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert run.stdout.split() == ["False", "False"]


# --- the engine end to end on librdkafka ---------------------------------------------------
@integration
def test_a_thread_started_and_resumed_through_librdkafka_is_projected(
        settings_env: dict[str, str], tmp_path: Path) -> None:
    """Inline runs append with librdkafka; the projector reads them with kafka-python."""
    graph = "examples.email_approval:graph"
    env = {**settings_env, "AMBER_KAFKA_CLIENT": "confluent", "AMBER_CATCHUP_TIMEOUT_S": "30",
           "AMBER_OUTBOX_DIR": str(tmp_path / "outbox"), "AMBER_GRAPHS": graph}
    def run(*args: str) -> Any:
        done = subprocess.run([*AMBER, *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip().startswith("{") else None

    with amber_services(env, ["projector"]):
        thread = f"fast-{uuid.uuid4().hex[:8]}"
        first = run("start", graph, "--thread", thread, "--input",
                    json.dumps({"recipient": "cfo@example.com", "request": "wire 1M EUR"}))
        assert first["status"] == "interrupted"
        second = run("resume", thread, "--value", '{"approved": true}', "--actor", "alice")
        assert second["status"] == "completed"
        history = run("history", thread, "--json")["events"]

    assert [h["type"] for h in history] == [
        "ThreadStarted", "NodeCompleted", "Interrupted", "DecisionRecorded", "NodeCompleted",
        "NodeCompleted", "ThreadCompleted"]
