"""Dynamic interrupts: `interrupt(payload)` pauses a node for outside input.

On first execution `interrupt` raises NodeInterrupt (control flow, not an
error); the runner records `Interrupted` and stops. When a decision arrives
the node runs again from the top and the same call returns the decision.
A node may interrupt several times; calls are matched to decisions in order.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


class NodeInterrupt(Exception):
    """Raised by `interrupt` when no decision is available yet."""

    def __init__(self, payload: Any) -> None:
        super().__init__("node interrupted for outside input")
        self.payload = payload


@dataclass(slots=True)
class ResumeScope:
    """Decisions available to the node running now, consumed in call order."""

    values: list[Any] = field(default_factory=list)
    used: int = 0


_scope: ContextVar[ResumeScope | None] = ContextVar("amber_resume_scope", default=None)


def interrupt(payload: Any = None) -> Any:
    """Pause for a human; returns their decision once the thread is resumed."""
    scope = _scope.get()
    if scope is None:
        raise RuntimeError("interrupt() can only be called inside a running node")
    if scope.used < len(scope.values):
        scope.used += 1
        return scope.values[scope.used - 1]
    raise NodeInterrupt(payload)


def enter(values: list[Any]) -> object:
    """Install the decisions for a node run; returns a token for `leave`."""
    return _scope.set(ResumeScope(values=list(values)))


def leave(token: object) -> None:
    _scope.reset(token)  # type: ignore[arg-type]
