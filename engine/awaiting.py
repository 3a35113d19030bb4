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

_CANCELLED = "the async node's task was cancelled"
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
        raise NodeCancelledError(_CANCELLED) from e


def settled_within(fn: Callable[..., Any], args: tuple[Any, ...], timeout_s: float,
                   *, node: str) -> Any:
    """settled(fn(*args)), or NodeTimeoutError once `timeout_s` has passed.

    Whatever is awaited, an `async def` node or a coroutine a plain function returns,
    is cancelled then. A plain function runs on a thread of its own, which Python
    cannot stop: it is left to finish in the background, so a retry may overlap it
    (its effects share the step's idempotency key).
    """
    attempt = _Attempt(contextvars.copy_context())  # interrupt() finds the decisions there
    if _is_async(fn):
        attempt.awaiting(fn(*args))
    else:
        threading.Thread(target=attempt.calling, args=(fn, args), name=f"amber-node-{node}",
                         daemon=True).start()  # a thread per call: a stuck one holds no other
    done, _ = concurrent.futures.wait([attempt.outcome], timeout=timeout_s)
    if not done:
        attempt.stop()
        raise NodeTimeoutError(f"node {node!r} ran past its timeout of {timeout_s:g} s")
    return attempt.outcome.result()  # the node's own exception, as raised


def _is_async(fn: Callable[..., Any]) -> bool:
    # an object whose __call__ is `async def` counts too
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


class _Attempt:
    """One timed run of a node: its outcome, and the task to cancel if it is late."""

    def __init__(self, context: contextvars.Context) -> None:
        self.outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._context = context
        self._lock = threading.Lock()
        self._task: concurrent.futures.Future[Any] | None = None
        self._stopped = False

    def calling(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Run a plain function (on its own thread); await what it returns, if anything."""
        try:
            result = self._context.run(fn, *args)
        except BaseException as e:  # handed to the caller, which decides what it means
            self.outcome.set_exception(e)
            return
        if inspect.isawaitable(result):
            self.awaiting(result)
        else:
            self.outcome.set_result(result)

    def awaiting(self, awaitable: Awaitable[Any]) -> None:
        """Run it on the shared loop, in the node's context; its end settles the outcome."""
        task = self._context.run(asyncio.run_coroutine_threadsafe, _awaited(awaitable),
                                 _shared_loop())
        with self._lock:
            self._task = task
            if self._stopped:
                task.cancel()
        task.add_done_callback(self._settle)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._task is not None:
                self._task.cancel()

    def _settle(self, task: concurrent.futures.Future[Any]) -> None:
        if self.outcome.done():
            return
        if task.cancelled():  # stop() cancels the task, never the outcome: reported here
            self.outcome.set_exception(NodeCancelledError(_CANCELLED))
        elif (error := task.exception()) is not None:
            self.outcome.set_exception(error)
        else:
            self.outcome.set_result(task.result())


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
