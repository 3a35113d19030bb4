"""`amber worker`: a Kafka consumer group that executes the next step of worker threads.

The loop is poll → load cold threads from the projection → apply the
acceptance rule → run one step per runnable thread → append all resulting
events in one pipelined flush (acks=all) → commit the consumed offsets.
Offsets are committed only after the produced events are acknowledged, so a
crash re-delivers and the acceptance rule drops any duplicate it produces.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from consumers.group import KAFKA_MAX_POLL_INTERVAL_MS, GroupCommitError, GroupConsumer
from engine.checkpointer import Checkpointer
from engine.dispatch import Dispatcher
from engine.eventlog import Delivery, Position
from engine.graph import CompiledGraph, NodeSpec
from engine.projection import ProjectionReader

log = logging.getLogger("amber.worker")
_POLL_MARGIN_S = 30.0  # the appends, the commit and the poll around the batch


def group_id_for(graphs: dict[str, CompiledGraph], prefix: str) -> str:
    """Workers serving the same graphs share a group; others read the log independently."""
    return f"{prefix}.workers.{'+'.join(sorted(graphs))}"


def poll_interval_ms(graphs: Iterable[CompiledGraph], batch_s: float) -> int:
    """How long the group may wait for this worker's next poll: Kafka's 300 s, or more
    when a batch plus the slowest bounded node (every attempt, every backoff) needs it.
    A node without timeout_s cannot be bounded: one slower than this costs the worker
    its partitions, and the step runs again elsewhere."""
    slowest = max((_worst_case_s(spec) for graph in graphs for spec in graph.nodes.values()
                   if spec.timeout_s is not None), default=0.0)
    return max(KAFKA_MAX_POLL_INTERVAL_MS, math.ceil(1000 * (batch_s + slowest + _POLL_MARGIN_S)))


def _worst_case_s(spec: NodeSpec) -> float:
    attempts, timeout = spec.retry.max_attempts, spec.timeout_s or 0.0
    return attempts * timeout + sum(spec.retry.backoff_s(a) for a in range(1, attempts))


@dataclass(slots=True)
class WorkerStats:
    polled: int = 0
    steps: int = 0
    batches: int = 0
    reported_at: float = field(default_factory=time.monotonic)


class Worker:
    """One member of the worker group for a set of graphs."""

    def __init__(self, *, graphs: dict[str, CompiledGraph], cp: Checkpointer,
                 consumer: GroupConsumer, group: str, poll_ms: int = 250,
                 commit_every_s: float = 0.1, batch_s: float = 10.0) -> None:
        self.cp = cp
        self.group = group
        self.dispatcher = Dispatcher(graphs, clock=cp.clock, snapshot_every=cp.snapshot_every,
                                     blobs=cp.blobs)
        self.stats = WorkerStats()
        self._poll_ms = poll_ms
        self._catch_up_to: dict[int, int] = {}
        self._settled: set[int] = set()  # partitions whose handover the projection has caught
        # Threads this worker dropped, until the projection passes where it saw them last.
        self._forgotten: dict[str, Position] = {}
        self._pruned_at = time.monotonic()
        self._owned: set[int] = set()
        self._stopping = False
        self._batch_s = batch_s
        # Threads a batch left for the next (batch_s ran out): the first record since their
        # last step, below which their partition's commit stays until they are stepped.
        self._held: dict[str, Position] = {}
        self._seen_to: dict[int, int] = {}  # the last offset consumed, per owned partition
        self._committed: dict[int, int] = {}  # the offset last committed, per owned partition
        self._committed_at = time.monotonic()
        self._commit_every_s = commit_every_s
        self._consumer = consumer
        consumer.subscribe(on_assign=self.assigned, on_revoke=self.revoked)

    # --- rebalance -------------------------------------------------------------
    def assigned(self, partitions: set[int]) -> None:
        """New partitions: cold threads wait until the projection has what the last owner wrote."""
        ends = self.cp.log.end_offsets()
        self._catch_up_to.update({p: ends[p] for p in partitions})
        self._settled -= partitions
        self._owned |= partitions
        log.info("partitions assigned", extra={"partitions": sorted(partitions)})

    def revoked(self, partitions: set[int]) -> None:
        self._commit()  # every step of those records is acked: hand over a clean position
        self._owned -= partitions
        # Whoever owns them next (this worker too) starts from the committed offsets.
        self._seen_to = {p: o for p, o in self._seen_to.items() if p not in partitions}
        self._committed = {p: o for p, o in self._committed.items() if p not in partitions}
        self._held = {t: at for t, at in self._held.items() if at.partition not in partitions}
        self._forgotten = {t: at for t, at in self._forgotten.items()
                           if at.partition not in partitions}
        stale = {t for t in self.dispatcher.threads if self.cp.log.partition_of(t) in partitions}
        self.dispatcher.forget(stale)

    # --- the loop ----------------------------------------------------------------
    def stop(self) -> None:
        self._stopping = True

    def run(self, *, until: Callable[[], bool] | None = None) -> None:
        """Process batches until SIGTERM/stop() (or `until()` is true); then leave the group."""
        try:
            while not self._stopping and not (until and until()):
                self.run_once()
            self._commit()
        finally:
            self._consumer.close()

    def run_once(self) -> int:
        """One poll → step → append → commit cycle; the number of steps appended."""
        batch = self._poll()
        self._screen_starts(batch)
        for delivery in batch:
            self._observe(delivery)
        events = self.dispatcher.step_all(until=time.monotonic() + self._batch_s)
        if events:
            self.cp.log.append(events)  # one pipelined flush, every event acked
            self.dispatcher.appended(events)
        for thread_id in self.dispatcher.looked:
            self._held.pop(thread_id, None)
        self._note_consumed(batch)
        if not batch or self._commit_due():
            self._commit()
        self._forget_halted()
        self.stats.steps += len(events)
        self.stats.batches += 1
        self._report()
        return len(events)

    def _report(self, every_s: float = 30.0) -> None:
        """Log progress, and the graphs seen on the log that this worker does not serve."""
        now = time.monotonic()
        if now - self.stats.reported_at < every_s:
            return
        self.stats.reported_at = now
        log.info("worker progress", extra={
            "group": self.group, "steps": self.stats.steps, "polled": self.stats.polled,
            "cached_threads": len(self.dispatcher.threads),
            "rejected_events": self.dispatcher.rejected,
            "foreign_graphs": dict(self.dispatcher.foreign)})

    def _poll(self) -> list[Delivery]:
        if not self._consumer.assignment():
            # No partitions (group forming, topic gone): poll returns at once, so idle
            # here instead of spinning a core.
            time.sleep(self._poll_ms / 1000)
        # Threads a batch left over are stepped next, after whatever is there already.
        out = self._consumer.poll(timeout_ms=0 if self.dispatcher.pending else self._poll_ms)
        self.stats.polled += len(out)
        return out

    def _observe(self, delivery: Delivery) -> None:
        event = delivery.event
        if event is None:
            where = delivery.position
            log.warning("undecodable record skipped",
                        extra={"partition": where.partition, "offset": where.offset})
            return
        if not self.dispatcher.serves(event):
            return
        if event.seq > 0 and not self.dispatcher.knows(event.thread_id):
            self._load_cold(event.thread_id, delivery.position)
        self.dispatcher.observe(event)
        if event.thread_id in self.dispatcher.pending:
            self._held.setdefault(event.thread_id, delivery.position)

    def _screen_starts(self, batch: list[Delivery]) -> None:
        """Seed each thread the batch starts that existed already, so the acceptance rule
        rejects that start (a start that lost its race, a client's retry) instead of
        this worker running the thread again from it.

        Such a thread's earlier events are either ones this worker saw and dropped
        (`_forgotten`) or, once the partition's handover is settled, in the
        projection: one query per batch, and no wait for the projector.
        """
        starts: dict[str, Position] = {}
        for d in batch:
            e = d.event
            if e is not None and e.seq == 0 and e.graph.name in self.dispatcher.graphs \
                    and not self.dispatcher.knows(e.thread_id):
                starts.setdefault(e.thread_id, d.position)
        if not starts:
            return
        self._settle({at.partition for at in starts.values()})
        unseen = starts.keys() - self._forgotten.keys()
        existed = (starts.keys() - unseen) | self.cp.projection.known_threads(unseen)
        for thread_id in existed:
            self._load_cold(thread_id, starts[thread_id])

    def _settle(self, partitions: set[int]) -> None:
        """Wait, once per assignment, until the projection holds what earlier owners of
        these partitions saw (every record below the end at assignment)."""
        pending = {p: self._catch_up_to.get(p, 0) for p in partitions - self._settled}
        if pending:
            self.cp.projection.wait_for_offsets(pending, timeout_s=self.cp.catchup_timeout_s)
            self._settled |= pending.keys()

    def _forget_halted(self) -> None:
        # Its events all lie at or below what was consumed of its partition (a batch
        # may have left it pending from an earlier poll than this one).
        for thread_id in self.dispatcher.forget_halted():
            p = self.cp.log.partition_of(thread_id)
            self._forgotten[thread_id] = Position(p, self._seen_to.get(p, 0))
        self._prune_forgotten()

    def _prune_forgotten(self, every_s: float = 1.0) -> None:
        """Drop what the projection now holds (its lag bounds how many are kept)."""
        now = time.monotonic()
        if not self._forgotten or now - self._pruned_at < every_s:
            return
        self._pruned_at = now
        reader: ProjectionReader = self.cp.projection
        projected = {p: reader.projected_offset(p)
                     for p in {at.partition for at in self._forgotten.values()}}
        self._forgotten = {t: at for t, at in self._forgotten.items()
                           if at.offset >= projected[at.partition]}

    def _load_cold(self, thread_id: str, position: Position) -> None:
        reader: ProjectionReader = self.cp.projection
        target = max(position.offset, self._catch_up_to.get(position.partition, 0))
        reader.wait_for_offset(position.partition, target, timeout_s=self.cp.catchup_timeout_s)
        view = reader.get_thread(thread_id)
        if view is None:
            return  # never started as far as the projection knows: the event will be rejected
        head = reader.history(thread_id, after_seq=view.head.seq - 1, limit=1)[0]
        self.dispatcher.seed(view, head.event)

    def _note_consumed(self, batch: list[Delivery]) -> None:
        """Remember offsets whose records are fully handled (their steps are acked)."""
        for d in batch:
            p = d.position.partition
            self._seen_to[p] = max(self._seen_to.get(p, -1), d.position.offset)

    def _commit_due(self) -> bool:
        return time.monotonic() - self._committed_at >= self._commit_every_s

    def _commit(self) -> None:
        """Commit handled offsets: at most every commit_every_s while busy, at once when idle.

        Committing later only means more re-delivery after a crash, which the
        acceptance rule absorbs; committing before the acks would lose steps.
        """
        offsets = self._to_commit()
        if not offsets:
            return
        self._committed.update(offsets)
        self._committed_at = time.monotonic()
        try:
            self._consumer.commit(offsets)
        except GroupCommitError as e:  # a rebalance took the partition: the new owner re-reads
            log.warning("offset commit failed", extra={"error": repr(e)})

    def _to_commit(self) -> dict[int, int]:
        """Per owned partition, the offset after what was consumed, held below the first
        record of each thread a batch left for later (it comes back to whoever steps
        it); only where that moved past the last commit."""
        offsets = {p: o + 1 for p, o in self._seen_to.items() if p in self._owned}
        for at in self._held.values():
            if at.partition in offsets:
                offsets[at.partition] = min(offsets[at.partition], at.offset)
        return {p: o for p, o in offsets.items() if o > self._committed.get(p, 0)}


def install_signal_handlers(worker: Worker) -> None:
    """SIGTERM/SIGINT finish the current batch (appends and commit), then leave the group."""

    def handler(signum: int, frame: Any) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
