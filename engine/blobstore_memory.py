"""In-memory adapter of the BlobStore port, for unit tests (same contract as Kafka's)."""

from __future__ import annotations

import threading
from collections import defaultdict

from engine.blobs import BlobRef
from engine.blobstore import BlobStore
from engine.errors import BlobError


class MemoryBlobStore(BlobStore):
    """Chunks in lists per partition; an offset is an index into its partition's list."""

    def __init__(self, partitions: int = 2) -> None:
        self.partitions = partitions
        self.records: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        self.writes = 0  # calls of _write: what the cache spares shows here
        self._lock = threading.Lock()

    def _write(self, partition: int, key: bytes, chunks: list[bytes]) -> list[int]:
        with self._lock:
            self.writes += 1
            records = self.records[partition]
            records.extend((key, chunk) for chunk in chunks)
            return list(range(len(records) - len(chunks), len(records)))

    def _read(self, ref: BlobRef) -> list[bytes]:
        records = self.records.get(ref.partition, [])
        if any(offset >= len(records) for offset in ref.offsets):
            raise BlobError(f"blob {ref.digest} is not at partition {ref.partition} offsets "
                            f"{list(ref.offsets)}", digest=ref.digest)
        return [records[offset][1] for offset in ref.offsets]
