"""PostgreSQL adapter of engine.projection.ProjectionReader, over the projector's tables.

Reads are single statements on autocommit pooled connections, so each sees
one committed projector batch, never half of one. Waiting (read-your-writes)
uses LISTEN on the projector's per-commit NOTIFY, with a short poll as the
safety net, and always ends at a deadline.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from engine.acceptance import Rejection
from engine.delta import State, fold
from engine.errors import LedgerError
from engine.eventlog import Position
from engine.ledger import ThreadView
from engine.projection import (
    CatchUpTimeoutError,
    Checkpoint,
    Progress,
    ProjectionReader,
    RejectedEvent,
    ThreadGraph,
    ThreadHead,
)
from projector.batch import DeadLetter
from projector.errors import ProjectionStoreError
from projector.rows import EVENT_COLUMNS, THREAD_COLUMNS, column_list, row_event, row_thread
from projector.store import DEFAULT_GROUP, NOTIFY_CHANNEL, translated

_THREADS = f"SELECT {column_list(THREAD_COLUMNS)} FROM threads"
_EVENTS = column_list(EVENT_COLUMNS)
# The nearest snapshot at or below seq, then the deltas after it, in one statement.
_STATE_AT = """
WITH base AS (
    SELECT coalesce(max(seq), -1) AS seq FROM checkpoints
    WHERE thread_id = %(t)s AND seq <= %(s)s AND snapshot IS NOT NULL)
SELECT c.seq = base.seq, CASE WHEN c.seq = base.seq THEN c.snapshot ELSE c.delta END
FROM checkpoints c, base
WHERE c.thread_id = %(t)s AND c.seq >= base.seq AND c.seq <= %(s)s
ORDER BY c.seq"""
# A position and how long ago the projector advanced it (see _progress).
_PROGRESS = "{p}next_offset, extract(epoch FROM clock_timestamp() - {p}committed_at)"
# Progress, thread row and head event in one statement: one snapshot, one round trip.
_THREAD_HEAD = f"""
SELECT {_PROGRESS.format(p="p.")},
       {column_list(THREAD_COLUMNS, "t")}, {column_list(EVENT_COLUMNS, "c")}
FROM (SELECT 1) AS one
LEFT JOIN projector_positions p
       ON p.group_id = %(group)s AND p.topic = %(topic)s AND p.kafka_partition = %(partition)s
LEFT JOIN threads t ON t.thread_id = %(thread)s
LEFT JOIN checkpoints c ON c.thread_id = t.thread_id AND c.seq = t.head_seq"""
_POLL_S = 0.1  # safety net if a notification is missed


class PostgresProjectionReader(ProjectionReader):
    """Read side on the projector's tables for one topic and projector group."""

    def __init__(self, database_url: str, *, topic: str, group: str = DEFAULT_GROUP,
                 pool_size: int = 4, connect_timeout_s: float = 10.0) -> None:
        self.topic = topic
        self.group = group
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            database_url, min_size=1, max_size=pool_size, open=True,
            timeout=connect_timeout_s, kwargs={"autocommit": True},
            name=f"amber-projection-{group}")

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _conn(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        try:
            with translated(doing), self._pool.connection() as conn:
                yield conn
        except PoolTimeout as e:
            raise ProjectionStoreError(f"no PostgreSQL connection while {doing}: {e}",
                                       retryable=True) from e

    def _all(self, query: str, params: Any, doing: str) -> list[tuple[Any, ...]]:
        with self._conn(doing) as conn:
            return conn.execute(query, params).fetchall()

    def get_thread(self, thread_id: str) -> ThreadView | None:
        with self._conn("reading a thread") as conn:
            return _thread(conn, thread_id)

    def known_threads(self, thread_ids: Collection[str]) -> set[str]:
        rows = self._all("SELECT thread_id FROM threads WHERE thread_id = ANY(%s)",
                         (list(thread_ids),), "looking threads up")
        return {str(r[0]) for r in rows}

    def thread_ids(self) -> list[str]:
        rows = self._all("SELECT thread_id FROM threads ORDER BY thread_id", (),
                         "listing thread ids")
        return [str(r[0]) for r in rows]

    def thread_graph(self, thread_id: str) -> ThreadGraph | None:
        with self._conn("reading a thread's graph") as conn:
            row = conn.execute("SELECT graph, mode FROM threads WHERE thread_id = %s",
                               (thread_id,)).fetchone()
        return None if row is None else ThreadGraph(graph=row[0], mode=row[1])

    def history(self, thread_id: str, *, after_seq: int = -1,
                limit: int = 1000) -> list[Checkpoint]:
        rows = self._all(f"SELECT {_EVENTS} FROM checkpoints WHERE thread_id = %s AND seq > %s "
                         "ORDER BY seq LIMIT %s", (thread_id, after_seq, limit),
                         "reading history")
        return [Checkpoint(event=e, position=p) for e, p in map(row_event, rows)]

    def list_threads(self, *, status: str | None = None, graph: str | None = None,
                     limit: int = 100, offset: int = 0, updated_after: int | None = None,
                     updated_before: int | None = None) -> list[ThreadView]:
        """Threads, most recently updated first.

        `updated_after` (inclusive) and `updated_before` (exclusive) are µs since the epoch.
        """
        rows = self._all(
            f"{_THREADS} WHERE (%(status)s::text IS NULL OR status = %(status)s) "
            "AND (%(graph)s::text IS NULL OR graph = %(graph)s) "
            "AND (%(after)s::bigint IS NULL OR updated_at_us >= %(after)s) "
            "AND (%(before)s::bigint IS NULL OR updated_at_us < %(before)s) "
            "ORDER BY updated_at_us DESC, thread_id DESC LIMIT %(limit)s OFFSET %(offset)s",
            {"status": status, "graph": graph, "after": updated_after,
             "before": updated_before, "limit": limit, "offset": offset}, "listing threads")
        return [row_thread(r) for r in rows]

    def rejected(self, thread_id: str) -> list[RejectedEvent]:
        rows = self._all(f"SELECT {_EVENTS}, rejection FROM rejected_events WHERE thread_id = %s "
                         "ORDER BY kafka_partition, kafka_offset", (thread_id,),
                         "reading rejected events")
        out = []
        for row in rows:
            event, position = row_event(row)
            out.append(RejectedEvent(event=event, position=position,
                                     reason=Rejection(row[len(EVENT_COLUMNS)])))
        return out

    def dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Records of this topic that were not projected, in log order."""
        rows = self._all("SELECT kafka_partition, kafka_offset, key, raw, error FROM dead_letters "
                         "WHERE topic = %s ORDER BY kafka_partition, kafka_offset "
                         "LIMIT %s OFFSET %s", (self.topic, limit, offset), "reading dead letters")
        return [DeadLetter(position=Position(p, o), key=k, raw=bytes(raw), error=err)
                for p, o, k, raw, err in rows]

    def dead_letter_offsets(self, partition: int, *, below: int) -> list[int]:
        rows = self._all("SELECT kafka_offset FROM dead_letters WHERE topic = %s "
                         "AND kafka_partition = %s AND kafka_offset < %s ORDER BY kafka_offset",
                         (self.topic, partition, below), "reading dead-letter offsets")
        return [int(r[0]) for r in rows]

    def _state_at(self, thread_id: str, seq: int) -> State:
        """State after `seq`: the nearest snapshot at or below it plus the deltas after it."""
        state: State = {}
        for is_base, text in self._all(_STATE_AT, {"t": thread_id, "s": seq}, "rebuilding state"):
            state = dict(json.loads(text)) if is_base else _fold_like_ledger(state, text)
        return state

    def projected_offset(self, partition: int) -> int:
        return self.progress(partition).next_offset

    def progress(self, partition: int) -> Progress:
        with self._conn("reading a position") as conn:
            row = conn.execute(
                f"SELECT {_PROGRESS.format(p='')} FROM projector_positions "
                "WHERE group_id = %s AND topic = %s AND kafka_partition = %s",
                (self.group, self.topic, partition)).fetchone()
        return _progress(None, None) if row is None else _progress(row[0], row[1])

    def thread_head(self, thread_id: str, partition: int) -> ThreadHead:
        params = {"group": self.group, "topic": self.topic, "partition": partition,
                  "thread": thread_id}
        with self._conn("reading a thread's head") as conn:
            row = conn.execute(_THREAD_HEAD, params).fetchone()
        assert row is not None  # the outer (SELECT 1) always yields a row
        progress = _progress(row[0], row[1])
        thread, head = row[2:2 + len(THREAD_COLUMNS)], row[2 + len(THREAD_COLUMNS):]
        if thread[0] is None:
            return ThreadHead(progress=progress, view=None, head=None)
        if head[0] is None:  # cannot happen: the projector writes both in one transaction
            return ThreadHead(progress=progress, view=row_thread(thread), head=None)
        event, position = row_event(head)
        return ThreadHead(progress=progress, view=row_thread(thread),
                          head=Checkpoint(event=event, position=position))

    def projected_offsets(self) -> dict[int, int]:
        """Next unprojected offset per partition (partitions never read are absent)."""
        with self._conn("reading positions") as conn:
            return self._offsets(conn)

    def _offsets(self, conn: psycopg.Connection[Any]) -> dict[int, int]:
        rows = conn.execute("SELECT kafka_partition, next_offset FROM projector_positions "
                            "WHERE group_id = %s AND topic = %s", (self.group, self.topic))
        return {int(p): int(o) for p, o in rows.fetchall()}

    def wait_for(self, thread_id: str, seq: int, *, timeout_s: float) -> ThreadView:
        found: list[ThreadView] = []

        def reached(conn: psycopg.Connection[Any]) -> bool:
            view = _thread(conn, thread_id)
            if view is not None and view.head.seq >= seq:
                found.append(view)
            return bool(found)

        self._await(reached, timeout_s, f"seq {seq} of thread {thread_id!r}")
        return found[-1]

    def wait_for_offset(self, partition: int, offset: int, *, timeout_s: float) -> None:
        self.wait_for_offsets({partition: offset}, timeout_s=timeout_s)

    def wait_for_offsets(self, ends: Mapping[int, int], *, timeout_s: float) -> None:
        """Return once every record before `ends[p]` is projected, for every partition p.

        `ends` is typically EventLog.end_offsets() taken after an append.
        Raises CatchUpTimeoutError after the deadline.
        """
        def reached(conn: psycopg.Connection[Any]) -> bool:
            done = self._offsets(conn)
            return all(done.get(p, 0) >= end for p, end in ends.items())

        self._await(reached, timeout_s, f"offsets {dict(ends)}")

    def _await(self, reached: Callable[[psycopg.Connection[Any]], bool], timeout_s: float,
               what: str) -> None:
        """Check `reached` on one connection, again at each projector commit, until the deadline."""
        deadline = time.monotonic() + timeout_s
        with self._conn("waiting for the projection") as conn:
            if reached(conn):
                return  # the common case: one query, no LISTEN
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            try:
                while not reached(conn):  # checked after LISTEN: no commit slips between
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise CatchUpTimeoutError(
                            f"projection has not reached {what} within {timeout_s:g}s "
                            "(is `amber projector` running?)")
                    for _ in conn.notifies(timeout=min(remaining, _POLL_S), stop_after=1):
                        pass
            finally:
                conn.execute(f"UNLISTEN {NOTIFY_CHANNEL}")


def _progress(next_offset: int | None, idle_s: Any) -> Progress:
    """A projector_positions row as Progress; no row yet means nothing projected."""
    if next_offset is None:
        return Progress(next_offset=0, idle_s=math.inf)
    return Progress(next_offset=int(next_offset), idle_s=max(0.0, float(idle_s)))


def _thread(conn: psycopg.Connection[Any], thread_id: str) -> ThreadView | None:
    row = conn.execute(f"{_THREADS} WHERE thread_id = %s", (thread_id,)).fetchone()
    return None if row is None else row_thread(row)


def _fold_like_ledger(state: State, delta_text: str) -> State:
    # The ledger keeps the state unchanged when a delta does not apply (and marks
    # the thread); a historical read must agree with it, not raise.
    try:
        return fold(state, json.loads(delta_text, parse_constant=_no_constant))
    except (LedgerError, ValueError):
        return state


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} has no canonical JSON form")
