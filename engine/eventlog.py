"""The EventLog port: an append-only, partitioned log of events keyed by thread.

Adapters: `eventlog_memory.InMemoryEventLog` (unit tests, documents the
semantics) and `eventlog_kafka.KafkaEventLog`. Both pass tests/contracts.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from engine.errors import (
    EventDecodeError,
    LogUnavailableError,
    MisplacedEventError,
    SettingsError,
)
from engine.events import Event
from engine.partitioning import partition_for
from schemas import default_codec
from schemas.errors import SchemaError

READ_STALL_S = 30.0  # a read that makes no progress this long reports the log unreachable
# Every adapter creates the events topic alike: the log is the system of record,
# so nothing ever expires and nothing is compacted away.
TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1"}
# A gathering fetch is answered early once this much is waiting: under load the
# hold never delays anything, it only spares requests while records trickle in.
GATHER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True, order=True)
class Position:
    partition: int
    offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One record read from the log: an event, or the error that kept it from being one."""

    position: Position
    key: str | None
    raw: bytes
    event: Event | None = None
    error: EventDecodeError | None = None


def encode_event(event: Event) -> bytes:
    return default_codec().encode(event.to_record())


def decode_delivery(position: Position, key: bytes | None, raw: bytes, *,
                    partitions: int | None) -> Delivery:
    """Decode one record; bad bytes become a Delivery with a typed error, never a crash.

    `partitions` is the topic's partition count: an event read from a partition
    its thread does not live on is refused like bad bytes (MisplacedEventError).
    None skips that check, for records a test makes up without a topic.
    """
    text_key = key.decode("utf-8", "replace") if key is not None else None
    try:
        event = Event.from_record(default_codec().decode(raw))
        _require_home(event, position.partition, partitions)
    except (SchemaError, KeyError, ValueError, TypeError, MisplacedEventError) as e:
        err = EventDecodeError(partition=position.partition, offset=position.offset, cause=e)
        return Delivery(position=position, key=text_key, raw=raw, error=err)
    return Delivery(position=position, key=text_key, raw=raw, event=event)


def naming(thread_id: str | None) -> Callable[[bytes | None], bool]:
    """A test on raw records: False only for one whose thread_id reads as another
    thread's (~0.5 µs, against ~15 µs to decode it); everything passes without an id."""
    if thread_id is None:
        return every_record
    wanted, read = thread_id.encode("utf-8"), default_codec().thread_id_bytes
    return lambda raw: read(raw) in (None, wanted)


def every_record(raw: bytes | None) -> bool:
    return True


def _require_home(event: Event, partition: int, partitions: int | None) -> None:
    home = partition if partitions is None else partition_for(event.thread_id, partitions)
    if home != partition:
        raise MisplacedEventError(f"an event of thread {event.thread_id!r} belongs on "
                                  f"partition {home}, not {partition}")


@dataclass(frozen=True, slots=True)
class Tail:
    """A partition's end offset and, when few enough, the records before it from a start."""

    end: int
    records: list[Delivery] | None  # None: more records than asked for lie before `end`


class LogReader(ABC):
    """A cursor over some partitions of the log, polled in batches."""

    @abstractmethod
    def poll(self, *, max_records: int = 500, timeout_s: float = 1.0) -> list[Delivery]:
        """Next records in offset order per partition; [] if none arrived in time."""

    @abstractmethod
    def positions(self) -> dict[int, int]:
        """Next offset this cursor will read, per partition."""

    @abstractmethod
    def reseek(self, start: dict[int, int]) -> None:
        """Point this cursor at other partitions/offsets without reconnecting."""

    def park(self) -> None:  # noqa: B027 — only cursors that fetch in the background need it
        """Stop fetching until the next reseek (the cursor is kept for reuse)."""

    @abstractmethod
    def close(self) -> None: ...


class EventLog(ABC):
    """Append-only log of events; a thread's events all live on one partition."""

    def __init__(self, *, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self._adhoc: LogReader | None = None  # the one cursor read() reuses
        self._read_lock = threading.Lock()
        self._partitions_known = False  # the topic's count was checked (check_partitions)

    def partition_of(self, thread_id: str) -> int:
        return partition_for(thread_id, self.partitions)

    def append(self, events: Sequence[Event]) -> list[Position]:
        """Append in order; returns only once the log acknowledged every event.

        Every event is encoded before any is sent, so one that does not fit the
        schema fails the call with nothing written.
        """
        return self._send_all([(e.thread_id, encode_event(e)) for e in events])

    def append_raw(self, key: str, value: bytes) -> Position:
        """Append arbitrary bytes under `key` (tools and tests of bad input)."""
        return self._send_all([(key, value)])[0]

    @abstractmethod
    def _send_all(self, records: list[tuple[str, bytes]]) -> list[Position]:
        """Write (key, value) records in order, each on its key's partition; wait for acks."""

    @abstractmethod
    def end_offsets(self) -> dict[int, int]:
        """Next offset to be written, per partition."""

    def end_offset(self, partition: int) -> int:
        """Next offset to be written on one partition (adapters ask for just that one)."""
        return self.end_offsets()[partition]

    def tail(self, partition: int, start: int, *, most: int,
             thread_id: str | None = None) -> Tail:
        """The partition's end offset, and the records from `start` up to it if at most `most`.

        The end is taken first: every record below it is in the answer. With
        `thread_id`, only records that may be that thread's events are (see
        `naming`): the others cannot move its head, so adapters need not decode them.
        """
        end = self.end_offset(partition)
        if end - start > most:
            return Tail(end, None)
        keep = naming(thread_id)
        return Tail(end, [d for d in self.read(partition, start, end) if keep(d.raw)])

    @abstractmethod
    def reader(self, start: dict[int, int], *, gather_ms: int = 0) -> LogReader:
        """A cursor over the partitions in `start`, beginning at the given offsets.

        With `gather_ms` > 0 the broker may hold each fetch that long while records
        accumulate: a tailing reader under a trickle then makes one request per
        `gather_ms` instead of one per record, at the price of that much delay.
        """

    def check_partitions(self) -> None:
        """SettingsError unless the topic has exactly `partitions` partitions
        (require_partitions). Adapters check on first use; long-lived processes
        call this at startup to fail there, not on every request. Until the topic
        exists, each call asks again, so one made later by another process is
        checked too."""
        if self._partitions_known:
            return
        found = self._topic_partitions()
        require_partitions(self.topic, self.partitions, found)
        self._partitions_known = found is not None

    def _topic_partitions(self) -> int | None:
        """How many partitions the topic has; None if it does not exist (or, as for
        logs on no broker, there is nothing to compare)."""
        return None

    def connect_soon(self, *, writes: bool = True) -> None:  # noqa: B027 — lazy adapters only
        """Start connecting in the background, so the first call need not wait for it.

        `writes=False`: the caller only reads, so what only appends need (an
        idempotent producer's identity) is left unmade. A failure is reported by
        the first call that needs the connection.
        """

    def close(self) -> None:
        """Release connections (adapters with more to release extend this)."""
        self._close_reused_reader()

    def read(self, partition: int, start: int = 0, end: int | None = None) -> Iterator[Delivery]:
        """Records of one partition from `start` up to `end` (default: the current end)."""
        stop = self.end_offset(partition) if end is None else end
        if start >= stop:
            return iter(())
        return iter(self._read_range(partition, start, stop))

    def _read_range(self, partition: int, start: int, stop: int) -> list[Delivery]:
        """Every record of `partition` from `start` below `stop` (`read` asks only for
        `start` < `stop`); adapters that fetch without a cursor override this.

        Every call reuses one cursor: a new Kafka consumer costs a bootstrap,
        which every resume paid (~50 ms) before.
        """
        with self._read_lock:
            if self._adhoc is None:
                self._adhoc = self._bounded_reader({partition: start})
            else:
                self._adhoc.reseek({partition: start})
            try:
                return list(drain(self._adhoc, partition, stop))
            finally:
                self._adhoc.park()

    def _bounded_reader(self, start: dict[int, int]) -> LogReader:
        """The cursor read() reuses; adapters may tune it for reads that have an end."""
        return self.reader(start)

    def _close_reused_reader(self) -> None:
        with self._read_lock:
            adhoc, self._adhoc = self._adhoc, None
        if adhoc is not None:
            adhoc.close()

    def read_thread(self, thread_id: str) -> Iterator[Delivery]:
        """Every record keyed by `thread_id`, in log order (undecodable ones included)."""
        for delivery in self.read(self.partition_of(thread_id)):
            if delivery.key == thread_id:
                yield delivery


def require_partitions(topic: str, configured: int, found: int | None) -> None:
    """SettingsError unless the topic has exactly AMBER_PARTITIONS partitions
    (`found` None: the topic does not exist yet, and ensure_topic makes it so).

    Every process puts a thread on partition murmur2(thread_id) % AMBER_PARTITIONS
    and reads that many partitions. One that counts otherwise writes threads where
    the others never look, and a projector of it skips partitions for good.
    """
    if found is not None and found != configured:
        raise SettingsError("AMBER_PARTITIONS", f"is {configured}, but topic {topic} has "
                                                f"{found} partitions: every process must use "
                                                "the topic's count")


def await_visible(partitions: Callable[[], int], topic: str, timeout_s: float) -> None:
    """Return once the broker's metadata lists the topic's partitions.

    The controller acknowledges a new topic before the broker serves its
    metadata: a describe or a first append right after ensure_topic() could
    otherwise find no partition at all.
    """
    deadline = time.monotonic() + timeout_s
    while partitions() == 0:
        if time.monotonic() > deadline:
            raise LogUnavailableError(f"topic {topic} created but not visible after "
                                      f"{timeout_s:g}s")
        time.sleep(0.02)


class StallWatch:
    """Ends a bounded read that stopped making progress: the log is then unreachable."""

    def __init__(self, partition: int, stop: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reading = f"partition {partition} up to {stop}"
        self._clock = clock
        self._deadline = clock() + READ_STALL_S

    def note(self, *, progressed: bool) -> None:
        """Record one attempt; raises LogUnavailableError after READ_STALL_S without progress."""
        if progressed:
            self._deadline = self._clock() + READ_STALL_S
        elif self._clock() > self._deadline:
            raise LogUnavailableError(f"no progress reading {self._reading}")


def drain(cursor: LogReader, partition: int, stop: int, *,
          clock: Callable[[], float] = time.monotonic) -> Iterator[Delivery]:
    stall = StallWatch(partition, stop, clock=clock)
    while cursor.positions()[partition] < stop:
        batch = cursor.poll(max_records=2000, timeout_s=1.0)
        stall.note(progressed=bool(batch))
        yield from (d for d in batch if d.position.offset < stop)
