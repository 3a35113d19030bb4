"""The ProjectionReader port: queryable current and historical thread state.

The PostgreSQL adapter lives in projector/; `LogProjection` here folds the
event log directly and is the in-memory reference both pass the same
contract tests against.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.acceptance import Rejection
from engine.delta import State, fold
from engine.errors import AmberError
from engine.eventlog import Delivery, EventLog, Position
from engine.events import Event
from engine.ledger import ThreadView, advance

_PAGE = 1000  # rows per history read when a whole thread is wanted
V = TypeVar("V")


class ThreadNotFoundError(AmberError):
    def __init__(self, thread_id: str) -> None:
        super().__init__(f"no thread {thread_id!r}")
        self.thread_id = thread_id


class CheckpointNotFoundError(AmberError):
    def __init__(self, thread_id: str, seq: int) -> None:
        super().__init__(f"thread {thread_id!r} has no checkpoint at seq {seq}")


class CatchUpTimeoutError(AmberError):
    """The projection did not reach the wanted position before the deadline."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """One accepted event and where it lies in the log."""

    event: Event
    position: Position


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedEvent:
    event: Event
    position: Position
    reason: Rejection


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """How far the projection is on one partition, and how lately it moved."""

    next_offset: int  # next log offset not yet applied
    idle_s: float  # seconds since the projector last advanced here; inf when unknown


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadGraph:
    """Which graph a thread runs and who drives it: never changes after ThreadStarted."""

    graph: str
    mode: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadHead:
    """A thread's row and head event, with its partition's progress, read together.

    The row holds at least every event of the thread below `progress.next_offset`.
    """

    progress: Progress
    view: ThreadView | None  # None: no event of the thread is projected
    head: Checkpoint | None  # the event at view.head.seq


class ProjectionReader(ABC):
    """Read side used by the engine, the CLI and the API."""

    @abstractmethod
    def get_thread(self, thread_id: str) -> ThreadView | None: ...

    @abstractmethod
    def history(self, thread_id: str, *, after_seq: int = -1,
                limit: int = 1000) -> list[Checkpoint]:
        """Accepted events with seq > after_seq, oldest first, at most `limit`."""

    @abstractmethod
    def list_threads(self, *, status: str | None = None, graph: str | None = None,
                     limit: int = 100, offset: int = 0) -> list[ThreadView]:
        """Threads, most recently updated first."""

    @abstractmethod
    def rejected(self, thread_id: str) -> list[RejectedEvent]: ...

    @abstractmethod
    def projected_offset(self, partition: int) -> int:
        """Next log offset of `partition` the projection has not applied yet."""

    @abstractmethod
    def dead_letter_offsets(self, partition: int, *, below: int) -> list[int]:
        """Offsets, ascending, of the records of `partition` below `below` that the
        projection holds as dead letters (records that are not events)."""

    def known_threads(self, thread_ids: Collection[str]) -> set[str]:
        """Those of `thread_ids` the projection holds a thread for (adapters: one query)."""
        return {t for t in thread_ids if self.get_thread(t) is not None}

    def progress(self, partition: int) -> Progress:
        """projected_offset and its age; adapters that cannot tell the age say inf."""
        return Progress(next_offset=self.projected_offset(partition), idle_s=math.inf)

    def thread_head(self, thread_id: str, partition: int) -> ThreadHead:
        """The thread and its partition's progress (adapters answer in one round trip).

        Progress is read first, so the row is at least as new as it says.
        """
        progress = self.progress(partition)
        view = self.get_thread(thread_id)
        heads = [] if view is None else self.history(thread_id, after_seq=view.head.seq - 1,
                                                     limit=1)
        # A row without its head event is reported, not raised, as the PostgreSQL reader does
        return ThreadHead(progress=progress, view=view, head=heads[0] if heads else None)

    def wait_for_offset(self, partition: int, offset: int, *, timeout_s: float) -> None:
        """Return once every record of `partition` before `offset` is projected.

        Raises CatchUpTimeoutError after the deadline: the caller then knows
        the projection is behind (no projector running?) and must not act on it.
        """
        deadline = time.monotonic() + timeout_s
        while self.projected_offset(partition) < offset:
            if time.monotonic() >= deadline:
                raise CatchUpTimeoutError(
                    f"projection of partition {partition} has not reached offset {offset} "
                    f"within {timeout_s:g}s (is `amber projector` running?)")
            time.sleep(0.005)

    def wait_for_offsets(self, ends: Mapping[int, int], *, timeout_s: float) -> None:
        """wait_for_offset for every partition in `ends`, all within one deadline
        (adapters that can, wait for them together)."""
        deadline = time.monotonic() + timeout_s
        for partition, end in ends.items():
            self.wait_for_offset(partition, end, timeout_s=max(0.0, deadline - time.monotonic()))

    def get_state(self, thread_id: str, seq: int | None = None) -> State:
        """State after `seq` (default: the head); rebuilt from the checkpoints."""
        view = self.require(thread_id)
        if seq is None or seq == view.head.seq:
            return view.state
        if not 0 <= seq <= view.head.seq:
            raise CheckpointNotFoundError(thread_id, seq)
        return self._state_at(thread_id, seq)

    def _state_at(self, thread_id: str, seq: int) -> State:
        """State after `seq`, which exists; adapters with snapshots start from the nearest."""
        return folded_state(self.history(thread_id, limit=seq + 1))

    def thread_graph(self, thread_id: str) -> ThreadGraph | None:
        """The thread's graph and mode, without its state (adapters read just those)."""
        view = self.get_thread(thread_id)
        return None if view is None else ThreadGraph(graph=view.graph, mode=view.mode)

    def all_history(self, thread_id: str) -> list[Checkpoint]:
        """Every accepted event of the thread, oldest first (history, page by page)."""
        out: list[Checkpoint] = []
        while True:
            page = self.history(thread_id, after_seq=out[-1].event.seq if out else -1,
                                limit=_PAGE)
            out += page
            if len(page) < _PAGE:
                return out

    def thread_ids(self) -> list[str]:
        """Every thread's id, sorted (adapters read just the ids, in one snapshot)."""
        seen: list[str] = []
        while page := self.list_threads(limit=10_000, offset=len(seen)):
            seen += [v.thread_id for v in page]
        return sorted(set(seen))

    def require(self, thread_id: str) -> ThreadView:
        view = self.get_thread(thread_id)
        if view is None:
            raise ThreadNotFoundError(thread_id)
        return view

    def open_interrupts(self, *, limit: int = 100) -> list[ThreadView]:
        return self.list_threads(status="interrupted", limit=limit)

    def wait_for(self, thread_id: str, seq: int, *, timeout_s: float) -> ThreadView:
        """The thread's view once it includes `seq`; CatchUpTimeoutError after the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            view = self.get_thread(thread_id)
            if view is not None and view.head.seq >= seq:
                return view
            if time.monotonic() >= deadline:
                raise CatchUpTimeoutError(
                    f"projection has not reached seq {seq} of thread {thread_id!r} "
                    f"within {timeout_s:g}s (is `amber projector` running?)")
            time.sleep(0.01)


@dataclass(slots=True)
class LogFold:
    """What the acceptance rule makes of records read in log order, per thread.

    The projector's semantics without a database: the in-memory reader and
    `amber verify` (which checks the projection against it) both use it.
    """

    views: dict[str, ThreadView] = field(default_factory=dict)
    checkpoints: dict[str, list[Checkpoint]] = field(default_factory=dict)
    rejected: dict[str, list[RejectedEvent]] = field(default_factory=dict)
    undecodable: dict[str | None, int] = field(default_factory=dict)  # per key: never applied
    dead_letters: list[Position] = field(default_factory=list)  # the same records, in log order

    def add_all(self, deliveries: Iterable[Delivery]) -> LogFold:
        for d in deliveries:
            self.add(d)
        return self

    def only(self, thread_id: str) -> LogFold:
        """This fold cut down to one thread: what a later fold of it continues from.

        Its dead letters are left out: they belong to the partition, not the thread,
        and a fold continued from here reads only the thread's records.
        """
        return LogFold(views=_just(self.views, thread_id),
                       checkpoints={k: list(v) for k, v in
                                    _just(self.checkpoints, thread_id).items()},
                       rejected={k: list(v) for k, v in _just(self.rejected, thread_id).items()},
                       undecodable=_just(self.undecodable, thread_id))

    def add(self, d: Delivery) -> None:
        if d.event is None:
            self.undecodable[d.key] = self.undecodable.get(d.key, 0) + 1
            self.dead_letters.append(d.position)
            return
        e = d.event
        outcome = advance(self.views.get(e.thread_id), e)
        if outcome.rejection is None and outcome.view is not None:
            self.views[e.thread_id] = outcome.view
            self.checkpoints.setdefault(e.thread_id, []).append(
                Checkpoint(event=e, position=d.position))
        else:
            self.rejected.setdefault(e.thread_id, []).append(RejectedEvent(
                event=e, position=d.position, reason=outcome.rejection or Rejection.GAP))


def folded_state(checkpoints: Iterable[Checkpoint]) -> State:
    """The state after the last of a thread's events given from seq 0: their deltas folded."""
    state: State = {}
    for cp in checkpoints:
        state = fold(state, cp.event.ops())
    return state


def _just(by_key: dict[Any, V], key: str) -> dict[Any, V]:
    return {key: by_key[key]} if key in by_key else {}


class LogProjection(ProjectionReader):
    """Folds the whole log on every read: slow, obviously correct, no database."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def _fold_all(self) -> LogFold:
        """Every partition up to what the projection holds (here: all of it, but a
        test double that lags overrides only projected_offset)."""
        folded = LogFold()
        for partition in range(self._log.partitions):
            folded.add_all(self._log.read(partition, 0, self.projected_offset(partition)))
        return folded

    def get_thread(self, thread_id: str) -> ThreadView | None:
        return self._fold_all().views.get(thread_id)

    def known_threads(self, thread_ids: Collection[str]) -> set[str]:
        return set(thread_ids) & self._fold_all().views.keys()

    def history(self, thread_id: str, *, after_seq: int = -1,
                limit: int = 1000) -> list[Checkpoint]:
        cps = self._fold_all().checkpoints.get(thread_id, [])
        return [c for c in cps if c.event.seq > after_seq][:limit]

    def list_threads(self, *, status: str | None = None, graph: str | None = None,
                     limit: int = 100, offset: int = 0) -> list[ThreadView]:
        views = [v for v in self._fold_all().views.values()
                 if (status is None or v.status == status) and (graph is None or v.graph == graph)]
        views.sort(key=lambda v: (v.updated_at, v.thread_id), reverse=True)
        return views[offset:offset + limit]

    def rejected(self, thread_id: str) -> list[RejectedEvent]:
        return self._fold_all().rejected.get(thread_id, [])

    def projected_offset(self, partition: int) -> int:
        return self._log.end_offset(partition)  # every read folds the whole log

    def dead_letter_offsets(self, partition: int, *, below: int) -> list[int]:
        end = min(below, self._log.end_offset(partition))  # reading past the end would wait
        return [d.position.offset for d in self._log.read(partition, 0, end) if d.event is None]
