"""The bridge between the Rust core's workers and asyncio (src/runtime.rs, _runtime.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from genkit_parity import FileSessionStore, SqliteSessionStore
from genkit_parity.stores import NativeSessionStore

from ._proc import spawn_python

EXIT_RIGHT_AFTER_AWAIT = """
async def main():
    store = make_store(sys.argv[1], sys.argv[2])
    await store.save(f'exit-{sys.argv[3]}', {'threads': {}})
asyncio.run(main())
print(json.dumps('done'))
"""


@pytest.mark.parametrize('kind', ['file', 'sqlite'])
def test_process_exits_cleanly_right_after_a_core_job(kind, tmp_path):
    # pyo3-async-runtimes' future_into_py aborted such processes at interpreter shutdown
    # ("Fatal Python error: PyGILState_Release"); our workers never touch Python.
    location = str(tmp_path / ('files' if kind == 'file' else 'db.sqlite'))
    children = [spawn_python(EXIT_RIGHT_AFTER_AWAIT, kind, location, str(i)) for i in range(8)]
    for child in children:
        with child:
            out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert out.strip() == '"done"'


async def append(store: NativeSessionStore, session_id: str, messages: list[str]) -> None:
    """A chat turn's write: ``messages`` appended to thread ``main``."""
    await store._commit(session_id, turn_id=None, expected_version=0, threads=[('main', 0, False, messages)])


def test_stores_shared_by_threads_with_their_own_loops(tmp_path):
    store = SqliteSessionStore(tmp_path / 'db.sqlite')
    files = FileSessionStore(tmp_path / 'files')
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        async def run() -> None:
            for i in range(20):
                message = f'{{"role":"user","content":[{{"text":"{name}-{i}"}}]}}'
                await append(store, 'shared', [message])
                await append(files, 'shared', [message])

        try:
            asyncio.run(run())
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(f'w{n}',)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []

    async def check() -> None:
        for each in (store, files):
            stored = (await each.get('shared'))['threads']['main']
            assert len(stored) == 80
            for n in range(4):
                mine = [
                    m['content'][0]['text'] for m in stored if m['content'][0]['text'].startswith(f'w{n}-')
                ]
                assert mine == [f'w{n}-{i}' for i in range(20)]

    asyncio.run(check())


async def test_cancelled_waiter_does_not_cancel_the_write(tmp_path):
    store = SqliteSessionStore(tmp_path / 'db.sqlite')
    task = asyncio.ensure_future(store.save('kept', {'state': {'n': 1}, 'threads': {}}))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if await store.get('kept') is not None:
            break
        await asyncio.sleep(0.01)
    assert await store.get('kept') == {'id': 'kept', 'state': {'n': 1}, 'threads': {}}


async def test_errors_from_workers_are_typed(tmp_path):
    store = FileSessionStore(tmp_path)
    with pytest.raises(TypeError, match='not valid JSON'):
        await append(store, 's', ['{not json'])
    with pytest.raises(ValueError, match='invalid session id'):
        await append(store, '../s', ['{}'])
    await append(store, 's', ['{"role":"user","content":[]}'])
    assert len((await store.get('s'))['threads']['main']) == 1


def test_a_ticket_carries_one_job(tmp_path):
    from genkit_parity import _native

    core = _native.DiskStoreCore.file(tmp_path)
    ticket = _native.CompletionQueue().ticket()
    core.load_versioned(ticket, 'a')
    with pytest.raises(RuntimeError, match='only one job'):
        core.load_versioned(ticket, 'a')


def test_works_under_uvloop(tmp_path):
    # genkit installs uvloop; the bridge relies only on add_reader, which uvloop has.
    uvloop = pytest.importorskip('uvloop')

    async def run() -> object:
        store = SqliteSessionStore(tmp_path / 'db.sqlite')
        await store.save('u', {'state': {'loop': 'uvloop'}, 'threads': {}})
        return await store.get('u')

    assert uvloop.run(run()) == {'id': 'u', 'state': {'loop': 'uvloop'}, 'threads': {}}
