"""Request and response bodies of the HTTP API (pydantic: they are its OpenAPI schema).

Text that ends up in an event or a PostgreSQL row is constrained here, at the
edge: no control characters in ids (a NUL cannot be stored in a text column)
and no lone surrogates anywhere (they have no UTF-8 form), so a request can
never make the log hold a record the projector cannot store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from engine.events import Event, ForkOrigin
from engine.ledger import ThreadView, status_after
from engine.projection import Checkpoint
from engine.service import interrupt_dict

MAX_SEQ = 2**53  # seqs and offsets are bigint; this bound keeps queries in range


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _addressable(value: str) -> str:
    # "." and ".." are dot segments: clients and proxies drop them from a URL path, so
    # /threads/./decisions would never reach the thread
    if value in (".", ".."):
        raise ValueError("must not be '.' or '..', which a URL path cannot carry")
    return value


# Printable characters except "/" (ids travel in URL paths), no blanks at the ends.
ID_PATTERN = r"^[^\x00-\x20\x7f/]([^\x00-\x1f\x7f/]*[^\x00-\x20\x7f/])?$"
GRAPH_PATTERN = r"^[^\x00-\x1f\x7f]+$"
ThreadId = Annotated[str, Field(min_length=1, max_length=200, pattern=ID_PATTERN,
                                examples=["tx-99812"]),
                     AfterValidator(_utf8), AfterValidator(_addressable)]
GraphName = Annotated[str, Field(min_length=1, max_length=200, pattern=GRAPH_PATTERN,
                                 examples=["email_approval"]),
                      AfterValidator(_utf8)]
Text = Annotated[str, Field(max_length=4000), AfterValidator(_utf8), AfterValidator(_no_nul)]
Status = Literal["running", "interrupted", "completed", "failed", "cancelled"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRequest(_Body):
    graph: GraphName = Field(description="name of a graph this server serves")
    thread_id: ThreadId | None = Field(
        default=None, description="default: derived from the Idempotency-Key header, "
        "else a random UUID")
    input: dict[str, Any] = Field(default_factory=dict, description="the graph's input state")


class StartResponse(BaseModel):
    thread_id: str
    graph: str
    status: Status
    seq: int


class ForkRequest(_Body):
    seq: int = Field(ge=0, le=MAX_SEQ, description="the checkpoint of the thread to go on from")
    thread_id: ThreadId | None = Field(
        default=None, description="the fork's id; default: derived from the "
        "Idempotency-Key header, else a random UUID")
    reason: Text | None = None


class DecisionRequest(_Body):
    value: Any = Field(description="the decision, any JSON value (e.g. {\"approved\": true})")
    interrupt_id: Text | None = Field(default=None, description="the interrupt answered; "
                                      "recommended, so a late retry cannot answer a later one")
    reason: Text | None = None


class DecisionResponse(BaseModel):
    thread_id: str
    seq: int = Field(description="seq of the DecisionRecorded event")
    interrupt_id: str | None
    actor: str | None
    status: Status = Field(description="the thread's status right after the decision")


class CancelRequest(_Body):
    reason: Text | None = None


class CancelResponse(BaseModel):
    thread_id: str
    seq: int = Field(description="seq of the ThreadCancelled event")
    interrupt_id: str | None = Field(description="the question it closed, if one was open")
    actor: str | None
    status: Status


class InterruptOut(BaseModel):
    id: str
    node: str
    when: str
    payload: Any


class ForkOriginOut(BaseModel):
    thread_id: str
    seq: int
    hash: str


class ForkResponse(BaseModel):
    thread_id: str
    graph: str
    status: Status = Field(description="interrupted when the source was waiting (or about to "
                           "pause) there; running when workers go on with a node")
    seq: int
    parent: ForkOriginOut


class ThreadSummary(BaseModel):
    thread_id: str
    graph: str
    status: Status
    seq: int = Field(description="seq of the head event")
    head_hash: str
    mode: str | None
    interrupt: InterruptOut | None
    parent: ForkOriginOut | None
    created_at: datetime
    updated_at: datetime
    integrity_error: str | None


class ThreadOut(ThreadSummary):
    state: dict[str, Any]


class ThreadList(BaseModel):
    threads: list[ThreadSummary]
    limit: int
    offset: int


class StateOut(BaseModel):
    thread_id: str
    seq: int
    status: Status
    state: dict[str, Any]


class EventOut(BaseModel):
    """One accepted event as its Avro record (JSON-valued fields as the exact hashed text)."""

    event_id: str
    thread_id: str
    seq: int
    type: str
    node: str | None
    occurred_at: int = Field(description="microseconds since the Unix epoch, UTC")
    graph: dict[str, str]
    engine_version: str
    actor: str | None
    causation_id: str | None
    delta: str
    state_hash: str
    prev_hash: str
    hash: str
    snapshot: str | None
    interrupt: dict[str, str] | None
    route: str | None
    io: str | None
    error: dict[str, Any] | None
    mode: str | None
    reason: str | None
    parent: dict[str, Any] | None
    kafka_partition: int
    kafka_offset: int


class HistoryPage(BaseModel):
    thread_id: str
    events: list[EventOut]
    next_after_seq: int | None = Field(description="pass as after_seq for the next page; "
                                       "null when this page is the last")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]


def _when(us: int) -> datetime:
    try:
        return datetime.fromtimestamp(us / 1e6, tz=UTC)
    except (OverflowError, OSError, ValueError):  # a clock far outside datetime's range
        return datetime.fromtimestamp(0, tz=UTC)


def _interrupt(view: ThreadView) -> InterruptOut | None:
    open_ = interrupt_dict(view)
    return None if open_ is None else InterruptOut(**open_)


def summary_of(view: ThreadView) -> ThreadSummary:
    parent = view.parent
    return ThreadSummary(
        thread_id=view.thread_id, graph=view.graph, status=view.status,  # type: ignore[arg-type]
        seq=view.head.seq, head_hash=view.head.hash, mode=view.mode, interrupt=_interrupt(view),
        parent=None if parent is None else origin_of(parent),
        created_at=_when(view.created_at), updated_at=_when(view.updated_at),
        integrity_error=view.integrity_error)


def thread_of(view: ThreadView) -> ThreadOut:
    return ThreadOut(**summary_of(view).model_dump(), state=view.state)


def event_of(cp: Checkpoint) -> EventOut:
    return EventOut(**cp.event.to_record(), kafka_partition=cp.position.partition,
                    kafka_offset=cp.position.offset)


def origin_of(parent: ForkOrigin) -> ForkOriginOut:
    return ForkOriginOut(thread_id=parent.thread_id, seq=parent.seq, hash=parent.hash)


def forked_of(first: Event) -> ForkResponse:
    """A ThreadForked event as the fork endpoint answers it."""
    assert first.parent is not None
    return ForkResponse(thread_id=first.thread_id, graph=first.graph.name,
                        status=status_after(None, first),  # type: ignore[arg-type]
                        seq=first.seq, parent=origin_of(first.parent))


def cancel_of(event: Event) -> CancelResponse:
    return CancelResponse(thread_id=event.thread_id, seq=event.seq,
                          interrupt_id=event.causation_id, actor=event.actor, status="cancelled")


def decision_of(event: Event) -> DecisionResponse:
    return DecisionResponse(thread_id=event.thread_id, seq=event.seq,
                            interrupt_id=event.causation_id, actor=event.actor, status="running")
