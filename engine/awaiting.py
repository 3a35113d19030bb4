"""Async nodes under a synchronous runner: an awaitable result is run to completion.

Nodes that call models usually do it with async clients. The runner and the
workers are synchronous (each step waits for its broker ack anyway), so an
`async def` node's coroutine runs on one event loop that lives for the whole
process, on a thread of its own, while the calling thread waits. One loop,
not one per call: async clients keep their connections bound to the loop
they were first used on, and a client made once per module must keep
working from one step to the next. It also works when the caller itself runs
inside an event loop, which cannot be re-entered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


class NodeCancelledError(RuntimeError):
    """An async node's task was cancelled: a failure of the node, not of the runner."""


class NodeTimeoutError(TimeoutError):
    """A node's attempt ran past its `timeout_s`: a failure of that attempt, retried
    under the node's policy like any other."""


def settled(result: Any) -> Any:
    """`result`, or what it resolves to if it is awaitable.

    The coroutine runs in a copy of the caller's context (run_coroutine_threadsafe
    schedules it from here), so `interrupt()` finds the node's decisions.
    """
    if not inspect.isawaitable(result):
        return result
    future = asyncio.run_coroutine_threadsafe(_awaited(result), _shared_loop())
    try:
        return future.result()
    except (asyncio.CancelledError, concurrent.futures.CancelledError) as e:
        # asyncio's is a BaseException: it would escape the node's failure handling
        raise NodeCancelledError("the async node's task was cancelled") from e


def settled_within(fn: Callable[..., Any], args: tuple[Any, ...], timeout_s: float,
                   *, node: str) -> Any:
    """settled(fn(*args)), or NodeTimeoutError once `timeout_s` has passed.

    An async node's task is cancelled then. A plain function runs on a thread of
    its own, which Python cannot stop: it is left to finish in the background, so
    a retry may overlap it (its effects share the step's idempotency key).
    """
    future = _async_call(fn, args) if _is_async(fn) else _thread_call(fn, args, node)
    done, _ = concurrent.futures.wait([future], timeout=timeout_s)
    if not done:
        future.cancel()
        raise NodeTimeoutError(f"node {node!r} ran past its timeout of {timeout_s:g} s")
    try:
        return future.result()  # the node's own exception, TimeoutError included, as raised
    except (asyncio.CancelledError, concurrent.futures.CancelledError) as e:
        raise NodeCancelledError("the async node's task was cancelled") from e


def _is_async(fn: Callable[..., Any]) -> bool:
    # an object whose __call__ is `async def` counts too
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _async_call(fn: Callable[..., Any], args: tuple[Any, ...]) -> concurrent.futures.Future[Any]:
    return asyncio.run_coroutine_threadsafe(_awaited(fn(*args)), _shared_loop())


def _thread_call(fn: Callable[..., Any], args: tuple[Any, ...],
                 node: str) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    context = contextvars.copy_context()  # interrupt() finds the node's decisions there

    def run() -> None:
        if not future.set_running_or_notify_cancel():  # timed out before it began
            return
        try:
            future.set_result(settled(context.run(fn, *args)))
        except BaseException as e:  # handed to the caller, which decides what it means
            future.set_exception(e)

    # a thread per call, not a pool: one that never returns must not hold up the next
    threading.Thread(target=run, name=f"amber-node-{node}", daemon=True).start()
    return future


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _shared_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="amber-async-nodes",
                             daemon=True).start()
        return _loop
