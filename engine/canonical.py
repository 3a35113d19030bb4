"""Canonical JSON: sorted keys, UTF-8, no whitespace, no NaN.

The hash chain and every state hash are computed over these bytes, so the
format never changes without a new hash-recipe version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from engine.errors import CanonicalJSONError


def same_json(a: Any, b: Any) -> bool:
    """Equal as canonical JSON (so true is not 1, unlike Python's ==); False if either has none."""
    try:
        return canonical_text(a) == canonical_text(b)
    except CanonicalJSONError:
        return False


def canonical_text(value: Any) -> str:
    """The canonical JSON text of `value`; raises CanonicalJSONError if it has none."""
    return canonical_bytes(value).decode("utf-8")


def canonical_bytes(value: Any) -> bytes:
    """UTF-8 bytes of the canonical JSON text of `value`; raises CanonicalJSONError.

    A string with a lone surrogate has JSON text but no UTF-8 bytes, so the encoding
    is inside the guard (UnicodeEncodeError is a ValueError).
    """
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise CanonicalJSONError(str(e)) from e


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_hash(state: dict[str, Any]) -> str:
    """sha256 hex of the canonical bytes of a full state."""
    return sha256_hex(canonical_bytes(state))
