"""Commands on a thread the projector has not caught up with, on real Kafka and PostgreSQL.

A live projector that gathers its fetches lags the log by up to its gather
time. A resume right after an interrupt then finds the thread's Interrupted
only in the partition's unprojected tail and folds it there (engine/service.py
read_head): the head it acts on must be the one the projector then writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from consumers.checkpointer import AmberCheckpointer
from engine import service
from engine.checkpointer import Checkpointer
from engine.events import EventType
from engine.log_audit import verify_all
from engine.settings import Settings
from tests.engine_graphs import approval_graph
from tests.processes import amber_services

pytestmark = pytest.mark.integration


@pytest.fixture
def cp(settings_env: dict[str, str]) -> Iterator[Checkpointer]:
    # a long gather keeps the projector a few records behind a quick caller
    env = {**settings_env, "AMBER_PROJECTOR_GATHER_MS": "200", "AMBER_CATCHUP_TIMEOUT_S": "30"}
    checkpointer = AmberCheckpointer.from_settings(Settings.from_env(env))
    with amber_services(env, ["projector"]):
        yield checkpointer
    checkpointer.close()


def test_resumes_right_after_interrupts_act_on_the_head_the_projector_then_writes(
        cp: Checkpointer, monkeypatch: pytest.MonkeyPatch) -> None:
    folded: list[int] = []
    fold = service._folded

    def counting(*args: Any) -> service.Head:
        found = fold(*args)
        folded.append(len(found.recent))
        return found

    monkeypatch.setattr(service, "_folded", counting)
    app = approval_graph(interrupt_before=["review"], checkpointer=cp)
    threads = [f"ryw-{i}" for i in range(30)]

    for thread in threads:
        assert app.start(thread, {}).status == "interrupted"
        assert app.resume(thread, {"approved": True}, actor="a").status == "completed"

    assert any(folded), "no command found its thread's events beyond the projection"
    cp.projection.wait_for_offsets(cp.log.end_offsets(), timeout_s=30)
    verdict = verify_all(cp)
    assert verdict.ok and verdict.threads == len(threads), verdict
    for thread in threads:
        history = cp.projection.history(thread)
        assert cp.projection.require(thread).status == "completed"
        assert [c.event.type for c in history].count(EventType.DECISION_RECORDED) == 1
        assert cp.projection.rejected(thread) == []
