"""Awaiting work the Rust core runs off the GIL (the Python half of ``src/runtime.rs``).

A job started with a ticket runs on the core's worker pool. When it finishes, the core
queues its result and writes a byte to a pipe this event loop watches; the loop drains the
queue and resolves the job's future. No worker thread ever touches the interpreter, so a
job finishing while Python shuts down cannot crash it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Callable
from typing import Any

from . import _native

__all__ = ['call', 'sleep']


class _LoopBridge:
    """The completion queue of one event loop, and the futures waiting on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue = _native.CompletionQueue()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._fd = self._queue.fileno()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._on_ready)

    def submit(
        self, loop: asyncio.AbstractEventLoop, start: Callable[[_native.Ticket], None]
    ) -> tuple[_native.Ticket, asyncio.Future[Any]]:
        ticket = self._queue.ticket()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting[ticket.id] = future
        try:
            start(ticket)
        except BaseException:
            del self._waiting[ticket.id]
            raise
        return ticket, future

    def _on_ready(self) -> None:
        # Read the wake-up bytes first, then drain: a job finishing in between writes a
        # fresh byte, so nothing is left unannounced.
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 65536)
        for job_id, ok, value in self._queue.drain():
            future = self._waiting.pop(job_id, None)
            if future is None or future.done():
                continue  # its awaiter was cancelled; the job still ran to completion
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


_bridges: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopBridge] = weakref.WeakKeyDictionary()


async def call(start: Callable[[_native.Ticket], None]) -> Any:
    """Start a core job with a fresh ticket (``start(ticket)``) and await its result.

    Cancelling the awaiting task stops cancellable jobs (timers) at once; store jobs run
    to completion regardless, so a write is never half-done.
    """
    loop = asyncio.get_running_loop()
    bridge = _bridges.get(loop)
    if bridge is None:
        bridge = _bridges[loop] = _LoopBridge(loop)
    ticket, future = bridge.submit(loop, start)
    try:
        return await future
    except asyncio.CancelledError:
        ticket.cancel()
        raise


async def sleep(seconds: float) -> None:
    """Sleep on the core's timer (tokio); cancelling the caller stops the timer."""
    await call(lambda ticket: _native.sleep(ticket, seconds))
