"""Errors raised by the engine.

    AmberError
    ├── SettingsError            a bad AMBER_* variable, named
    ├── LedgerError              the pure core refused data
    │   ├── DeltaError           a patch operation that cannot apply
    │   ├── CanonicalJSONError   a value with no canonical JSON form
    │   └── IntegrityError       a hash or state_hash that does not match
    ├── EventDecodeError         bytes on the log that are not an event (has partition/offset)
    ├── EventLogError            the log adapter failed (retryable says whether to try again)
    │   └── LogUnavailableError  the broker cannot be reached
    └── BlobError                a blob a pointer names is gone or not what it says
"""

from __future__ import annotations


class AmberError(Exception):
    """Base of every error Amber raises on purpose."""


class SettingsError(AmberError):
    """An AMBER_* environment variable holds a value we cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class LedgerError(AmberError):
    """The pure ledger core refused its input."""


class DeltaError(LedgerError):
    """A patch operation does not apply to the state it was given."""


class CanonicalJSONError(LedgerError):
    """A value cannot be written as canonical JSON (NaN, a set, an object...)."""


class IntegrityError(LedgerError):
    """A recomputed hash or state hash differs from the recorded one."""


class EventDecodeError(AmberError):
    """A record on the log is not a readable event; it names where it lies."""

    def __init__(self, *, partition: int, offset: int, cause: Exception) -> None:
        super().__init__(f"undecodable record at partition {partition} offset {offset}: {cause}")
        self.partition = partition
        self.offset = offset
        self.cause = cause


class MisplacedEventError(AmberError):
    """An event on a partition other than its thread's: written under another key or by
    another partitioner. Readers that follow one thread never see it, so every reader
    treats it as undecodable rather than accept it only where it happens to be read."""


class EventLogError(AmberError):
    """The event log adapter failed; `retryable` says whether a retry may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class LogUnavailableError(EventLogError):
    """The broker did not answer in time."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class BlobError(AmberError):
    """A blob a state pointer names cannot be read back as the text it was: its record
    is gone, or its bytes do not hash to the pointer's digest."""

    def __init__(self, message: str, *, digest: str) -> None:
        super().__init__(message)
        self.digest = digest


class GraphDefinitionError(AmberError):
    """The graph cannot be compiled: unknown or unreachable node, missing route..."""


class StateValidationError(AmberError):
    """A node's update or the state it produces does not validate or serialize.

    Names the node and the field so the failing step is obvious in the log.
    """

    def __init__(self, *, node: str, field: str | None, problem: str) -> None:
        where = f"node {node!r}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {problem}")
        self.node = node
        self.field = field
        self.problem = problem


class RunError(AmberError):
    """A request to start, resume or edit a thread was refused; nothing was appended."""


class ThreadExistsError(RunError):
    """start() for a thread id that already has events."""


class ThreadNotWaitingError(RunError):
    """resume() for a thread that is not interrupted."""


class StaleInterruptError(RunError):
    """resume() naming an interrupt that is no longer the open one."""


class InvalidDecisionError(RunError):
    """A decision value that is not JSON-serializable or not acceptable."""


class GraphMismatchError(RunError):
    """The thread was started by another graph than the one asked to run it."""


class UnstorableTextError(RunError):
    """A text of the event to append (its field named) holds a NUL character."""


class EventTooLargeError(RunError):
    """The event to append would not fit the log's per-event limit (or the state after
    it would not fit a snapshot); `part` and `field` name what made it big."""

    def __init__(self, message: str, *, part: str, field: str | None, size: int,
                 limit: int) -> None:
        super().__init__(message)
        self.part = part
        self.field = field
        self.size = size
        self.limit = limit


class ThreadEndedError(RunError):
    """cancel() of a thread that already completed or was cancelled by someone else."""


class ThreadRunningInlineError(RunError):
    """cancel() of a thread that a runner may be driving in some process right now."""


class ThreadBusyError(RunError):
    """edit() without as_node while a step is under way that the edit would disturb."""


class ForkError(RunError):
    """fork() from a checkpoint after which nothing would run (the thread ended there)."""


class ConflictError(RunError):
    """Another writer appended to the thread first; our event was rejected."""
