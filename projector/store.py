"""The projector's write side on PostgreSQL: positions, views, batches, the group lock.

One connection, autocommit, explicit transactions. `write` puts a whole
Batch — rows, thread upserts and the Kafka positions that produced them — in
ONE transaction: after a crash at any point the database holds either all of
a batch or none of it, and the positions say exactly where to resume.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from engine.ledger import ThreadView
from projector.batch import Batch
from projector.errors import ProjectionStoreError, ProjectorBusyError, SchemaMissingError
from projector.faults import FaultPlan
from projector.migrations import LOCK_CLASS_GROUPS, migrate
from projector.rows import (
    DEAD_LETTER_COLUMNS,
    EVENT_COLUMNS,
    REJECTED_COLUMNS,
    THREAD_COLUMNS,
    column_list,
    row_thread,
    thread_row,
)

DEFAULT_GROUP = "amber-projector"
NOTIFY_CHANNEL = "amber_projection"  # payload: the topic; sent on every commit
PROJECTION_TABLES = ("threads", "checkpoints", "rejected_events", "dead_letters",
                     "projector_positions")
_STAGE = "amber_thread_stage"
# INCLUDING COMPRESSION: a datum compressed in the stage moves to `threads` as it is,
# so the stage must compress as `threads` does (lz4, migration 0003).
_STAGE_DDL = (f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
              f"(LIKE threads INCLUDING DEFAULTS INCLUDING COMPRESSION) ON COMMIT DELETE ROWS")
_UPSERT = (
    f"INSERT INTO threads ({column_list(THREAD_COLUMNS)}, state) "
    f"SELECT {column_list(THREAD_COLUMNS)}, "
    r"CASE WHEN strpos(state_text, '\u0000') > 0 THEN NULL ELSE state_text::jsonb END "
    f"FROM {_STAGE} ON CONFLICT (thread_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in (*THREAD_COLUMNS[1:], "state")))
_SAVE_POSITIONS = (
    "INSERT INTO projector_positions (group_id, topic, kafka_partition, next_offset) "
    "SELECT %s, %s, p, o FROM unnest(%s::integer[], %s::bigint[]) AS u(p, o) "
    "ON CONFLICT (group_id, topic, kafka_partition) "
    "DO UPDATE SET next_offset = EXCLUDED.next_offset, committed_at = now()")


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Re-raise psycopg errors as ours, classified retryable or not."""
    try:
        yield
    except psycopg.errors.UndefinedTable as e:
        raise SchemaMissingError(f"projection tables missing while {doing}; "
                                 f"run `amber db migrate`: {e}") from e
    except psycopg.OperationalError as e:
        raise ProjectionStoreError(f"PostgreSQL unavailable while {doing}: {e}",
                                   retryable=True) from e
    except psycopg.Error as e:
        raise ProjectionStoreError(f"PostgreSQL failed while {doing}: {e!r}",
                                   retryable=False) from e


class ProjectionStore:
    """Write access for ONE projector group on ONE topic; hold `lock()` before writing."""

    def __init__(self, *, database_url: str, topic: str, group: str) -> None:
        self.topic = topic
        self.group = group
        name = f"amber-projector:{group}:{socket.gethostname()}:{os.getpid()}"[:63]
        # Two connections: batches are written on one (it holds the group lock) by
        # the writer thread while the folding thread reads committed views on the other.
        with translated("connecting"):
            # No WAL flush wait per batch: the projection is rebuilt from the log, and
            # rows and positions commit together, so a crash can only drop a suffix
            # of batches, which the next run projects again from the positions left.
            self._conn: psycopg.Connection[Any] = psycopg.connect(
                database_url, autocommit=True, application_name=name,
                options="-c synchronous_commit=off")
            self._reads: psycopg.Connection[Any] = psycopg.connect(
                database_url, autocommit=True, application_name=name)

    def close(self) -> None:
        self._reads.close()
        self._conn.close()

    def migrate(self) -> list[int]:
        applied = migrate(self._conn)
        with translated("creating the staging table"):
            self._conn.execute(_STAGE_DDL)
        return applied

    def lock(self, *, wait_s: float = 0.0) -> None:
        """Take the group's session lock, waiting up to `wait_s`; else ProjectorBusyError."""
        deadline = time.monotonic() + wait_s
        with translated("taking the projector lock"):
            while not self._try_lock():
                if time.monotonic() >= deadline:
                    raise ProjectorBusyError(self.group, self._holder())
                time.sleep(0.1)

    def _try_lock(self) -> bool:
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                 (LOCK_CLASS_GROUPS, self.group)).fetchone()
        return bool(row and row[0])

    def _holder(self) -> str:
        row = self._conn.execute(
            "SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start::text "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid "
            "AND l.objid = hashtext(%s)::oid", (LOCK_CLASS_GROUPS, self.group)).fetchone()
        if row is None:
            return "holder unknown"
        pid, app, addr, since = row
        return f"held by backend pid {pid} of {app or '?'} from {addr or 'local'} since {since}"

    def positions(self) -> dict[int, int]:
        """Next offset to read per partition, as committed by this group."""
        with translated("reading positions"):
            rows = self._conn.execute(
                "SELECT kafka_partition, next_offset FROM projector_positions "
                "WHERE group_id = %s AND topic = %s", (self.group, self.topic)).fetchall()
        return {int(p): int(o) for p, o in rows}

    def load_views(self, thread_ids: Iterable[str]) -> dict[str, ThreadView]:
        """The committed views of those threads that exist (safe while `write` runs)."""
        ids = list(thread_ids)
        if not ids:
            return {}
        with translated("loading thread views"):
            rows = self._reads.execute(
                f"SELECT {column_list(THREAD_COLUMNS)} FROM threads WHERE thread_id = ANY(%s)",
                (ids,)).fetchall()
        return {r[0]: row_thread(r) for r in rows}

    def write(self, batch: Batch, faults: FaultPlan) -> None:
        """Commit the batch and its positions atomically (one writing thread at a time)."""
        with translated("writing a batch"), self._conn.transaction():
            self._copy("checkpoints", EVENT_COLUMNS, batch.checkpoints)
            faults.hit("after_checkpoints_copy")
            self._copy("rejected_events", REJECTED_COLUMNS,
                       [(*row, reason.value) for row, reason in batch.rejected])
            self._copy("dead_letters", DEAD_LETTER_COLUMNS,
                       [(self.topic, d.position.partition, d.position.offset, d.key, d.raw,
                         d.error) for d in batch.dead_letters])
            self._upsert_threads(batch.views.values())
            self._save_positions(batch.positions)
            self._conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, self.topic))
            faults.hit("before_pg_commit")
        faults.hit("after_pg_commit")

    def _copy(self, table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
        if not rows:
            return
        with self._conn.cursor() as cur, cur.copy(
                f"COPY {table} ({column_list(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _upsert_threads(self, views: Iterable[ThreadView]) -> None:
        rows = [thread_row(v) for v in views]
        if rows:
            self._copy(_STAGE, THREAD_COLUMNS, rows)
            self._conn.execute(_UPSERT)

    def _save_positions(self, positions: dict[int, int]) -> None:
        if positions:
            parts = sorted(positions)
            self._conn.execute(_SAVE_POSITIONS, (self.group, self.topic, parts,
                                                 [positions[p] for p in parts]))

    def truncate(self) -> None:
        """Drop every projected row and every group's positions (rebuild from offset 0)."""
        with translated("truncating the projection"):
            self._conn.execute(f"TRUNCATE {', '.join(PROJECTION_TABLES)}")
