"""Errors → HTTP answers, in one place.

Every refusal is a JSON body `{"error": {"code", "message", "details"}}`.
Client mistakes are 4xx; a 5xx means the server or its infrastructure failed
(503 when waiting may help: the projection is behind or Kafka/PostgreSQL is
unreachable). Refusals are raised before anything is appended, so a 4xx
always means the log is unchanged.

    401 unauthenticated        AuthError
    404 thread_not_found       ThreadNotFoundError
    404 checkpoint_not_found   CheckpointNotFoundError
    409 thread_exists          ThreadExistsError
    409 thread_not_waiting     ThreadNotWaitingError
    409 stale_interrupt        StaleInterruptError
    409 conflict               ConflictError (a racing writer appended first)
    409 thread_ended           ThreadEndedError (a cancel of a finished thread)
    409 running_inline         ThreadRunningInlineError (a cancel of an inline run)
    409 thread_busy            ThreadBusyError (an edit that would disturb a step under way)
    409 nothing_to_run         ForkError (a fork of a checkpoint after which nothing would
                               run, or that fails its integrity check)
    409 graph_mismatch         GraphMismatchError, GraphNotServedError
    409 idempotency_mismatch   IdempotencyMismatchError
    409 not_on_workers         NotOnWorkersError (the thread runs inline)
    413 event_too_large        EventTooLargeError (an input, a decision or a fork over
                               the log's per-event limit)
    422 invalid_request        request validation (body, query, path, headers)
    422 unknown_graph          UnknownGraphError
    422 unpinned_webhook       UnpinnedWebhookError (a signed or keyed request without the
                               thread_id / interrupt_id that makes its replay a repeat)
    422 invalid_decision       InvalidDecisionError
    422 invalid_input          StateValidationError, CanonicalJSONError, RouteError,
                               UnstorableTextError (a NUL past the request models)
    503 projection_behind      CatchUpTimeoutError
    503 unavailable            EventLogError, any other AmberError with retryable=True
    500 blob_unreadable        BlobError (a text the state points at is gone or altered;
                               `amber verify` names every such pointer)
    500 internal               anything else (a bug, or the server is misconfigured)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumers.api_auth import AuthError
from engine.errors import (
    AmberError,
    BlobError,
    CanonicalJSONError,
    ConflictError,
    EventLogError,
    EventTooLargeError,
    ForkError,
    GraphMismatchError,
    InvalidDecisionError,
    RunError,
    StaleInterruptError,
    StateValidationError,
    ThreadBusyError,
    ThreadEndedError,
    ThreadExistsError,
    ThreadNotWaitingError,
    ThreadRunningInlineError,
    UnstorableTextError,
)
from engine.projection import CatchUpTimeoutError, CheckpointNotFoundError, ThreadNotFoundError
from engine.step import RouteError

log = logging.getLogger("amber.api")


class UnknownGraphError(AmberError):
    """POST /threads named a graph this server does not serve."""


class GraphNotServedError(AmberError):
    """The thread runs a graph this server does not serve, so it cannot validate a decision."""


class NotOnWorkersError(RunError):
    """A decision for a thread run inline: no worker would continue it (use `amber resume`)."""


class UnpinnedWebhookError(AmberError):
    """A signed request that does not name its thread (start) or interrupt (decision), or
    a decision sent with an Idempotency-Key that does not name its interrupt.

    A signature stays valid for a few minutes; pinned, a replay of it in that time
    is an identical retry, answered as the first.
    """


class IdempotencyMismatchError(RunError):
    """A retried start (same thread id) whose actor, graph or input differs from the first."""


# (exception type, status, code); the first matching row wins, so subclasses come first.
_TABLE: list[tuple[type[Exception], int, str]] = [
    (ThreadNotFoundError, 404, "thread_not_found"),
    (CheckpointNotFoundError, 404, "checkpoint_not_found"),
    (ThreadExistsError, 409, "thread_exists"),
    (ThreadNotWaitingError, 409, "thread_not_waiting"),
    (StaleInterruptError, 409, "stale_interrupt"),
    (ConflictError, 409, "conflict"),
    (GraphMismatchError, 409, "graph_mismatch"),
    (GraphNotServedError, 409, "graph_mismatch"),
    (IdempotencyMismatchError, 409, "idempotency_mismatch"),
    (ForkError, 409, "nothing_to_run"),
    (ThreadEndedError, 409, "thread_ended"),
    (ThreadBusyError, 409, "thread_busy"),
    (ThreadRunningInlineError, 409, "running_inline"),
    (NotOnWorkersError, 409, "not_on_workers"),
    (EventTooLargeError, 413, "event_too_large"),
    (UnknownGraphError, 422, "unknown_graph"),
    (UnpinnedWebhookError, 422, "unpinned_webhook"),
    (InvalidDecisionError, 422, "invalid_decision"),
    (StateValidationError, 422, "invalid_input"),
    (CanonicalJSONError, 422, "invalid_input"),
    (UnstorableTextError, 422, "invalid_input"),
    (RouteError, 422, "invalid_input"),
    (CatchUpTimeoutError, 503, "projection_behind"),
    (EventLogError, 503, "unavailable"),
    (BlobError, 500, "blob_unreadable"),
]
_RETRY_AFTER_S = "1"


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def classify(exc: Exception) -> tuple[int, str]:
    for kind, status, code in _TABLE:
        if isinstance(exc, kind):
            return status, code
    if getattr(exc, "retryable", False):  # e.g. PostgreSQL unreachable: try again later
        return 503, "unavailable"
    return 500, "internal"


async def _amber_error(request: Request, exc: Exception) -> JSONResponse:
    status, code = classify(exc)
    if status >= 500:
        log.warning("request failed: %s %s: %r", request.method, request.url.path, exc)
    headers = {"Retry-After": _RETRY_AFTER_S} if status == 503 else None
    return error_response(status, code, str(exc), headers=headers)


async def _auth_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(401, "unauthenticated", str(exc),
                          headers={"WWW-Authenticate": 'Bearer realm="amber"'})


async def _unauthenticated(request: Request) -> JSONResponse | None:
    """The 401 for `request` if its credentials fail, else None.

    FastAPI parses the body before it runs dependencies, so a request that is
    both unauthenticated and malformed is answered 401: a caller without
    credentials learns nothing from a 422.
    """
    checker = getattr(request.app.state, "check_auth", None)
    if checker is None:
        return None
    try:
        await checker(request)
    except AuthError as e:
        return await _auth_error(request, e)
    return None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    denied = await _unauthenticated(request)
    if denied is not None:
        return denied
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    details = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
                "type": str(e.get("type", ""))} for e in errors]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return error_response(422, "invalid_request", f"{where}: {first['msg']}", details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. not UTF-8)
        denied = await _unauthenticated(request)
        return denied or error_response(422, "invalid_request",
                                        f"the body is not UTF-8 JSON ({exc.detail})")
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", f"internal error ({type(exc).__name__})")


def install(app: FastAPI) -> None:
    """Register every handler on `app`."""
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(AmberError, _amber_error)
    app.add_exception_handler(RouteError, _amber_error)
    app.add_exception_handler(Exception, _unexpected)
