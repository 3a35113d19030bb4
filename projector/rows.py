"""Pure mapping between engine values and table rows (tuples in column order).

The column tuples below are the single source of the column order used by
COPY and by SELECT; tests check them against the migrated tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from engine.acceptance import Head
from engine.canonical import canonical_text
from engine.eventlog import Position
from engine.events import ErrorInfo, Event, EventType, ForkOrigin, GraphRef, InterruptInfo
from engine.ledger import ThreadView

Row = tuple[Any, ...]

EVENT_COLUMNS: tuple[str, ...] = (
    "thread_id", "seq", "event_id", "type", "node", "occurred_at", "graph_name",
    "graph_fingerprint", "engine_version", "actor", "causation_id", "delta", "state_hash",
    "prev_hash", "hash", "snapshot", "interrupt_id", "interrupt_node", "interrupt_when",
    "interrupt_payload", "route", "io", "error_type", "error_message", "error_retryable",
    "error_attempts", "mode", "reason", "parent_thread_id", "parent_seq", "parent_hash",
    "kafka_partition", "kafka_offset",
)
REJECTED_COLUMNS: tuple[str, ...] = (*EVENT_COLUMNS, "rejection")
DEAD_LETTER_COLUMNS: tuple[str, ...] = (
    "topic", "kafka_partition", "kafka_offset", "key", "raw", "error")
THREAD_COLUMNS: tuple[str, ...] = (
    "thread_id", "graph", "status", "head_seq", "head_hash", "state_text", "interrupt_id",
    "interrupt_node", "interrupt_when", "interrupt_payload", "parent_thread_id", "parent_seq",
    "parent_hash", "mode", "integrity_error", "created_at_us", "updated_at_us",
)


def event_row(event: Event, position: Position) -> Row:
    """The checkpoint row of `event` read at `position`."""
    i, e, p = event.interrupt, event.error, event.parent
    return (
        event.thread_id, event.seq, event.event_id, event.type.value, event.node,
        event.occurred_at, event.graph.name, event.graph.fingerprint, event.engine_version,
        event.actor, event.causation_id, event.delta, event.state_hash, event.prev_hash,
        event.hash, event.snapshot,
        i.id if i else None, i.node if i else None, i.when if i else None,
        i.payload if i else None, event.route, event.io,
        e.type if e else None, e.message if e else None, e.retryable if e else None,
        e.attempts if e else None, event.mode, event.reason,
        p.thread_id if p else None, p.seq if p else None, p.hash if p else None,
        position.partition, position.offset,
    )


def row_event(row: Sequence[Any]) -> tuple[Event, Position]:
    """Inverse of `event_row`: the exact Event and where it was read."""
    (thread_id, seq, event_id, type_, node, occurred_at, graph_name, graph_fp, engine_version,
     actor, causation_id, delta, state_hash, prev_hash, hash_, snapshot, i_id, i_node, i_when,
     i_payload, route, io, e_type, e_message, e_retryable, e_attempts, mode, reason,
     p_thread, p_seq, p_hash, partition, offset) = row[:len(EVENT_COLUMNS)]
    event = Event(
        event_id=event_id, thread_id=thread_id, seq=seq, type=EventType(type_), node=node,
        occurred_at=occurred_at, graph=GraphRef(name=graph_name, fingerprint=graph_fp),
        engine_version=engine_version, delta=delta, state_hash=state_hash,
        prev_hash=prev_hash, hash=hash_, actor=actor, causation_id=causation_id,
        snapshot=snapshot, route=route, io=io, mode=mode, reason=reason,
        interrupt=None if i_id is None else InterruptInfo(
            id=i_id, node=i_node, when=i_when, payload=i_payload),
        error=None if e_type is None else ErrorInfo(
            type=e_type, message=e_message, retryable=e_retryable, attempts=e_attempts),
        parent=None if p_thread is None else ForkOrigin(
            thread_id=p_thread, seq=p_seq, hash=p_hash),
    )
    return event, Position(partition, offset)


def thread_row(view: ThreadView) -> Row:
    """The threads row of `view` (the jsonb copy of the state is derived in SQL)."""
    i, p = view.interrupt, view.parent
    return (
        view.thread_id, view.graph, view.status, view.head.seq, view.head.hash,
        canonical_text(view.state),
        i.id if i else None, i.node if i else None, i.when if i else None,
        i.payload if i else None,
        p.thread_id if p else None, p.seq if p else None, p.hash if p else None,
        view.mode, view.integrity_error, view.created_at, view.updated_at,
    )


def row_thread(row: Sequence[Any]) -> ThreadView:
    """Inverse of `thread_row`."""
    (thread_id, graph, status, head_seq, head_hash, state_text, i_id, i_node, i_when,
     i_payload, p_thread, p_seq, p_hash, mode, integrity_error, created_at,
     updated_at) = row[:len(THREAD_COLUMNS)]
    return ThreadView(
        thread_id=thread_id, graph=graph, head=Head(head_seq, head_hash),
        state=json.loads(state_text), status=status,
        interrupt=None if i_id is None else InterruptInfo(
            id=i_id, node=i_node, when=i_when, payload=i_payload),
        parent=None if p_thread is None else ForkOrigin(
            thread_id=p_thread, seq=p_seq, hash=p_hash),
        mode=mode, created_at=created_at, updated_at=updated_at,
        integrity_error=integrity_error,
    )


def column_list(columns: Sequence[str], alias: str | None = None) -> str:
    """The columns for a SELECT, each qualified by `alias` when given."""
    return ", ".join(f"{alias}.{c}" if alias else c for c in columns)
