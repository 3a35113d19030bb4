"""In-memory EventLog: the reference semantics of the port, for unit tests.

Thread-safe, so concurrent-writer contract tests exercise it like the broker.
"""

from __future__ import annotations

import threading

from engine.eventlog import (
    Delivery,
    EventLog,
    LogReader,
    Position,
    decode_delivery,
)


class InMemoryEventLog(EventLog):
    def __init__(self, *, topic: str = "amber.events", partitions: int = 12) -> None:
        super().__init__(topic=topic, partitions=partitions)
        self._records: list[list[tuple[bytes, bytes]]] = [[] for _ in range(partitions)]
        self._changed = threading.Condition()

    def _send_all(self, records: list[tuple[str, bytes]]) -> list[Position]:
        return [self._write(key, value) for key, value in records]

    def _write(self, key: str, value: bytes) -> Position:
        partition = self.partition_of(key)
        with self._changed:
            records = self._records[partition]
            records.append((key.encode("utf-8"), value))
            self._changed.notify_all()
            return Position(partition, len(records) - 1)

    def end_offsets(self) -> dict[int, int]:
        with self._changed:
            return {p: len(r) for p, r in enumerate(self._records)}

    def reader(self, start: dict[int, int], *, gather_ms: int = 0) -> LogReader:
        return _MemoryReader(self, dict(start))

    def _take(self, cursor: dict[int, int], max_records: int) -> list[Delivery]:
        out: list[Delivery] = []
        for partition, offset in cursor.items():
            chunk = self._records[partition][offset:offset + max_records - len(out)]
            for i, (key, value) in enumerate(chunk):
                out.append(decode_delivery(Position(partition, offset + i), key, value,
                                           partitions=self.partitions))
            cursor[partition] = offset + len(chunk)
        return out


class _MemoryReader(LogReader):
    def __init__(self, log: InMemoryEventLog, cursor: dict[int, int]) -> None:
        self._log = log
        self._cursor = cursor

    def poll(self, *, max_records: int = 500, timeout_s: float = 1.0) -> list[Delivery]:
        with self._log._changed:
            self._log._changed.wait_for(lambda: self._has_more(), timeout=timeout_s)
            return self._log._take(self._cursor, max_records)

    def _has_more(self) -> bool:
        return any(len(self._log._records[p]) > o for p, o in self._cursor.items())

    def positions(self) -> dict[int, int]:
        return dict(self._cursor)

    def reseek(self, start: dict[int, int]) -> None:
        self._cursor = dict(start)

    def close(self) -> None:
        self._cursor = {}
