"""Worker processes on the real stack: threads run to the interrupt, resume, survive a kill."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.acceptance import accepted_history
from tests.processes import AMBER, amber_services, spawn
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GRAPH = "examples.email_approval:graph"


@pytest.fixture(params=["kafka-python", "confluent"])
def env(request: pytest.FixtureRequest, settings_env: dict[str, str],
        tmp_path: Path) -> dict[str, str]:
    """Each test runs with the workers' group consumer on both Kafka clients."""
    return {**settings_env, "AMBER_OUTBOX_DIR": str(tmp_path / "outbox"),
            "AMBER_GRAPHS": GRAPH, "AMBER_CATCHUP_TIMEOUT_S": "60",
            "AMBER_KAFKA_CLIENT": request.param}


@pytest.fixture
def services(env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    with amber_services(env, ["projector"], ["worker", GRAPH], ["worker", GRAPH]) as procs:
        yield procs


@pytest.fixture
def service(env: dict[str, str]) -> Iterator[Any]:
    from consumers.checkpointer import AmberCheckpointer
    from consumers.graphs import load_graph
    from engine.service import ThreadService
    from engine.settings import Settings

    cp = AmberCheckpointer.from_settings(Settings.from_env(env), role="test")
    yield ThreadService(load_graph(GRAPH), cp)
    cp.close()


def _statuses(service: Any, threads: list[str]) -> dict[str, str]:
    views = {t: service.cp.projection.get_thread(t) for t in threads}
    return {t: (v.status if v else "missing") for t, v in views.items()}


def _stepped(service: Any, threads: list[str]) -> int:
    """How many of the threads ran a node (their head is past ThreadStarted)."""
    views = [service.cp.projection.get_thread(t) for t in threads]
    return sum(1 for v in views if v is not None and v.head.seq > 0)


def _all(service: Any, threads: list[str], status: str) -> Callable[[], bool]:
    return lambda: set(_statuses(service, threads).values()) == {status}


def test_two_workers_run_threads_survive_a_kill_and_finish_once(
        env: dict[str, str], services: list[subprocess.Popen[bytes]], service: Any) -> None:
    threads = [f"wt-{i}" for i in range(40)]
    for t in threads:
        service.start(t, {"recipient": "x@example.com", "request": t}, actor="test",
                      mode="worker")
    wait_until(_all(service, threads, "interrupted"), 90, "threads to reach the interrupt")
    services[1].kill()  # SIGKILL one worker: the survivor must take its partitions
    services[1].wait(10)
    for t in threads:
        service.decide(t, {"approved": True}, actor="alice")
    wait_until(_all(service, threads, "completed"), 120, "threads to complete on the survivor")
    assert len(list(Path(env["AMBER_OUTBOX_DIR"]).iterdir())) == len(threads)
    for t in threads:
        events = [d.event for d in service.cp.log.read_thread(t) if d.event]
        accepted = accepted_history(events).accepted
        assert [e.seq for e in accepted] == list(range(len(accepted)))
        ran = [(e.seq, e.node) for e in accepted if e.type == "NodeCompleted"]
        assert len(ran) == len(set(ran)) == 3  # draft_email, human_review, send_email


def test_sigterm_stops_a_worker_cleanly(env: dict[str, str],
                                        services: list[subprocess.Popen[bytes]]) -> None:
    worker = spawn([*AMBER, "worker", GRAPH], env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stderr is not None
        seen = []
        for _ in range(50):  # the banner comes once the signal handlers are installed
            seen.append(worker.stderr.readline())
            if "serving" in seen[-1]:
                break
        assert "serving ['email_approval']" in seen[-1], seen
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0  # finished its batch, committed, left the group
    finally:
        if worker.poll() is None:
            worker.kill()


def test_a_second_start_of_an_existing_thread_is_rejected_and_never_run(
        env: dict[str, str], services: list[subprocess.Popen[bytes]], service: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The loser of two racing starts, or a client's retry, lands on the log anyway:
    no worker may run the thread again from it, nor stall the real one behind it."""
    import engine.service
    from engine.errors import ConflictError
    from engine.service import Head

    thread = "second-start"
    log = service.cp.log
    marker = next(t for t in (f"after-{i}" for i in range(500))
                  if log.partition_of(t) == log.partition_of(thread))
    service.start(thread, {"recipient": "alice@example.com", "request": "a"}, actor="test",
                  mode="worker")
    wait_until(_all(service, [thread], "interrupted"), 90, "the thread to reach its interrupt")
    with monkeypatch.context() as m:  # a start that read the head before the first landed
        m.setattr(engine.service, "read_head", lambda cp, t: Head(view=None, head=None, end=0))
        with pytest.raises(ConflictError):
            service.start(thread, {"recipient": "mallory@example.com", "request": "m"},
                          actor="test", mode="worker")
    service.start(marker, {"recipient": "x@example.com", "request": "x"}, actor="test",
                  mode="worker")  # the workers read the partition in order: past the second
    wait_until(_all(service, [marker], "interrupted"), 90, "the workers to pass it")
    service.decide(thread, {"approved": True}, actor="alice")
    wait_until(_all(service, [thread], "completed"), 90, "the real thread to complete")

    events = [d.event for d in log.read_thread(thread) if d.event]
    history = accepted_history(events)
    assert [e.actor for e, _ in history.rejected] == ["test"]  # the second start, alone
    assert [e.seq for e in history.accepted] == list(range(len(history.accepted)))
    sent = [p.read_text() for p in Path(env["AMBER_OUTBOX_DIR"]).iterdir()]
    assert sum("mallory" in s for s in sent) == 0 and sum("alice" in s for s in sent) == 1


def test_threads_a_batch_left_for_later_survive_a_killed_worker(env: dict[str, str]) -> None:
    """AMBER_WORKER_BATCH_S ends a batch before all its threads ran: their records must
    not be committed, or the next owner never steps them."""
    from consumers.checkpointer import AmberCheckpointer
    from engine.service import ThreadService
    from engine.settings import Settings
    from tests.worker_graphs import slow_graph

    slow = "tests.worker_graphs:slow_graph"
    brief = {**env, "AMBER_GRAPHS": slow, "AMBER_WORKER_BATCH_S": "0.05"}  # a node a batch
    cp = AmberCheckpointer.from_settings(Settings.from_env(brief), role="test")
    threads = [f"held-{i}" for i in range(20)]
    service = ThreadService(slow_graph, cp)
    try:
        with amber_services(brief, ["projector"]):
            for t in threads:  # all on the log before the worker polls: one batch holds them
                service.start(t, {}, actor="test", mode="worker")
            with amber_services(brief, ["worker", slow]) as procs:
                wait_until(lambda: _stepped(service, threads) > 0, 90, "a first node to run")
                procs[0].kill()  # mid-way: the rest were polled, and are not stepped yet
                procs[0].wait(10)
            with amber_services(brief, ["worker", slow]):
                wait_until(_all(service, threads, "completed"), 120, "every thread to complete")
    finally:
        cp.close()
