"""The BlobStore port contract: `memory` (MemoryBlobStore) and `kafka` (KafkaBlobStore on a
fresh blob topic of the real broker) keep and give back bytes alike, and refuse alike."""

from __future__ import annotations

import dataclasses

import pytest

from engine.blobs import digest_of
from engine.blobstore import CHUNK_BYTES, BlobStore
from engine.errors import BlobError


def _put(store: BlobStore, data: bytes, partition: int = 5) -> object:
    return store.put(partition, digest_of(data), data)


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES, 2 * CHUNK_BYTES + 17])
def test_what_is_put_is_got_back_whole(blob_store: BlobStore, size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    ref = blob_store.put(5, digest_of(data), data)
    assert (ref.digest, ref.size, ref.partition) == (digest_of(data), size, 5)
    assert len(ref.offsets) == max(1, -(-size // CHUNK_BYTES))
    assert blob_store.get(ref) == data


def test_interleaved_blobs_on_one_partition_come_back_apart(blob_store: BlobStore) -> None:
    datas = [bytes([n]) * (CHUNK_BYTES + n) for n in range(1, 4)]
    refs = [blob_store.put(2, digest_of(d), d) for d in datas]
    assert [blob_store.get(r) for r in reversed(refs)] == list(reversed(datas))


def test_a_pointer_whose_digest_is_not_of_the_bytes_is_refused(blob_store: BlobStore) -> None:
    ref = blob_store.put(1, digest_of(b"the real text"), b"the real text")
    forged = dataclasses.replace(ref, digest=digest_of(b"another text"))
    with pytest.raises(BlobError) as e:
        blob_store.get(forged)
    assert e.value.digest == forged.digest


def test_a_pointer_to_offsets_that_hold_nothing_is_refused(blob_store: BlobStore) -> None:
    ref = blob_store.put(1, digest_of(b"kept"), b"kept")
    beyond = dataclasses.replace(ref, offsets=(ref.offsets[0] + 1000,))
    with pytest.raises(BlobError):
        blob_store.get(beyond)


def test_a_pointer_to_another_blobs_record_is_refused(blob_store: BlobStore) -> None:
    first = blob_store.put(4, digest_of(b"first"), b"first")
    second = blob_store.put(4, digest_of(b"second"), b"second")
    crossed = dataclasses.replace(first, offsets=second.offsets)
    with pytest.raises(BlobError):
        blob_store.get(crossed)


def test_a_pointer_to_a_partition_the_store_lacks_is_refused(blob_store: BlobStore) -> None:
    ref = blob_store.put(1, digest_of(b"here"), b"here")
    with pytest.raises(BlobError):
        blob_store.get(dataclasses.replace(ref, partition=ref.partition + 100))
