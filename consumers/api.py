"""The HTTP API (`amber serve`): start threads, post decisions, read threads and history.

    POST /threads                    start a thread on the workers          202
    POST /threads/{id}/decisions     the approval webhook                   202
    GET  /threads                    list (status, graph, limit, offset)
    GET  /threads/{id}               one thread, with its current state
    GET  /threads/{id}/history       accepted events, paged by after_seq
    GET  /threads/{id}/state         the state at the head or after ?seq=N
    GET  /healthz                    liveness, no authentication
    GET  /openapi.json               this API's OpenAPI schema

Every endpoint but /healthz is authenticated (consumers.api_auth); the actor
recorded on an event is the authenticated identity. Refusals are raised
before anything is appended and mapped to HTTP in consumers.api_errors.
Handlers are plain functions: FastAPI runs them on its thread pool, since the
ports block (Kafka acks, projection catch-up).

`create_app(cp=..., graphs=..., auth=...)` takes its adapters, so tests run
it on the in-memory log; `app_from_env()` wires Kafka + PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request, Response, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from consumers import api_errors
from consumers.api_auth import AuthConfig, Authenticator, Identity, SignedRequest
from consumers.api_commands import Answer, Commands, thread_id_for_key
from consumers.api_errors import UnpinnedWebhookError
from consumers.api_models import (
    GRAPH_PATTERN,
    ID_PATTERN,
    MAX_SEQ,
    CancelRequest,
    CancelResponse,
    DecisionRequest,
    DecisionResponse,
    ErrorResponse,
    ForkRequest,
    ForkResponse,
    Health,
    HistoryPage,
    StartRequest,
    StartResponse,
    StateOut,
    Status,
    ThreadList,
    ThreadOut,
    thread_of,
)
from engine.checkpointer import Checkpointer
from engine.events import ENGINE_VERSION
from engine.graph import CompiledGraph

REPLAYED_HEADER = "Idempotent-Replayed"
ThreadPath = Annotated[str, Path(min_length=1, max_length=200, pattern=ID_PATTERN,
                                 description="thread id")]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255,
    description="retrying with the same key returns the first answer. On a start without "
    "thread_id it also names the thread (uuid5 of actor and key); a decision that sends "
    "one must name its interrupt_id, by which its retry is recognised")]

_bearer = HTTPBearer(auto_error=False, scheme_name="BearerToken",
                     description="a token from AMBER_API_TOKENS")
_signature = APIKeyHeader(name="X-Amber-Signature", auto_error=False,
                          scheme_name="WebhookSignature",
                          description="sha256=<hex HMAC-SHA256 with AMBER_WEBHOOK_SECRET of "
                          "'v1\\n<X-Amber-Timestamp>\\n<METHOD>\\n<path?query>\\n"
                          "<X-Amber-Actor>\\n' followed by the raw body>")


Bearer = Annotated[Any, Security(_bearer)]
Signature = Annotated[Any, Security(_signature)]


async def _identify(request: Request) -> Identity:
    check: Any = request.app.state.check_auth
    identity: Identity = await check(request)
    return identity


async def _reader(request: Request, _b: Bearer) -> Identity:
    return await _identify(request)


async def _writer(request: Request, _b: Bearer, _s: Signature,
                  _actor: Annotated[str | None, Header(
                      alias="X-Amber-Actor", description="who signed (HMAC only)")] = None,
                  _at: Annotated[str | None, Header(
                      alias="X-Amber-Timestamp",
                      description="unix seconds when signed, within 300 s of the "
                      "server's clock (HMAC only)")] = None,
                  ) -> Identity:
    return await _identify(request)


Reader = Annotated[Identity, Depends(_reader)]
Writer = Annotated[Identity, Depends(_writer)]


# A waiting request holds one pooled connection (the reader no longer needs a
# second), so up to pool - 1 may wait while one serves reads. 3 of 4 queued
# HITL requests for 74 of their 93 ms in bench/workers.py.
_API_POOL = 12

def _target(request: Request) -> str:
    """The percent-encoded path and query as they reach the app: what a webhook signs."""
    raw = request.scope.get("raw_path") or request.url.path.encode("utf-8")
    query = request.scope.get("query_string") or b""
    # surrogateescape: any raw byte survives the round trip back to bytes in signed_message
    return (raw + (b"?" + query if query else b"")).decode("utf-8", "surrogateescape")


T = TypeVar("T")


def _reply(answer: Answer[T], response: Response) -> T:
    """The answer's body; a retry's first answer is marked as replayed."""
    if answer.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return answer.body


def _new_thread(who: Identity, given: str | None, key: str | None, what: str) -> tuple[str, bool]:
    """The new thread's id, and whether the Idempotency-Key derived it: the id named,
    else the key's (a retry makes nothing new), else a random one. A signed request must
    name it, so that a replay of it repeats instead of making another thread."""
    if given is not None:
        return given, False
    if who.method == "hmac":
        raise UnpinnedWebhookError(f"a signed {what} must name its thread_id, so that a "
                                   "replay of it repeats instead of making another thread")
    return (thread_id_for_key(who.actor, key), True) if key else (str(uuid.uuid4()), False)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in (401, 422, 503, *codes)}


def create_app(*, cp: Checkpointer, graphs: Iterable[CompiledGraph],
               auth: AuthConfig) -> FastAPI:
    """The API over `cp`, serving `graphs` (by their names), accepting `auth`."""
    commands = Commands(cp=cp, graphs=graphs, max_waiting=_API_POOL - 1)
    authenticator = Authenticator(auth)
    app = FastAPI(title="Amber", version=ENGINE_VERSION,
                  description="Durable execution for AI agent graphs: start threads, answer "
                  "interrupts, read state and history. Workers run the nodes.")
    app.state.commands = commands
    app.state.auth_enabled = auth.enabled

    async def check_auth(request: Request) -> Identity:
        allow_hmac = request.method == "POST"
        signed = SignedRequest(method=request.method, target=_target(request),
                            body=await request.body() if allow_hmac else b"")
        return authenticator.identify(request.headers, signed, allow_hmac=allow_hmac)

    app.state.check_auth = check_auth
    api_errors.install(app)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    def healthz() -> Health:
        """Liveness: the process answers (no authentication, touches no backend)."""
        return Health(status="ok")

    @app.post("/threads", status_code=202, response_model=StartResponse, tags=["threads"],
              responses=_errors(409))
    def start_thread(request_body: Annotated[StartRequest, Body()], who: Writer,
                     response: Response, idempotency_key: IdempotencyKey = None,
                     ) -> StartResponse:
        """Start a thread of a served graph; workers run it. Retries are answered once."""
        thread_id, from_key = _new_thread(who, request_body.thread_id, idempotency_key,
                                          "start")
        answer = commands.start(graph_name=request_body.graph, thread_id=thread_id,
                                input=request_body.input, actor=who.actor, from_key=from_key)
        return _reply(answer, response)

    @app.post("/threads/{thread_id}/forks", status_code=202, response_model=ForkResponse,
              tags=["threads"], responses=_errors(404, 409))
    def post_fork(thread_id: ThreadPath, request_body: Annotated[ForkRequest, Body()],
                  who: Writer, response: Response,
                  idempotency_key: IdempotencyKey = None) -> ForkResponse:
        """Start a thread from checkpoint `seq` of this one, going on as it would have from
        there: it waits on the same question if this thread was waiting there (answer it
        with a decision), else workers run its next node. Retries are answered once."""
        fork_id, from_key = _new_thread(who, request_body.thread_id, idempotency_key, "fork")
        answer = commands.fork(source_id=thread_id, seq=request_body.seq, thread_id=fork_id,
                               reason=request_body.reason, actor=who.actor, from_key=from_key)
        return _reply(answer, response)

    @app.post("/threads/{thread_id}/cancel", status_code=202, response_model=CancelResponse,
              tags=["threads"], responses=_errors(404, 409))
    def post_cancel(thread_id: ThreadPath, request_body: Annotated[CancelRequest, Body()],
                    who: Writer, response: Response) -> CancelResponse:
        """Stop the thread for good, waiting or running, recording who and why; an open
        question is closed. A repeat by the same actor gets the first answer."""
        answer = commands.cancel(thread_id=thread_id, reason=request_body.reason,
                                 actor=who.actor)
        return _reply(answer, response)

    @app.post("/threads/{thread_id}/decisions", status_code=202,
              response_model=DecisionResponse, tags=["threads"], responses=_errors(404, 409))
    def post_decision(thread_id: ThreadPath, request_body: Annotated[DecisionRequest, Body()],
                      who: Writer, response: Response,
                      idempotency_key: IdempotencyKey = None) -> DecisionResponse:
        """Answer the open interrupt (the approval webhook). Workers then continue the thread.

        An identical retry (same actor, value and interrupt) gets the first answer.
        """
        # A retry is recognised from the log (same actor, value, interrupt), not by its key:
        # unpinned, a retry after the thread moved on would answer the next interrupt.
        if request_body.interrupt_id is None and who.method == "hmac":
            raise UnpinnedWebhookError("a signed decision must name its interrupt_id, so "
                                       "that a replay of it cannot answer a later interrupt")
        if request_body.interrupt_id is None and idempotency_key is not None:
            raise UnpinnedWebhookError("a decision sent with an Idempotency-Key must name its "
                                       "interrupt_id: its retry is recognised by it, and "
                                       "would otherwise answer a later interrupt")
        answer = commands.decide(thread_id=thread_id, value=request_body.value,
                                 interrupt_id=request_body.interrupt_id,
                                 reason=request_body.reason, actor=who.actor)
        return _reply(answer, response)

    @app.get("/threads", response_model=ThreadList, tags=["threads"], responses=_errors())
    def list_threads(
            who: Reader, status: Status | None = None,
            graph: Annotated[str | None, Query(min_length=1, max_length=200,
                                               pattern=GRAPH_PATTERN)] = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100,
            offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> ThreadList:
        """Threads, most recently updated first (e.g. ?status=interrupted: open interrupts)."""
        return commands.list_threads(status=status, graph=graph, limit=limit, offset=offset)

    @app.get("/threads/{thread_id}", response_model=ThreadOut, tags=["threads"],
             responses=_errors(404))
    def get_thread(thread_id: ThreadPath, who: Reader) -> ThreadOut:
        """One thread: status, head, open interrupt and current state."""
        return thread_of(commands.thread(thread_id))

    @app.get("/threads/{thread_id}/history", response_model=HistoryPage, tags=["threads"],
             responses=_errors(404))
    def get_history(thread_id: ThreadPath, who: Reader,
                    after_seq: Annotated[int, Query(ge=-1, le=MAX_SEQ)] = -1,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> HistoryPage:
        """Accepted events with seq > after_seq, oldest first."""
        return commands.history(thread_id, after_seq=after_seq, limit=limit)

    @app.get("/threads/{thread_id}/state", response_model=StateOut, tags=["threads"],
             responses=_errors(404))
    def get_state(thread_id: ThreadPath, who: Reader,
                  seq: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
                  texts: Annotated[bool, Query(description="fill blob pointers with their "
                                               "texts")] = False) -> StateOut:
        """The state after `seq` (default: the head), rebuilt from the checkpoints; large
        texts as the log keeps them, blob pointers, unless ?texts=true."""
        return commands.state(thread_id, seq, texts=texts)

    return app


def app_from_env(refs: list[str] | None = None) -> tuple[FastAPI, Checkpointer]:
    """The API on Kafka + PostgreSQL from AMBER_* variables; the caller closes the checkpointer.

    Graphs come from `refs` (MODULE:ATTR), else AMBER_GRAPHS.
    """
    from consumers.checkpointer import AmberCheckpointer
    from consumers.graphs import graph_refs, load_graph
    from engine.settings import Settings

    settings = Settings.from_env()
    auth = AuthConfig.from_env()
    graphs = [load_graph(ref) for ref in graph_refs(refs or [])]
    cp = AmberCheckpointer.from_settings(settings, role="api", pool_size=_API_POOL)
    cp.log.check_partitions()  # a miscounted server fails at startup, not on every request
    return create_app(cp=cp, graphs=graphs, auth=auth), cp
