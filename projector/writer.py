"""Commits batches in order on a thread of its own, so folding the next batch overlaps
the PostgreSQL round trip of the previous one.

At most one batch waits while one commits. Batches are committed strictly in
submission order, each in its own transaction with its positions. After a
failure nothing more is committed: the error is raised to the submitting
thread at its next call, and the caller restarts from the committed positions.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from projector.batch import Batch
from projector.faults import FaultPlan
from projector.store import ProjectionStore

_STOP = None


class BatchWriter:
    """One writer thread per projector session."""

    def __init__(self, *, store: ProjectionStore, faults: FaultPlan,
                 on_commit: Callable[[Batch], None]) -> None:
        self._store = store
        self._faults = faults
        self._on_commit = on_commit
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="amber-projector-writer",
                                        daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        """Queue `batch` behind those already submitted; raises an earlier commit's error."""
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    def drain(self) -> None:
        """Wait until every submitted batch is committed; raises the first failure."""
        self._queue.join()
        self._raise_if_failed()

    def close(self) -> None:
        """Stop the thread after the batches already queued (skipped if one failed)."""
        self._queue.put(_STOP)
        self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is _STOP:
                    return
                if self._error is None:
                    self._store.write(batch, self._faults)
                    self._on_commit(batch)
            except BaseException as e:  # handed to the submitting thread, raised there
                self._error = e
            finally:
                self._queue.task_done()
