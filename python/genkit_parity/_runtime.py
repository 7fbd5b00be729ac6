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
from collections.abc import Callable, Coroutine
from typing import Any

from . import _native

__all__ = ['begin', 'call', 'current_bridge', 'sleep']


class _LoopBridge:
    """The completion queue of one event loop, and the futures waiting on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.queue = _native.CompletionQueue()
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self._fd = self.queue.fileno()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._on_ready)

    async def wait(self, job_id: int) -> Any:
        """Await job ``job_id`` of this queue.

        Only ``_on_ready``, on this loop, resolves it, so registering after the job was
        started cannot miss its result.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[job_id] = future
        try:
            return await future
        finally:
            self.waiting.pop(job_id, None)

    def _on_ready(self) -> None:
        # Read the wake-up bytes first, then drain: a job finishing in between writes a
        # fresh byte, so nothing is left unannounced.
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 65536)
        for job_id, ok, value in self.queue.drain():
            future = self.waiting.pop(job_id, None)
            if future is None or future.done():
                continue  # its awaiter was cancelled; the job still ran to completion
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


_bridges: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopBridge] = weakref.WeakKeyDictionary()


def _bridge(loop: asyncio.AbstractEventLoop) -> _LoopBridge:
    bridge = _bridges.get(loop)
    if bridge is None:
        bridge = _bridges[loop] = _LoopBridge(loop)
    return bridge


async def call(start: Callable[[_native.Ticket], None]) -> Any:
    """Start a core job with a fresh ticket (``start(ticket)``) and await its result.

    Jobs run to completion even if the awaiting task is cancelled, so a write is never
    half-done.
    """
    bridge = current_bridge()
    ticket = bridge.queue.ticket()
    start(ticket)
    return await bridge.wait(ticket.id)


def begin(start: Callable[[_native.Ticket], None]) -> Coroutine[Any, Any, Any]:
    """:func:`call` in two steps: ``start(ticket)`` runs now, the result is awaited later.

    Between the two the caller may run plain code (no ``await``: the result is only
    registered for once this is awaited), e.g. let go of what the job has copied.
    """
    bridge = current_bridge()
    ticket = bridge.queue.ticket()
    start(ticket)
    return bridge.wait(ticket.id)


async def sleep(seconds: float) -> None:
    """Sleep on the core's timers (tokio); cancelling the caller cancels the timer."""
    bridge = current_bridge()
    timer = bridge.queue.start_timer(seconds)
    try:
        await bridge.wait(timer)
    except asyncio.CancelledError:
        bridge.queue.cancel_timer(timer)
        raise


def current_bridge() -> _LoopBridge:
    """The completion queue (and waiting futures) of the running event loop."""
    return _bridge(asyncio.get_running_loop())
