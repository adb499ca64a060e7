"""Waiting with a time limit where there may be no current asyncio Task.

The handshake is a coroutine stepped by callbacks (``_handler._go_on``) and is given a Task
only once it has to wait, so its first ``await`` can run with no current task. Since
Python 3.12 ``asyncio.wait_for`` is built on ``asyncio.timeout``, which raises
``RuntimeError("Timeout should be used inside a task")`` there; :func:`within` does the
same job with ``asyncio.wait``, which needs no current task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["within"]

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """The result of ``awaitable``, or ``asyncio.TimeoutError`` once ``seconds`` have passed
    (None: no limit). Like ``wait_for``, a timeout or a cancellation cancels ``awaitable``."""
    future = asyncio.ensure_future(awaitable)
    if seconds is None:
        return await future
    try:
        done, _ = await asyncio.wait((future,), timeout=seconds)
    except asyncio.CancelledError:
        future.cancel()
        raise
    if not done:
        future.cancel()
        raise asyncio.TimeoutError
    return future.result()
