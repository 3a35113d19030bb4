"""The hash chain. The recipe, for any third party (never change without a version):

1. Take the event as its Avro record (field names of schemas/event_vN.avsc,
   `type` as its symbol string, JSON-valued fields as the exact text stored).
2. Drop the field `hash` and every top-level field whose value is null.
3. Serialize as canonical JSON: keys sorted, UTF-8, separators "," and ":",
   no whitespace, non-ASCII characters as themselves.
4. hash = sha256(bytes.fromhex(prev_hash) + those bytes), as lowercase hex.
   The first event of a thread has prev_hash = 64 zeros.

state_hash = sha256 hex of the canonical JSON of the full state after the event.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from engine.canonical import canonical_bytes, canonical_text, sha256_hex
from engine.delta import Op, State
from engine.errors import UnstorableTextError
from engine.events import (
    ENGINE_VERSION,
    ErrorInfo,
    Event,
    EventType,
    ForkOrigin,
    GraphRef,
    InterruptInfo,
    derive_event_id,
    nul_field,
)
from engine.sizing import MAX_EVENT_BYTES, check_size, estimated_bytes

GENESIS_HASH = "0" * 64


def hashed_bytes(record: dict[str, Any]) -> bytes:
    """Step 2 and 3 of the recipe."""
    body = {k: v for k, v in record.items() if k != "hash" and v is not None}
    return canonical_bytes(body)


def compute_hash(record: dict[str, Any]) -> str:
    """The chain hash of a record whose prev_hash is set."""
    return sha256_hex(bytes.fromhex(record["prev_hash"]) + hashed_bytes(record))


def hash_is_valid(event: Event) -> bool:
    return compute_hash(event.to_record()) == event.hash


@dataclass(frozen=True, slots=True, kw_only=True)
class Draft:
    """What a step decided; `seal` turns it into a hashed event."""

    thread_id: str
    seq: int
    type: EventType
    node: str | None
    occurred_at: int
    graph: GraphRef
    delta: list[Op]
    state_after: State
    with_snapshot: bool = False
    actor: str | None = None
    causation_id: str | None = None
    interrupt: InterruptInfo | None = None
    route: Any = None
    io: Any = None
    error: ErrorInfo | None = None
    mode: str | None = None
    reason: str | None = None
    parent: ForkOrigin | None = None


def seal(draft: Draft, *, prev_hash: str) -> Event:
    """The event for `draft`, chained after `prev_hash`.

    Refused with UnstorableTextError (a NUL) or EventTooLargeError (too big for
    the log, see engine.sizing) before anything can be appended.
    """
    # The full state is serialized once: agent states (message histories) run to
    # hundreds of KB, and each serialization is most of a step's CPU.
    state_bytes = canonical_bytes(draft.state_after)
    unhashed = Event(
        event_id=derive_event_id(draft.thread_id, draft.seq, draft.type, draft.node),
        thread_id=draft.thread_id, seq=draft.seq, type=draft.type, node=draft.node,
        occurred_at=draft.occurred_at, graph=draft.graph, engine_version=ENGINE_VERSION,
        delta=canonical_text(draft.delta), state_hash=sha256_hex(state_bytes),
        prev_hash=prev_hash, hash="", actor=draft.actor, causation_id=draft.causation_id,
        snapshot=state_bytes.decode("utf-8") if draft.with_snapshot else None,
        interrupt=draft.interrupt, route=_json_or_none(draft.route),
        io=_json_or_none(draft.io), error=draft.error, mode=draft.mode,
        reason=draft.reason, parent=draft.parent,
    )
    record = unhashed.to_record()
    size = estimated_bytes(record, snapshot_size=len(state_bytes) if draft.with_snapshot
                           else None)
    if draft.with_snapshot and size > MAX_EVENT_BYTES:  # rule 1 of engine.sizing
        unhashed = replace(unhashed, snapshot=None)
        record = unhashed.to_record()
        size -= len(state_bytes)
    held = nul_field(record)
    if held is not None:  # every reader would take it for a dead letter: refused, not appended
        raise UnstorableTextError(f"event field {held!r} of thread {draft.thread_id!r} holds a "
                                  "NUL character, which no reader can store")
    check_size(record, size=size, state=draft.state_after, state_size=len(state_bytes),
               delta=draft.delta, limit=MAX_EVENT_BYTES)
    return unhashed.with_hash(compute_hash(record))


def _json_or_none(value: Any) -> str | None:
    return None if value is None else canonical_text(value)
