"""Helpers shared by the API unit tests (no tests here): an app on the in-memory log.

`drive()` plays the worker group: it folds the log with the real Dispatcher
and appends one step per runnable thread until nothing can run, so the API
tests see threads interrupt and complete exactly as `amber worker` makes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from consumers.api import create_app
from consumers.api_auth import AuthConfig, SignedRequest, sign
from engine.checkpointer import Checkpointer
from engine.dispatch import Dispatcher
from engine.eventlog import EventLog
from engine.eventlog_memory import InMemoryEventLog
from engine.events import Event
from engine.graph import CompiledGraph
from engine.projection import LogProjection, ProjectionReader
from tests.engine_graphs import approval_graph, asking_graph

SECRET = b"s3cret-s3cret-s3cret"
TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}


def make_cp(*, partitions: int = 4, catchup_timeout_s: float = 5.0,
            projection: Callable[[EventLog], ProjectionReader] = LogProjection) -> Checkpointer:
    log = InMemoryEventLog(partitions=partitions)
    return Checkpointer(log=log, projection=projection(log),
                        catchup_timeout_s=catchup_timeout_s, snapshot_every=3)


def default_graphs() -> list[CompiledGraph]:
    return [approval_graph(interrupt_before=["review"]), asking_graph()]


@dataclass
class Api:
    cp: Checkpointer
    graphs: list[CompiledGraph]
    client: TestClient

    def ends(self) -> dict[int, int]:
        return self.cp.log.end_offsets()

    def drive(self) -> int:
        return drive(self.cp, self.graphs)

    def events(self, thread_id: str) -> list[Event]:
        return [d.event for d in self.cp.log.read_thread(thread_id) if d.event is not None]

    def start(self, thread_id: str, graph: str = "doc_approval",
              input: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
              ) -> Any:
        return self.client.post("/threads", headers=headers or ALICE,
                                json={"graph": graph, "thread_id": thread_id,
                                      "input": input or {}})

    def waiting(self, thread_id: str, graph: str = "doc_approval") -> str:
        """Start a thread, run it to its interrupt, return the interrupt id."""
        assert self.start(thread_id, graph).status_code == 202
        self.drive()
        view = self.cp.projection.require(thread_id)
        assert view.status == "interrupted" and view.interrupt is not None
        return view.interrupt.id

    def decide(self, thread_id: str, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> Any:
        return self.client.post(f"/threads/{thread_id}/decisions", json=body,
                                headers=headers or ALICE)


def make_api(*, cp: Checkpointer | None = None, graphs: Iterable[CompiledGraph] | None = None,
             auth: AuthConfig | None = None) -> Api:
    cp = cp or make_cp()
    chosen = list(graphs) if graphs is not None else default_graphs()
    app = create_app(cp=cp, graphs=chosen,
                     auth=auth or AuthConfig(tokens=TOKENS, webhook_secret=SECRET))
    return Api(cp=cp, graphs=chosen, client=TestClient(app))


def drive(cp: Checkpointer, graphs: Iterable[CompiledGraph]) -> int:
    """Run worker steps on the memory log until no thread can step; the events appended."""
    served = {g.name: g for g in graphs}
    total = 0
    while True:
        dispatcher = Dispatcher(served, clock=cp.clock, snapshot_every=cp.snapshot_every,
                                blobs=cp.blobs)
        for partition in range(cp.log.partitions):
            for delivery in cp.log.read(partition):
                if delivery.event is not None and dispatcher.serves(delivery.event):
                    dispatcher.observe(delivery.event)
        events = dispatcher.step_all()
        if not events:
            return total
        cp.log.append(events)
        total += len(events)


def signed(body: bytes, actor: str | None = "bob", secret: bytes = SECRET, *,
           path: str = "/threads/w/decisions", now: float | None = None) -> dict[str, str]:
    """Webhook headers signing a POST of `body` to `path` as `actor` (None: no actor header)."""
    request = SignedRequest(method="POST", target=path, body=body)
    timestamp = str(int(time.time() if now is None else now))
    # sign() itself, not webhook_headers(): tests also need actors a sender would refuse
    headers = {"X-Amber-Timestamp": timestamp, "Content-Type": "application/json",
               "X-Amber-Signature": sign(secret, request, timestamp=timestamp, actor=actor or "")}
    if actor is not None:
        headers["X-Amber-Actor"] = actor
    return headers
