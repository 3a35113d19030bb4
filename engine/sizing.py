"""How big an event may be, checked when it is sealed, before anything is appended.

Kafka refuses a record over the topic's `max.message.bytes` (1,048,588 bytes by
default) for good, and a worker that appended one would fail the same step after
every restart, holding its partitions. So `seal` refuses such an event first and
says what made it big; a node's oversized result becomes that node's failure
(executor.storing), as any other result the log cannot hold.

Three rules, in `seal`:

1. A snapshot that would push its event over the limit is left out: it only
   shortens later reads. Periodic ones (every K events) meet this routinely, so
   whether a node's result fits does not depend on its seq; a required one (on
   Interrupted, ThreadCompleted) only for a state that predates rule 2, which
   must not leave its thread unable to pause, fail or finish.
2. An event that changes the state must leave one that a snapshot can hold, so
   that the next pause can write it whole (DESIGN "Event model").
3. An event still over the limit is refused (EventTooLargeError).
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
# Room left beside a snapshot for the texts of the control event carrying it (ids,
# names, hashes). A thread id of kilobytes could still overflow it: that pause then
# goes without its snapshot (see seal) rather than failing.
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


def estimated_bytes(record: Mapping[str, Any], *, snapshot_size: int | None = None) -> int:
    """An upper bound of the log record's size: its Avro value, and its key (the thread id).

    `snapshot_size`, when the caller knows it, stands for the snapshot's text: a
    state that is not ASCII would otherwise be encoded again just to be measured.
    """
    texts = text_bytes(record) if snapshot_size is None else \
        text_bytes({k: v for k, v in record.items() if k != "snapshot"}) + snapshot_size
    return FRAMING_BYTES + texts + text_bytes(record["thread_id"])


def check_size(record: Mapping[str, Any], *, size: int, state: State, state_size: int,
               delta: list[Op], limit: int) -> None:
    """EventTooLargeError if the event (`size`, see estimated_bytes) would not fit, or if it
    changes the state into one a snapshot could not hold."""
    if size > limit:
        part = max(_TEXT_PARTS, key=lambda name: text_bytes(record.get(name)))
        field = _blamed(state, delta) if part in ("delta", "snapshot") else None
        raise _too_large(record, f"the event would be {size:,} bytes, over the log's limit "
                                 f"of {limit:,} per event", part, field, size, limit)
    room = limit - SNAPSHOT_ROOM
    if delta and state_size > room:  # an event that leaves the state as it was cannot grow it
        raise _too_large(record, f"the state after it would be {state_size:,} bytes, over the "
                                 f"{room:,} a snapshot may hold (a pause must write one)",
                         "state", _blamed(state, delta), state_size, room)


def _too_large(record: Mapping[str, Any], what: str, part: str, field: str | None,
               size: int, limit: int) -> EventTooLargeError:
    at = f" at node {record['node']!r}" if record.get("node") else ""
    big = f"{part} (state field {field!r})" if field else part
    return EventTooLargeError(
        f"{record['type']} of thread {record['thread_id']!r}{at}: {what}; most of it is "
        f"{big}. Keep large values out of the state and store a reference to them instead",
        part=part, field=field, size=size, limit=limit)


def _blamed(state: State, delta: list[Op]) -> str | None:
    """The field this event added the most bytes to, else (no delta) the biggest field."""
    if delta:
        return str(max(delta, key=_added_bytes)["field"])
    return max(state, key=lambda f: len(canonical_bytes(state[f])), default=None)


def _added_bytes(op: Op) -> int:
    return len(canonical_bytes(op.get("values", op.get("value"))))
