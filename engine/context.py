"""What a node receives besides the state."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from engine.blobs import RESERVED, refs_in
from engine.canonical import canonical_text
from engine.errors import CanonicalJSONError, StateValidationError


def idempotency_key(thread_id: str, seq: int, node: str) -> str:
    """Stable across retries and processes: never change without a version."""
    return f"{thread_id}:{seq}:{node}"


@dataclass(slots=True, kw_only=True)
class NodeContext:
    """Per-step facts and a place to record external inputs (LLM calls, tools).

    `idempotency_key` is the same on every attempt of this step, in any
    process, so side effects can be deduplicated by it.
    """

    thread_id: str
    seq: int
    node: str
    attempt: int
    decision: Any = None
    log: logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.LoggerAdapter(logging.getLogger("amber.node"), {}))
    recorded_io: list[dict[str, Any]] = field(default_factory=list)

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.thread_id, self.seq, self.node)

    def record_io(self, kind: str, request: Any, response: Any) -> None:
        """Keep an external call's request and response in the step's event.

        Refused here, where the node can see why, unless it is JSON: StateValidationError
        fails the step (never retried) naming the node and `io`. Kept as its JSON reads
        back (tuples as lists, str subclasses as str), so a large text in it goes to the
        blob topic like any other; an object shaped like a blob pointer is refused.
        """
        entry = {"kind": kind, "request": request, "response": response}
        try:
            plain = json.loads(canonical_text(entry))
        except CanonicalJSONError as e:
            raise StateValidationError(node=self.node, field="io",
                                       problem=f"recorded {kind!r} call is not JSON: {e}") from e
        if refs_in(plain):
            raise StateValidationError(node=self.node, field="io",
                                       problem=f"recorded {kind!r} call {RESERVED}")
        self.recorded_io.append(plain)
