"""The one owner of every MCP client session in the process: a thread with its own loop.

An ``mcp`` ``ClientSession`` (anyio streams, a task group) only works on the event loop
that opened it, while genkit runs flows on the caller's loop and serves the Dev UI's
reflection requests on another thread and loop. So sessions are opened, used and closed
on one dedicated loop, and callers on any loop or thread hand their requests to it and
await the answer (cancelling the caller cancels the request). Rebuilt after fork.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

__all__ = ['close_at_exit', 'on_owner', 'owner_loop', 'run_on_owner', 'run_on_owner_sync']

T = TypeVar('T')

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid: int | None = None


class _Closable(Protocol):
    async def close_on_owner(self) -> None: ...


_at_exit: weakref.WeakSet[Any] = weakref.WeakSet()


def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    loop.run_forever()


def owner_loop() -> asyncio.AbstractEventLoop:
    """The owner's event loop, started on first use (and again in a forked child)."""
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid():
            loop = asyncio.new_event_loop()
            started = threading.Event()
            threading.Thread(
                target=_serve, args=(loop, started), name='genkit-parity-mcp', daemon=True
            ).start()
            started.wait()
            _loop, _pid = loop, os.getpid()
        return _loop


def on_owner() -> bool:
    """Whether the caller runs on the owner's loop."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return running is _loop and _pid == os.getpid()


async def run_on_owner(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the owner's loop and await its result from the caller's loop."""
    if on_owner():
        return await coro
    future = asyncio.run_coroutine_threadsafe(coro, owner_loop())
    return await asyncio.wrap_future(future)


def run_on_owner_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the owner's loop and block for its result (not from the owner's loop)."""
    if on_owner():
        coro.close()
        raise RuntimeError('run_on_owner_sync called on the MCP owner loop')
    future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, owner_loop())
    return future.result(timeout)


def close_at_exit(connection: _Closable) -> None:
    """Close ``connection`` on the owner's loop at interpreter exit, if still alive (stops stdio servers)."""
    _at_exit.add(connection)


def _close_all() -> None:
    if _loop is None or _pid != os.getpid() or not _at_exit:
        return

    async def close() -> None:
        await asyncio.gather(*(c.close_on_owner() for c in list(_at_exit)), return_exceptions=True)

    # Exiting anyway: a server that does not stop in time sees its stdin close.
    with contextlib.suppress(Exception):
        run_on_owner_sync(close(), timeout=5)


atexit.register(_close_all)
