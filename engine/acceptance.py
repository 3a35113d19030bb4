"""The acceptance rule of DESIGN.md, as pure functions.

An event is accepted iff its hash is valid for its contents, its seq is the
thread's last accepted seq + 1 and its prev_hash is the last accepted hash.
Everything else is rejected with a reason and never applied. Every reader of
the same log therefore derives the same accepted history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from engine.chain import GENESIS_HASH, hash_is_valid
from engine.events import Event


class Rejection(StrEnum):
    DUPLICATE = "duplicate"  # the very event already accepted at this seq
    STALE_SEQ = "stale_seq"  # a seq already taken by another event
    GAP = "gap"  # a seq beyond head + 1
    BAD_PREV_HASH = "bad_prev_hash"  # right seq, chained to another history
    BAD_HASH = "bad_hash"  # hash does not match the event's contents


@dataclass(frozen=True, slots=True)
class Head:
    """The last accepted event of a thread; Head() is the empty thread."""

    seq: int = -1
    hash: str = GENESIS_HASH


def judge(head: Head, event: Event, *, sealed_here: bool = False) -> Rejection | None:
    """None if `event` is accepted after `head`, else why it is rejected.

    `sealed_here` skips recomputing the hash of an event this process has just
    sealed (engine.chain.seal); anything read from a log is always checked.
    """
    if event.seq <= head.seq:
        same = event.seq == head.seq and event.hash == head.hash
        return Rejection.DUPLICATE if same else Rejection.STALE_SEQ
    if event.seq > head.seq + 1:
        return Rejection.GAP
    if event.prev_hash != head.hash:
        return Rejection.BAD_PREV_HASH
    if not sealed_here and not hash_is_valid(event):
        return Rejection.BAD_HASH
    return None


@dataclass(slots=True)
class History:
    """The accepted and rejected events of one thread, in log order."""

    accepted: list[Event] = field(default_factory=list)
    rejected: list[tuple[Event, Rejection]] = field(default_factory=list)

    @property
    def head(self) -> Head:
        last = self.accepted[-1] if self.accepted else None
        return Head(last.seq, last.hash) if last else Head()


def accepted_history(events: Iterable[Event]) -> History:
    """Apply the rule to one thread's events in the order the log holds them."""
    history = History()
    for event in events:
        reason = judge(history.head, event)
        if reason is None:
            history.accepted.append(event)
        else:
            history.rejected.append((event, reason))
    return history
