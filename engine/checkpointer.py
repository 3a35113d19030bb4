"""A checkpointer is the pair of ports a runner needs: the event log and a projection.

`amber` ships a Kafka + PostgreSQL one (consumers.checkpointer). The engine
never imports it: when no checkpointer is passed, it is found through the
`amber.checkpointer` entry point, so the dependency arrow stays inward.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from engine.blobstore import Blobs
from engine.errors import GraphDefinitionError
from engine.eventlog import EventLog
from engine.projection import ProjectionReader


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True, kw_only=True)
class Checkpointer:
    log: EventLog
    projection: ProjectionReader
    catchup_timeout_s: float = 10.0
    snapshot_every: int = 50
    clock: Callable[[], int] = field(default=_now_us)  # microseconds since the epoch
    # Where large texts go; without a store every text stays inline in its event.
    blobs: Blobs = field(default_factory=Blobs)
    on_close: Callable[[], None] | None = None

    def close(self) -> None:
        self.log.close()
        self.blobs.close()
        if self.on_close is not None:
            self.on_close()


_default: Checkpointer | None = None


def resolve_checkpointer(given: Checkpointer | None) -> Checkpointer:
    """`given`, else the process default built by the `amber.checkpointer` entry point."""
    global _default
    if given is not None:
        return given
    if _default is None:
        found = entry_points(group="amber.checkpointer", name="default")
        if not found:
            raise GraphDefinitionError("no checkpointer given and none installed as default")
        _default = next(iter(found)).load()()
    return _default
