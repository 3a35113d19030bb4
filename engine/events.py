"""The event envelope as immutable values, and its mapping to Avro records.

JSON-valued fields (delta, snapshot, route, io, interrupt payload) are kept as
the exact canonical text that was written, because the hash chain is computed
over that text; `ops()` and `snapshot_state()` parse it on demand.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from engine.delta import Op, State

ENGINE_VERSION = "0.1.0"
# Never change without a new event-id version: ids are derived so retries collide.
_EVENT_ID_NAMESPACE = uuid.UUID("6f1c5a9e-3f43-4d2b-9a3e-8f1e0a6b7c21")
_NUL = "\x00"


class EventType(StrEnum):
    THREAD_STARTED = "ThreadStarted"
    NODE_COMPLETED = "NodeCompleted"
    INTERRUPTED = "Interrupted"
    DECISION_RECORDED = "DecisionRecorded"
    STATE_EDITED = "StateEdited"
    NODE_FAILED = "NodeFailed"
    THREAD_COMPLETED = "ThreadCompleted"
    THREAD_FORKED = "ThreadForked"
    THREAD_CANCELLED = "ThreadCancelled"


# Events that always carry a full snapshot (DESIGN "Event model"); any other may carry
# one every K events, to bound the deltas a historical read folds.
SNAPSHOT_TYPES = frozenset({EventType.INTERRUPTED, EventType.THREAD_COMPLETED})


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphRef:
    name: str
    fingerprint: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptInfo:
    id: str
    node: str
    when: str  # "before", "after" or "inside"
    payload: str  # canonical JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    type: str
    message: str
    retryable: bool
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkOrigin:
    thread_id: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One immutable fact about a thread; see schemas/event_v2.avsc."""

    event_id: str
    thread_id: str
    seq: int
    type: EventType
    node: str | None
    occurred_at: int  # microseconds since the Unix epoch, UTC
    graph: GraphRef
    engine_version: str
    delta: str
    state_hash: str
    prev_hash: str
    hash: str
    actor: str | None = None
    causation_id: str | None = None
    snapshot: str | None = None
    interrupt: InterruptInfo | None = None
    route: str | None = None
    io: str | None = None
    error: ErrorInfo | None = None
    mode: str | None = None
    reason: str | None = None
    parent: ForkOrigin | None = None

    def ops(self) -> list[Op]:
        ops: list[Op] = json.loads(self.delta)
        return ops

    def snapshot_state(self) -> State | None:
        return None if self.snapshot is None else dict(json.loads(self.snapshot))

    def with_hash(self, value: str) -> Event:
        return replace(self, hash=value)

    def to_record(self) -> dict[str, Any]:
        """The Avro record (also the input of the hash recipe)."""
        return {
            "event_id": self.event_id, "thread_id": self.thread_id, "seq": self.seq,
            "type": str(self.type), "node": self.node, "occurred_at": self.occurred_at,
            "graph": {"name": self.graph.name, "fingerprint": self.graph.fingerprint},
            "engine_version": self.engine_version, "actor": self.actor,
            "causation_id": self.causation_id, "delta": self.delta,
            "state_hash": self.state_hash, "prev_hash": self.prev_hash, "hash": self.hash,
            "snapshot": self.snapshot, "interrupt": _interrupt_record(self.interrupt),
            "route": self.route, "io": self.io, "error": _error_record(self.error),
            "mode": self.mode, "reason": self.reason, "parent": _parent_record(self.parent),
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Event:
        """Build from a decoded record; raises KeyError/ValueError on a malformed one."""
        json.loads(rec["delta"])  # a delta that is not JSON is not an event
        held = nul_field(rec)
        if held is not None:
            raise ValueError(f"field {held!r} holds a NUL character, which no reader can store")
        return cls(
            event_id=rec["event_id"], thread_id=rec["thread_id"], seq=rec["seq"],
            type=EventType(rec["type"]), node=rec.get("node"), occurred_at=rec["occurred_at"],
            graph=GraphRef(**rec["graph"]), engine_version=rec["engine_version"],
            actor=rec.get("actor"), causation_id=rec.get("causation_id"), delta=rec["delta"],
            state_hash=rec["state_hash"], prev_hash=rec["prev_hash"], hash=rec["hash"],
            snapshot=rec.get("snapshot"), route=rec.get("route"), io=rec.get("io"),
            interrupt=_maybe(InterruptInfo, rec.get("interrupt")),
            error=_maybe(ErrorInfo, rec.get("error")), mode=rec.get("mode"),
            reason=rec.get("reason"), parent=_maybe(ForkOrigin, rec.get("parent")),
        )


def nul_field(record: Mapping[str, Any], prefix: str = "") -> str | None:
    """The first text field of an event record that holds a NUL character, or None.

    PostgreSQL text cannot hold NUL, and an event's hash covers its exact text,
    so the projection could keep such an event only altered, i.e. forged. Every
    reader therefore takes it for a dead letter (Event.from_record refuses it),
    and no writer seals one: all of them derive the same accepted history.
    """
    if not _holds_nul(record):  # the hot path: every event every reader decodes
        return None
    for name, value in record.items():
        if type(value) is str and _NUL in value:
            return prefix + name
        if type(value) is dict:
            inner = nul_field(value, f"{prefix}{name}.")
            if inner is not None:
                return inner
    return None


def _holds_nul(record: Mapping[str, Any]) -> bool:
    """Whether any text of the record, or of a record inside it, holds NUL (no copies:
    a snapshot may be hundreds of KB)."""
    texts = [v for v in record.values() if type(v) is str]
    for inner in (v for v in record.values() if type(v) is dict):
        if any(type(v) is dict for v in inner.values()):
            return True  # deeper than the schema goes: let the field-by-field walk decide
        texts += [v for v in inner.values() if type(v) is str]
    return any(_NUL in text for text in texts)


def derive_event_id(thread_id: str, seq: int, type_: EventType, node: str | None) -> str:
    """Stable id from (thread, seq, type, node): a retried step yields the same id."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{thread_id}\x1f{seq}\x1f{type_}\x1f{node or ''}"))


def _maybe(kind: Any, value: dict[str, Any] | None) -> Any:
    return None if value is None else kind(**value)


def _interrupt_record(i: InterruptInfo | None) -> dict[str, Any] | None:
    if i is None:
        return None
    return {"id": i.id, "node": i.node, "when": i.when, "payload": i.payload}


def _error_record(e: ErrorInfo | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"type": e.type, "message": e.message, "retryable": e.retryable,
            "attempts": e.attempts}


def _parent_record(p: ForkOrigin | None) -> dict[str, Any] | None:
    return None if p is None else {"thread_id": p.thread_id, "seq": p.seq, "hash": p.hash}
