"""The blob store port, and `Blobs`: the engine's one door to it (see engine.blobs).

Writes happen just before an event that points at them is sealed, so a blob is
durable before any event names it; reads happen at the node boundary, where a
node or router needs the text. Both go through a process-wide cache, so a text
carried from step to step is hashed, written and read once, and a thread that
keeps a document in its state writes it once, not at every snapshot.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from engine.blobs import (
    MIN_BYTES,
    MIN_FLOOR,
    BlobRef,
    big_texts,
    digest_of,
    filled,
    pointer,
    refs_in,
    swapped,
)
from engine.chain import Draft
from engine.delta import Op, State, fold
from engine.errors import BlobError
from engine.events import EventType
from engine.partitioning import partition_for

# Chunks stay well under Kafka's 1 MiB record limit and a produce batch of the log.
CHUNK_BYTES = 256 * 1024
CACHE_BYTES = 64 * 1024 * 1024


class BlobStore(ABC):
    """Immutable byte strings on some partition, found again by where they lie.

    It has the events topic's partitions: a thread's blobs go to its own partition.
    """

    partitions: int

    def put(self, partition: int, digest: str, data: bytes) -> BlobRef:
        """Write `data` (whose digest the caller computed) in chunks; durable on return."""
        chunks = [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
        offsets = self._write(partition, digest.encode("ascii"), chunks)
        return BlobRef(digest, len(data), partition, tuple(offsets))

    def get(self, ref: BlobRef) -> bytes:
        """The bytes `ref` names; BlobError if they are gone or are not what it says."""
        data = b"".join(self._read(ref))
        if len(data) != ref.size or digest_of(data) != ref.digest:
            raise BlobError(f"blob {ref.digest} at partition {ref.partition} offsets "
                            f"{list(ref.offsets)} does not hold the bytes it names",
                            digest=ref.digest)
        return data

    @abstractmethod
    def _write(self, partition: int, key: bytes, chunks: list[bytes]) -> list[int]:
        """Append the chunks under `key`, acknowledged; their offsets, in order."""

    @abstractmethod
    def _read(self, ref: BlobRef) -> list[bytes]:
        """The chunks at `ref.offsets`; BlobError for one that is not there."""

    def close(self) -> None:  # noqa: B027 — stores that hold nothing open need nothing
        """Release connections."""


class Blobs:
    """Offloads the large texts of drafts and fills them back into states.

    `min_bytes` 0 offloads nothing (events carry every text inline, as before blobs
    existed, and engine.sizing's limit applies to them) while pointers written
    earlier are still read. Without a store nothing is offloaded either, and a state
    that holds a pointer cannot be read for a node (BlobError).
    """

    def __init__(self, store: BlobStore | None = None, *, min_bytes: int = MIN_BYTES,
                 cache_bytes: int = CACHE_BYTES) -> None:
        if 0 < min_bytes < MIN_FLOOR:  # a pointer's own texts must never count as large
            raise ValueError(f"min_bytes must be 0 or at least {MIN_FLOOR}, got {min_bytes}")
        self.store = store
        self.min_bytes = min_bytes if store is not None else 0
        self._cache = _TextCache(cache_bytes)
        self._memo = _PointerMemo()

    def stored(self, draft: Draft, prior: State) -> Draft:
        """`draft` with its large texts written to the store and pointers in their place.

        `prior` is the stored state the draft follows ({} for a thread's first event).
        When the prior holds pointers the state after is folded again from it: the
        node saw their texts and the state it returned holds them, the log must not.
        """
        # A node's recorded I/O only: the io of a pause or decision holds the answers
        # interrupt() returns, which the engine reads back as they are.
        io = draft.io if draft.type is EventType.NODE_COMPLETED else None
        texts = big_texts([draft.delta, io], self.min_bytes) if self.min_bytes else []
        if texts or self._memo.fields(prior):
            pointers = {text: pointer(self._ref_for(text, draft.thread_id)) for text in texts}
            delta = swapped(draft.delta, pointers)
            draft = replace(draft, delta=delta, io=swapped(io, pointers) if io else draft.io,
                            state_after=fold(prior, delta))
        self._memo.after(prior, draft.delta, draft.state_after)
        return draft

    def resolved(self, state: State) -> State:
        """`state` with every pointer replaced by its text (`state` itself if none)."""
        fields = self._memo.fields(state)
        if not fields:
            return state
        texts = {ref.digest: self._text(ref) for f in fields for ref in refs_in(state[f])}
        return {**state, **{f: filled(state[f], texts) for f in fields}}

    def filled_in(self, value: Any) -> Any:
        """Any value (a delta, say) with its pointers replaced by their texts."""
        refs = refs_in(value)
        return filled(value, {ref.digest: self._text(ref) for ref in refs}) if refs else value

    def check(self, ref: BlobRef) -> str | None:
        """Why the store does not give `ref`'s bytes back whole, or None if it does.

        Read from the store itself, not the cache: this is an auditor's question.
        """
        if self.store is None:
            return f"points at blob {ref.digest}, but no blob store is configured"
        try:
            self.store.get(ref)
        except BlobError as e:
            return str(e)
        return None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def _ref_for(self, text: str, thread_id: str) -> BlobRef:
        known = self._cache.ref_of(text)
        if known is not None:
            return known
        data = text.encode("utf-8")
        digest = digest_of(data)
        known = self._cache.ref_by_digest(digest)
        if known is None:
            assert self.store is not None
            partition = partition_for(thread_id, self.store.partitions)
            known = self.store.put(partition, digest, data)
        self._cache.keep(text, known)
        return known

    def _text(self, ref: BlobRef) -> str:
        known = self._cache.text_of(ref.digest)
        if known is not None:
            return known
        if self.store is None:
            raise BlobError(f"the state points at blob {ref.digest}, and no blob store is "
                            "configured to read it", digest=ref.digest)
        text = self.store.get(ref).decode("utf-8")
        self._cache.keep(text, ref)
        return text


class _PointerMemo:
    """Which fields of a state hold a pointer, remembered per state object.

    The state a step seals becomes the next step's state (engine.ledger.advance keeps
    the sealed object), so its answer is worked out from the delta when it is sealed
    (`after`): a long message list is not walked at every step. Any other state (read
    from the projection, folded from the log) is walked once. States and their values
    are never changed in place.
    """

    # It keeps the states it answers for alive (so that an id is not reused): a few
    # dozen current states is what the speed-up needs, not every state ever read.
    _CAPACITY = 64

    def __init__(self) -> None:
        self._seen: dict[int, tuple[State, frozenset[str]]] = {}  # id → (state kept alive, …)

    def fields(self, state: State) -> frozenset[str]:
        hit = self._seen.get(id(state))
        if hit is not None and hit[0] is state:
            return hit[1]
        return self._keep(state, frozenset(f for f, v in state.items() if _holds(v)))

    def after(self, prior: State, delta: list[Op], state: State) -> None:
        """Remember `state` = fold(prior, delta) from prior's answer and the delta alone."""
        fields = set(self.fields(prior))
        for op in delta:
            field = op["field"]
            if op["op"] == "unset" or (op["op"] == "set" and not _holds(op["value"])):
                fields.discard(field)
            elif op["op"] == "merge":  # keys it overwrites may have held the pointers
                (fields.add if _holds(state.get(field)) else fields.discard)(field)
            elif _holds(op.get("value", op.get("values"))):
                fields.add(field)
        self._keep(state, frozenset(fields))

    def _keep(self, state: State, fields: frozenset[str]) -> frozenset[str]:
        if len(self._seen) >= self._CAPACITY:
            self._seen.clear()  # cheaper than tracking use; states are walked again
        self._seen[id(state)] = (state, fields)
        return fields


def _holds(value: Any) -> bool:
    # a pointer is an object: a text or a number cannot be one, nor hold one
    return (type(value) is dict or type(value) is list) and bool(refs_in(value))


class _TextCache:
    """Texts and where they lie, least recently used dropped past a byte budget.

    Keyed by the text too: a text object met again (the same document in the next
    step's state) is found by identity, without hashing its bytes again.
    """

    def __init__(self, budget: int) -> None:
        self._budget, self._used = budget, 0
        self._by_digest: OrderedDict[str, tuple[str, BlobRef]] = OrderedDict()
        self._by_text: dict[str, str] = {}
        self._lock = threading.Lock()

    def ref_of(self, text: str) -> BlobRef | None:
        with self._lock:
            digest = self._by_text.get(text)
            return None if digest is None else self._touch(digest)[1]

    def ref_by_digest(self, digest: str) -> BlobRef | None:
        with self._lock:
            return self._touch(digest)[1] if digest in self._by_digest else None

    def text_of(self, digest: str) -> str | None:
        with self._lock:
            return self._touch(digest)[0] if digest in self._by_digest else None

    def keep(self, text: str, ref: BlobRef) -> None:
        with self._lock:
            if ref.digest in self._by_digest:
                return
            self._by_digest[ref.digest] = (text, ref)
            self._by_text[text] = ref.digest
            self._used += ref.size
            while self._used > self._budget and len(self._by_digest) > 1:
                _, (old, old_ref) = self._by_digest.popitem(last=False)
                del self._by_text[old]
                self._used -= old_ref.size

    def _touch(self, digest: str) -> tuple[str, BlobRef]:
        self._by_digest.move_to_end(digest)
        return self._by_digest[digest]
