"""Large texts out of events: blob pointers, and the walks that place and fill them.

A state value, a delta or recorded I/O may hold a text far bigger than an event
should carry (a document, a model's prompt or answer). Such a text, from
MIN_BYTES of UTF-8 up, is written once to the blob topic and the event holds a
pointer to it instead:

    {"$blob": "sha256:<hex of the text's UTF-8 bytes>", "bytes": N, "at": [partition, offset...]}

The pointer is what the log, the hash chain, the state hash and the projection
hold: every reader folds and verifies threads without reading a blob, and the
sha256 binds the pointer to the exact text. Only the node boundary sees the text
again (engine.blobstore.Blobs.resolved). Objects whose only keys are those three
are reserved for pointers.

Pure functions only: no I/O here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.sizing import text_bytes

BLOB_KEY = "$blob"
_POINTER_KEYS = frozenset({BLOB_KEY, "bytes", "at"})
_DIGEST_PREFIX = "sha256:"
# Texts this long go to the blob topic: a few of them still fit one event beside the
# rest, and below it a pointer and a second write would cost more than they save.
MIN_BYTES = 64 * 1024
MIN_FLOOR = 1024  # the least threshold allowed: far above a pointer's own texts
# Why a value from outside (an input, a node's result, an edit, recorded I/O, a
# decision) is refused: else it could name any blob, another thread's too.
RESERVED = (f"holds an object with only the keys {BLOB_KEY!r}, 'bytes' and 'at', a shape "
            "reserved for blob pointers")


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Where a blob's chunks lie (`offsets`, in order, on `partition`) and what it is."""

    digest: str  # "sha256:<hex>"
    size: int  # bytes of UTF-8
    partition: int
    offsets: tuple[int, ...]


def digest_of(data: bytes) -> str:
    return _DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def pointer(ref: BlobRef) -> dict[str, Any]:
    return {BLOB_KEY: ref.digest, "bytes": ref.size, "at": [ref.partition, *ref.offsets]}


def as_ref(value: Any) -> BlobRef | None:
    """The BlobRef of a pointer object, else None."""
    if type(value) is not dict or BLOB_KEY not in value or value.keys() != _POINTER_KEYS:
        return None
    digest, size, at = value[BLOB_KEY], value["bytes"], value["at"]
    if not (type(digest) is str and digest.startswith(_DIGEST_PREFIX) and type(size) is int
            and type(at) in (list, tuple) and len(at) >= 2 and all(type(n) is int for n in at)):
        return None
    return BlobRef(digest, size, at[0], tuple(at[1:]))


def big_texts(value: Any, min_bytes: int = MIN_BYTES) -> list[str]:
    """Every distinct text inside `value` of at least `min_bytes` (keys aside), in a fixed
    order. Walked without recursion: it runs on every event's delta."""
    found: dict[str, None] = {}
    shortest = -(-min_bytes // 4)  # no UTF-8 character takes more than 4 bytes
    stack = [value]
    while stack:
        v = stack.pop()
        kind = type(v)
        if kind is str:
            if len(v) >= shortest and text_bytes(v) >= min_bytes:
                found[v] = None
        elif kind is dict:
            stack.extend(v.values())
        elif kind is list or kind is tuple:
            stack.extend(v)
    return list(found)


def swapped(value: Any, pointers: Mapping[str, dict[str, Any]]) -> Any:
    """`value` with each text found in `pointers` replaced by its pointer (copies on the way)."""
    return _mapped(value, lambda v: pointers.get(v) if type(v) is str else None)


def refs_in(value: Any) -> list[BlobRef]:
    """Every pointer inside `value`, in the order met."""
    found: list[BlobRef] = []

    def visit(v: Any) -> None:
        if type(v) is dict:
            ref = as_ref(v)
            if ref is not None:
                found.append(ref)
                return
            for inner in v.values():
                visit(inner)
        elif type(v) is list or type(v) is tuple:
            for inner in v:
                visit(inner)

    visit(value)
    return found


def filled(value: Any, texts: Mapping[str, str]) -> Any:
    """`value` with each pointer replaced by its text from `texts` (by digest).

    Returns `value` itself when it holds no pointer, so callers can tell by identity.
    """
    def text(v: Any) -> str | None:
        ref = as_ref(v)
        return None if ref is None else texts[ref.digest]

    return _mapped(value, text)


def _mapped(value: Any, swap: Callable[[Any], Any]) -> Any:
    """`value` with every node `swap` gives a replacement for replaced; containers that hold
    no replaced node are returned as they are (no copy)."""
    new = swap(value)
    if new is not None:
        return new
    if type(value) is dict:
        items = {k: _mapped(v, swap) for k, v in value.items()}
        same = all(items[k] is v for k, v in value.items())
        return value if same else items
    if type(value) is list or type(value) is tuple:  # a tuple's JSON is a list's
        elems = [_mapped(v, swap) for v in value]
        return value if all(a is b for a, b in zip(elems, value, strict=True)) else elems
    return value
