"""The local vector store across real processes: reload, concurrent writers, kill -9."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from genkit import Document

from genkit_parity.vectorstore import LocalVectorIndex

from ._proc import run_python, spawn_python

WRITER = """
from pathlib import Path
from genkit import Document
from genkit_parity.vectorstore import define_dev_local_vector_store, dev_local_indexer_ref
from genkit_parity.testing import define_toy_embedder

directory, tag, calls, per_call = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ai = Genkit()
define_toy_embedder(ai)
define_dev_local_vector_store(ai, name='shared', embedder='toyEmbedder', directory=directory)

async def main():
    for call in range(calls):
        docs = [Document.from_text(f'{tag} a{call}-{i}', {'tag': tag}) for i in range(per_call)]
        # The same two documents from every writer: stored once.
        docs += [Document.from_text('common ab'), Document.from_text('common bc')]
        await ai.index(indexer=dev_local_indexer_ref('shared'), documents=docs)
        print(f'ack {call}', flush=True)
    print(json.dumps('done'))

asyncio.run(main())
"""


def all_texts(directory: Path, name: str) -> list[str]:
    core = LocalVectorIndex(directory, name)
    hits = core.search([1.0] * (core.dimensions() or 1), len(core) + 1)
    return [json.loads(doc)['content'][0]['text'] for doc, _ in hits]


def test_reload_in_a_fresh_process(tmp_path: Path) -> None:
    run_python(WRITER, str(tmp_path), 'p', '3', '4')
    texts = run_python(
        """
from genkit_parity.vectorstore import define_dev_local_vector_store, dev_local_retriever_ref
from genkit_parity.testing import define_toy_embedder
ai = Genkit()
define_toy_embedder(ai)
define_dev_local_vector_store(ai, name='shared', embedder='toyEmbedder', directory=sys.argv[1])
docs = asyncio.run(ai.retrieve(retriever=dev_local_retriever_ref('shared'), query='bc', options={'k': 100}))
print(json.dumps([d.text for d in docs]))
""",
        str(tmp_path),
    )
    assert len(texts) == 3 * 4 + 2
    assert texts[0] == 'common bc'


def test_two_processes_index_one_store_at_once(tmp_path: Path) -> None:
    writers = [spawn_python(WRITER, str(tmp_path), tag, '25', '6') for tag in ('x', 'y')]
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        assert out.strip().splitlines()[-1] == '"done"'
    texts = all_texts(tmp_path, 'shared')
    assert len(texts) == len(set(texts)), 'no duplicates'
    assert sorted(texts) == sorted(
        [f'{tag} a{call}-{i}' for tag in ('x', 'y') for call in range(25) for i in range(6)]
        + ['common ab', 'common bc']
    ), 'nothing lost'


def test_a_reader_process_sees_new_rows_incrementally(tmp_path: Path) -> None:
    core = LocalVectorIndex(tmp_path, 'shared')
    assert len(core) == 0
    run_python(WRITER, str(tmp_path), 'p', '2', '3')
    assert len(core) == 2 * 3 + 2
    run_python(WRITER, str(tmp_path), 'q', '1', '3')
    assert len(core) == 3 * 3 + 2


def test_kill_9_during_index_keeps_every_acknowledged_row(tmp_path: Path) -> None:
    # Large calls (many rows per record) so the kill often lands mid-write.
    writer = spawn_python(WRITER, str(tmp_path), 'k', '10000', '400')
    acked = -1
    assert writer.stdout is not None
    for line in writer.stdout:
        if line.startswith('ack '):
            acked = int(line.split()[1])
            if acked >= 4:
                break
    os.kill(writer.pid, signal.SIGKILL)
    writer.communicate(timeout=30)
    texts = set(all_texts(tmp_path, 'shared'))
    for call in range(acked + 1):
        assert {f'k a{call}-{i}' for i in range(400)} <= texts
    # The store opens and takes writes after the crash.
    run_python(WRITER, str(tmp_path), 'after', '1', '2')
    assert {'after a0-0', 'after a0-1'} <= set(all_texts(tmp_path, 'shared'))


STALLED_WRITER = """
import math, time
from genkit_parity import _runtime
from genkit_parity.vectorstore import LocalVectorIndex

core = LocalVectorIndex(sys.argv[1], 'stalled')
dims = 384

def row(i):
    return [math.cos(i / 1000), math.sin(i / 1000)] + [0.25] * (dims - 2)

core.add(['{"content":[{"text":"acknowledged"}]}'], [row(0)])
print(f'acked {core.path.stat().st_size}', flush=True)

class Stall:
    # A value whose conversion never ends: the add is killed while its record is half written.
    def __float__(self):
        print('stalled', flush=True)
        time.sleep(3600)
        return 0.0

rows = [row(i + 1) for i in range(6000)]
rows[5000][7] = Stall()
docs = json.dumps([{'content': [{'text': f'doc {i}'}]} for i in range(6000)])

async def main():
    await _runtime.call(lambda ticket: core.start_add_array(ticket, docs, rows))

asyncio.run(main())
"""


def test_an_add_stalled_in_python_code_holds_no_lock_and_a_kill_9_keeps_what_was_acknowledged(
    tmp_path: Path,
) -> None:
    # The add writes its record while it reads the vectors, but lets go of the index's
    # locks (undoing its partial record) before Python code converts a value: stalled there,
    # it keeps no other process from writing. (A kill in the middle of a streamed record is
    # `local::streamed`'s Rust test.)
    writer = spawn_python(STALLED_WRITER, str(tmp_path))
    assert writer.stdout is not None
    acknowledged = int(writer.stdout.readline().split()[1])
    assert writer.stdout.readline().strip() == 'stalled'
    run_python(
        """
from genkit_parity.vectorstore import LocalVectorIndex
core = LocalVectorIndex(sys.argv[1], 'stalled')
print(json.dumps(core.add(['{"content":[{"text":"other process"}]}'], [[1.0] * 384])))
""",
        str(tmp_path),
        timeout=60,
    )
    path = tmp_path / 'stalled.gkvec'
    assert path.stat().st_size > acknowledged
    os.kill(writer.pid, signal.SIGKILL)
    writer.communicate(timeout=30)
    assert sorted(all_texts(tmp_path, 'stalled')) == ['acknowledged', 'other process']


def test_a_torn_last_record_is_dropped_and_the_next_writer_cuts_it(tmp_path: Path) -> None:
    core = LocalVectorIndex(tmp_path, 'torn')
    core.add(['{"content":[{"text":"a"}]}'], [[1.0, 0.0]])
    size = core.path.stat().st_size
    core.add(['{"content":[{"text":"b"}]}'], [[0.0, 1.0]])
    data = core.path.read_bytes()
    # As a kill -9 in the middle of the second write would leave it.
    core.path.write_bytes(data[: size + (len(data) - size) // 2])
    reopened = LocalVectorIndex(tmp_path, 'torn')
    assert len(reopened) == 1
    reopened.add(['{"content":[{"text":"c"}]}'], [[1.0, 1.0]])
    assert sorted(all_texts(tmp_path, 'torn')) == ['a', 'c']


def test_an_index_survives_fork(tmp_path: Path) -> None:
    core = LocalVectorIndex(tmp_path, 'forked')
    core.add(['{"content":[{"text":"parent"}]}'], [[1.0, 0.0]])
    pid = os.fork()
    if pid == 0:  # child: the inherited index reads and writes (no inherited file handle or lock)
        try:
            ok = len(core) == 1 and core.add(['{"content":[{"text":"child"}]}'], [[0.0, 1.0]]) == 1
            os._exit(0 if ok and len(core) == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(all_texts(tmp_path, 'forked')) == ['child', 'parent']


def test_a_forked_child_of_a_plugin_store_indexes_and_retrieves(tmp_path: Path) -> None:
    import asyncio

    from genkit_parity import Genkit
    from genkit_parity.testing import define_toy_embedder
    from genkit_parity.vectorstore import DevLocalVectorStore

    ai = Genkit()
    define_toy_embedder(ai)
    store = DevLocalVectorStore(ai, name='f', embedder='toyEmbedder', directory=tmp_path)
    assert asyncio.run(store.index([Document.from_text('parent ab')])) == 1
    pid = os.fork()
    # The child's core opens the index afresh (an inherited one could hold a writer thread's locks).
    if pid == 0:
        try:
            added = asyncio.run(store.index([Document.from_text('child bc')]))
            found = asyncio.run(store.retrieve('ab'))
            ok = added == 1 and len(store.core) == 2 and found[0].text == 'parent ab'
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(store.core) == 2, 'the parent catches up with what its child wrote'
    assert sorted(all_texts(tmp_path, 'f')) == ['child bc', 'parent ab']


def test_a_forked_child_searches_with_its_own_scan_threads(tmp_path: Path) -> None:
    # Large enough that exact scans and the approximate index's code scan are split across
    # threads: the parent's search starts the scan pool, which a child of fork inherits
    # without its threads. The child must build its own (a hang here means it did not).
    import random
    from array import array

    rng = random.Random(5)
    n, dims = 70_000, 16
    core = LocalVectorIndex(tmp_path, 'pool')
    values = array('f', (rng.gauss(0, 1) for _ in range(n * dims)))
    core.add([f'{{"content":[{{"text":"{i}"}}]}}' for i in range(n)], values.tobytes())
    query = [rng.gauss(0, 1) for _ in range(dims)]
    exact = core.search(query, 5)
    approx = core.search(query, 5, approximate=True)
    many = core.search_many([query, query[::-1]], 5)
    pid = os.fork()
    if pid == 0:
        try:
            signal.alarm(60)  # a deadlocked child dies instead of hanging the test
            same = (
                core.search(query, 5) == exact
                and core.search(query, 5, approximate=True) == approx
                and core.search_many([query, query[::-1]], 5) == many
            )
            os._exit(0 if same else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert core.search(query, 5) == exact, 'the parent keeps its pool'
