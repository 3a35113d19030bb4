"""The projector loop: poll the log → fold a batch → commit rows and positions together.

Exactly once: positions live in the same PostgreSQL transaction as the rows
they produced, and a run always starts reading at the committed positions,
so a crash anywhere neither loses nor repeats an event. One projector per
group at a time, enforced by an advisory lock held for the whole run.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from engine.errors import EventLogError
from engine.eventlog import Delivery, EventLog, LogReader
from engine.ledger import ThreadView
from engine.tail import tail
from projector.batch import Batch, fold_batch
from projector.errors import ProjectionStoreError
from projector.faults import FaultPlan
from projector.store import DEFAULT_GROUP, ProjectionStore
from projector.writer import BatchWriter

log = logging.getLogger("amber.projector")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectorConfig:
    """How one projector instance runs; `group` names its positions and its lock."""

    group: str = DEFAULT_GROUP
    batch_size: int = 5000  # records per PostgreSQL transaction, at most
    poll_timeout_s: float = 0.5
    # Under a trickle (one inline runner) every event was its own fetch and its own
    # transaction, and the projector, its broker fetches and PostgreSQL took more
    # CPU than the runner. The broker now holds each fetch up to this long while
    # records gather: a third of that CPU, for up to this much read-your-writes
    # delay. (Lingering in the poll loop as well doubled the delay for no gain.)
    gather_ms: int = 5
    lock_wait_s: float = 0.0  # how long to wait for another instance of the group to exit
    cache_size: int = 100_000  # thread views kept in memory
    retry_for_s: float = 60.0  # give up after transient failures lasting this long

    def __post_init__(self) -> None:
        # Views of batches not yet committed live only in the cache: it must hold
        # every thread of the (up to three) batches in flight.
        if self.cache_size < 4 * self.batch_size:
            raise ValueError("cache_size must be at least 4 * batch_size")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


@dataclass(slots=True, kw_only=True)
class Progress:
    """Counts of this run so far, and the committed positions."""

    records: int = 0
    accepted: int = 0
    rejected: int = 0
    dead_letters: int = 0
    batches: int = 0
    positions: dict[int, int] = field(default_factory=dict)

    def add(self, batch: Batch, positions: Mapping[int, int]) -> None:
        self.records += batch.records
        self.accepted += len(batch.checkpoints)
        self.rejected += len(batch.rejected)
        self.dead_letters += len(batch.dead_letters)
        self.batches += 1
        self.positions = dict(positions)


ProgressCallback = Callable[[Progress], None]


class ViewCache:
    """Thread views as of the last folded batch (committed or still being committed).

    Least recently used first out; never holds a view newer than what the
    folding thread has produced, and is cleared whenever a session restarts.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._views: OrderedDict[str, ThreadView] = OrderedDict()

    def get(self, thread_id: str) -> ThreadView | None:
        view = self._views.get(thread_id)
        if view is not None:
            self._views.move_to_end(thread_id)
        return view

    def put_all(self, views: Iterable[ThreadView]) -> None:
        for view in views:
            self._views[view.thread_id] = view
            self._views.move_to_end(view.thread_id)
        while len(self._views) > self._capacity:
            self._views.popitem(last=False)

    def clear(self) -> None:
        self._views.clear()


class Projector:
    """Projects one topic into one database for one group. Use as a context manager."""

    def __init__(self, *, log: EventLog, database_url: str,
                 config: ProjectorConfig | None = None, faults: FaultPlan | None = None) -> None:
        self._log = log
        self._url = database_url
        self.config = config or ProjectorConfig()
        self._faults = faults or FaultPlan()
        self._store: ProjectionStore | None = None
        self._cache = ViewCache(self.config.cache_size)
        self._read_to: dict[int, int] = {}  # next offset to fold, per partition
        self._committed: dict[int, int] = {}  # next offset not yet committed

    def __enter__(self) -> Projector:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Connect, migrate, take the group lock, load the committed positions."""
        if self._store is not None:
            return
        self._log.check_partitions()  # else it would skip partitions for good, silently
        store = ProjectionStore(database_url=self._url, topic=self._log.topic,
                                group=self.config.group)
        try:
            store.migrate()
            store.lock(wait_s=self.config.lock_wait_s)
            stored = store.positions()
        except BaseException:
            store.close()
            raise
        self._store = store
        self._reset({p: stored.get(p, 0) for p in range(self._log.partitions)})
        log.info("projector started", extra={"group": self.config.group,
                                             "topic": self._log.topic,
                                             "positions": self.positions})

    def _reset(self, positions: dict[int, int]) -> None:
        self._read_to = dict(positions)
        self._committed = dict(positions)
        self._cache.clear()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()  # also releases the session lock
            self._store = None

    @property
    def positions(self) -> dict[int, int]:
        """The committed positions: next offset to project, per partition."""
        return dict(self._committed)

    def lag(self) -> dict[int, tuple[int, int]]:
        """(committed position, end offset) per partition."""
        ends, done = self._log.end_offsets(), self._committed
        return {p: (done.get(p, 0), ends.get(p, 0)) for p in sorted(ends)}

    def catch_up(self, on_progress: ProgressCallback | None = None, *,
                 until: Mapping[int, int] | None = None) -> Progress:
        """Project up to `until` (default: the end offsets as of now), then return."""
        return self.run(until=until or self._log.end_offsets(), on_progress=on_progress)

    def rebuild(self, on_progress: ProgressCallback | None = None, *,
                until: Mapping[int, int] | None = None) -> Progress:
        """Drop the projection and replay the topic from offset 0 to `until` (default: its end)."""
        self._require_store().truncate()
        self._reset(dict.fromkeys(range(self._log.partitions), 0))
        log.info("projection truncated for rebuild", extra={"group": self.config.group})
        return self.catch_up(on_progress, until=until)

    def run(self, *, until: Mapping[int, int] | None = None,
            should_stop: Callable[[], bool] = lambda: False,
            on_progress: ProgressCallback | None = None) -> Progress:
        """Project until every partition reaches `until` (forever if None) or should_stop().

        Transient PostgreSQL or Kafka failures are retried with backoff,
        resuming from the committed positions, for up to config.retry_for_s.
        """
        progress = Progress(positions=self.positions)
        healthy_at, batches_then = time.monotonic(), 0
        while True:
            try:
                self.open()
                self._session(progress, until, should_stop, on_progress)
                return progress
            except (ProjectionStoreError, EventLogError) as e:
                self.close()
                if progress.batches != batches_then:
                    healthy_at, batches_then = time.monotonic(), progress.batches
                if not e.retryable or time.monotonic() - healthy_at > self.config.retry_for_s:
                    raise
                log.warning("transient failure, reconnecting", extra={"error": str(e)})
                time.sleep(1.0)

    def _session(self, progress: Progress, until: Mapping[int, int] | None,
                 should_stop: Callable[[], bool], on_progress: ProgressCallback | None) -> None:
        def committed(batch: Batch) -> None:  # on the writer thread, in commit order
            self._committed = {**self._committed, **batch.positions}
            progress.add(batch, self._committed)
            _log_batch(batch)
            if on_progress is not None:
                on_progress(progress)

        reader = tail(self._log, dict(self._read_to), gather_ms=self.config.gather_ms)
        writer = BatchWriter(store=self._require_store(), faults=self._faults,
                             on_commit=committed)
        try:
            while not self._reached(until) and not should_stop():
                deliveries = self._poll(reader)
                if deliveries:
                    writer.submit(self._fold(deliveries))
                else:
                    self._skip_gaps(reader, writer)
            writer.drain()
        finally:
            writer.close()
            reader.close()

    def _reached(self, until: Mapping[int, int] | None) -> bool:
        if until is None:
            return False
        return all(self._read_to.get(p, 0) >= end for p, end in until.items())

    def _poll(self, reader: LogReader) -> list[Delivery]:
        return reader.poll(max_records=self.config.batch_size,
                           timeout_s=self.config.poll_timeout_s)

    def _fold(self, deliveries: list[Delivery]) -> Batch:
        """Fold on top of the views of batches still in flight; the writer commits it.

        Those views are in the cache before they are committed; if a commit
        fails, the session ends and the cache is rebuilt from the database.
        """
        self._faults.hit("after_poll")
        needed = {d.event.thread_id for d in deliveries if d.event is not None}
        views = {t: v for t in needed if (v := self._cache.get(t)) is not None}
        views.update(self._require_store().load_views(needed - views.keys()))
        batch = fold_batch(deliveries, views.get)
        self._cache.put_all(views.values())
        self._cache.put_all(batch.views.values())
        self._read_to.update(batch.positions)
        return batch

    def _skip_gaps(self, reader: LogReader, writer: BatchWriter) -> None:
        # Offsets need not be contiguous (compaction, transaction markers): when
        # nothing arrives, commit the reader's position so lag and --once agree.
        ahead = {p: o for p, o in reader.positions().items() if o > self._read_to.get(p, 0)}
        if ahead:
            writer.submit(Batch(positions=ahead))
            self._read_to.update(ahead)

    def _require_store(self) -> ProjectionStore:
        if self._store is None:
            raise RuntimeError("projector is not open")
        return self._store


def _log_batch(batch: Batch) -> None:
    for d in batch.dead_letters:
        log.warning("dead letter", extra={"partition": d.position.partition,
                                          "offset": d.position.offset, "error": d.error})
    for thread_id in batch.integrity_errors:
        view = batch.views[thread_id]
        log.warning("integrity error", extra={"thread_id": thread_id,
                                              "error": view.integrity_error})
    if batch.rejected:
        reasons = Counter(reason.value for _, reason in batch.rejected)
        log.info("events rejected", extra={"count": len(batch.rejected),
                                           "reasons": dict(reasons)})
    log.debug("batch committed", extra={"records": batch.records,
                                        "accepted": len(batch.checkpoints),
                                        "positions": batch.positions})
