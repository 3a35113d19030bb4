"""Async nodes under a synchronous runner: an awaitable result is run to completion.

Nodes that call models usually do it with async clients. The runner and the
workers are synchronous (each step waits for its broker ack anyway), so an
`async def` node's coroutine is run on an event loop of its own, created for
the call. Called from inside a running event loop (a sync call from async
code), that loop cannot be re-entered: the coroutine then runs on a worker
thread, in a copy of the caller's context so that `interrupt()` still finds
the node's decisions.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def settled(result: Any) -> Any:
    """`result`, or what it resolves to if it is awaitable."""
    if not inspect.isawaitable(result):
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(result))
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amber-async-node") as pool:
        return pool.submit(context.run, asyncio.run, _awaited(result)).result()


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
