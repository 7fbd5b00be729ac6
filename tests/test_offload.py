"""The lean worker-thread hop that embedded Chroma queries take (genkit_parity._offload)."""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import threading

import pytest

from genkit_parity._offload import run_in_worker

_who: contextvars.ContextVar[str] = contextvars.ContextVar('who', default='nobody')


async def test_a_call_runs_off_the_loop_thread_in_the_callers_context():
    _who.set('caller')
    loop_thread = threading.get_ident()

    def work() -> tuple[int, str]:
        _who.set('worker')  # set in a copy: the caller's value stays
        return threading.get_ident(), _who.get()

    ran_on, seen = await run_in_worker(lambda: (threading.get_ident(), _who.get()))
    assert ran_on != loop_thread and seen == 'caller'
    await run_in_worker(work)
    assert _who.get() == 'caller'


async def test_an_error_reaches_the_caller_as_it_was_raised():
    def fail() -> None:
        raise KeyError('gone')

    with pytest.raises(KeyError, match='gone'):
        await run_in_worker(fail)
    assert await run_in_worker(lambda: 7) == 7  # the worker survives it


async def test_concurrent_calls_run_in_parallel_and_a_cancelled_wait_leaves_the_call_running():
    # Two calls that each wait for the other can only finish on two threads.
    barrier = threading.Barrier(2, timeout=10)
    assert await asyncio.gather(run_in_worker(barrier.wait), run_in_worker(barrier.wait)) in ([0, 1], [1, 0])

    release, finished = threading.Event(), threading.Event()

    def slow() -> None:
        release.wait(10)
        finished.set()

    waiting = asyncio.ensure_future(run_in_worker(slow))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    assert await asyncio.to_thread(finished.wait, 10)
    assert await run_in_worker(lambda: 'next') == 'next'


def test_a_forked_child_starts_its_own_workers():
    async def ident() -> int:
        return await run_in_worker(threading.get_ident)

    asyncio.run(ident())  # the parent has a worker now, which the child does not inherit
    pid = os.fork()
    if pid == 0:
        try:
            signal.alarm(30)  # a child waiting on a parent's worker dies instead of hanging
            os._exit(0 if asyncio.run(ident()) != threading.get_ident() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
