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
import inspect
import threading
from collections.abc import Awaitable
from typing import Any

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


class NodeCancelledError(RuntimeError):
    """An async node's task was cancelled: a failure of the node, not of the runner."""


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
