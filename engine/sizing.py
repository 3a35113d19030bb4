"""How big an event may be, checked when it is sealed, before anything is appended.

Kafka refuses a record over the topic's `max.message.bytes` (1,048,588 bytes by
default) for good, and a worker that appended one would fail the same step after
every restart, holding its partitions. So `seal` refuses such an event first and
says what made it big; a node's oversized result becomes that node's failure
(executor.storing), as any other result the log cannot hold.

A periodic snapshot (every K events) that would push an event over the limit
is left out instead: it only shortens later reads, and whether a node's result
fits must not depend on its seq.

The state after every event must also fit a snapshot: an interrupt or the
thread's completion writes the whole state, and a thread must never reach a
state that its next pause could not record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.canonical import canonical_bytes
from engine.delta import Op, State
from engine.errors import EventTooLargeError

# An Avro value this size still fits Kafka's default limit with the record's key
# and the batch's headers; brokers and managed services default to about 1 MiB.
MAX_EVENT_BYTES = 1_000_000
# Besides its texts an event holds numbers, Avro lengths and unions and the
# single-object header: ~25 fields, a few bytes each. Counted generously, so the
# estimate never comes out below the encoded size.
FRAMING_BYTES = 1_024
# Room left beside a snapshot for the texts of the control event carrying it.
SNAPSHOT_ROOM = 8_192
_TEXT_PARTS = ("delta", "snapshot", "io", "interrupt", "error", "route", "reason", "actor")


def text_bytes(value: Any) -> int:
    """UTF-8 size of every text in a record, records and lists inside included."""
    if type(value) is str:
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if type(value) is dict:
        return sum(text_bytes(v) for v in value.values())
    if type(value) is list:
        return sum(text_bytes(v) for v in value)
    return 0


def estimated_bytes(record: Mapping[str, Any]) -> int:
    """An upper bound of the log record's size: its Avro value, and its key (the thread id)."""
    return FRAMING_BYTES + text_bytes(record) + text_bytes(record["thread_id"])


def check_size(record: Mapping[str, Any], *, state: State, state_size: int, delta: list[Op],
               limit: int) -> None:
    """EventTooLargeError if the event, or a snapshot of the state after it, would not fit."""
    size = estimated_bytes(record)
    if size > limit:
        part = max(_TEXT_PARTS, key=lambda name: text_bytes(record.get(name)))
        field = _grown_field(state, delta) if part in ("delta", "snapshot") else None
        raise _too_large(record, f"the event would be {size:,} bytes", part, field, size, limit)
    if state_size + SNAPSHOT_ROOM > limit:
        raise _too_large(record, f"the state after it would be {state_size:,} bytes, too big "
                                 "for the snapshot a pause must write", "state",
                         _grown_field(state, delta), state_size, limit)


def _too_large(record: Mapping[str, Any], what: str, part: str, field: str | None,
               size: int, limit: int) -> EventTooLargeError:
    at = f" at node {record['node']!r}" if record.get("node") else ""
    big = f"{part} (state field {field!r})" if field else part
    return EventTooLargeError(
        f"{record['type']} of thread {record['thread_id']!r}{at}: {what}, over the log's "
        f"limit of {limit:,} per event; most of it is {big}. Keep large values out of "
        "the state and store a reference to them instead", part=part, field=field,
        size=size, limit=limit)


def _grown_field(state: State, delta: list[Op]) -> str | None:
    """The biggest field this event changed (the one that grew), else the biggest field."""
    touched = [f for f in (op.get("field") for op in delta) if f in state] or list(state)
    return max(touched, key=lambda f: len(canonical_bytes(state[f])), default=None)
