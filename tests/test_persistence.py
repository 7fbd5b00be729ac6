"""Stores across processes: reload in a fresh interpreter, two writers, kill -9, corruption."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3

import pytest
from genkit import Message, Part

from genkit_parity import (
    CorruptSessionError,
    FileSessionStore,
    InMemorySessionStore,
    SessionConflictError,
    SqliteSessionStore,
)

from ._proc import run_python, spawn_python, store_location

STORES = ['file', 'sqlite']


def make_store(kind, tmp_path):
    location = store_location(kind, tmp_path)
    return FileSessionStore(location) if kind == 'file' else SqliteSessionStore(location)


@pytest.mark.parametrize('kind', STORES)
def test_reload_in_fresh_process_and_continue(kind, tmp_path):
    location = store_location(kind, tmp_path)
    session_id = run_python(
        """
        async def main():
            ai = Genkit(model='echoModel'); define_echo_model(ai)
            session = ai.create_session(store=make_store(sys.argv[1], sys.argv[2]), initial_state={'step': 1})
            await session.chat().send('hi')
            await session.chat('side', system='be brief').send('hello side')
            await session.update_state({'step': 2})
            print(json.dumps(session.id))
        asyncio.run(main())
        """,
        kind,
        location,
    )
    reloaded = run_python(
        """
        async def main():
            ai = Genkit(model='echoModel'); define_echo_model(ai)
            session = await ai.load_session(sys.argv[3], store=make_store(sys.argv[1], sys.argv[2]))
            reply = await session.chat().send('again')
            print(json.dumps({'state': session.state, 'reply': reply.text, 'data': session.to_json()}))
        asyncio.run(main())
        """,
        kind,
        location,
        session_id,
    )
    assert reloaded['state'] == {'step': 2}
    assert reloaded['reply'] == 'Echo: hi,Echo: hi,; config: {},again; config: {}'
    threads = reloaded['data']['threads']
    assert list(threads) == ['main', 'side']
    assert len(threads['main']) == 4
    assert threads['side'][0] == {
        'role': 'system',
        'content': [{'text': 'be brief'}],
        'metadata': {'preamble': True},
    }


WRITER = """
async def main():
    ai = Genkit(); define_programmable_model(ai, respond='ok')
    store = make_store(sys.argv[1], sys.argv[2])
    chat = ai.chat(model='programmableModel', store=store, session_id='shared')
    for turn in range(int(sys.argv[3])):
        await chat.send(f'{sys.argv[4]}-{turn}')
        print(f'acked {turn + 1}', flush=True)
asyncio.run(main())
"""


@pytest.mark.parametrize('kind', STORES)
async def test_two_processes_append_to_one_session_lose_nothing(kind, tmp_path):
    location = store_location(kind, tmp_path)
    writers = [spawn_python(WRITER, kind, location, '100', name) for name in ('A', 'B')]
    for writer in writers:
        with writer:
            _, stderr = writer.communicate(timeout=300)
        assert writer.returncode == 0, stderr
    stored = await make_store(kind, tmp_path).get('shared')
    messages = stored['threads']['main']
    assert len(messages) == 400
    for name in ('A', 'B'):
        prompts = [
            m['content'][0]['text']
            for m in messages
            if m['role'] == 'user' and m['content'][0]['text'].startswith(name)
        ]
        assert prompts == [f'{name}-{turn}' for turn in range(100)]
    # Every user message is immediately followed by its own reply: turns never interleave.
    assert [m['role'] for m in messages] == ['user', 'model'] * 200


STATE_WRITER = """
import os, time
async def main():
    ai = Genkit()
    store = make_store(sys.argv[1], sys.argv[2])
    session = await ai.load_session('shared', store=store)
    print('loaded', flush=True)
    while not os.path.exists(sys.argv[3]):  # every writer loads before any of them writes
        time.sleep(0.005)
    for i in range(50):
        await session.update_state({f'k{sys.argv[4]}': i})
    print(json.dumps(session.state))
asyncio.run(main())
"""


@pytest.mark.parametrize('kind', STORES)
async def test_four_processes_updating_state_lose_no_key(kind, tmp_path):
    location = store_location(kind, tmp_path)
    await make_store(kind, tmp_path).save('shared', {'state': {'user': 'Ada'}, 'threads': {}})
    go = tmp_path / 'go'
    writers = [spawn_python(STATE_WRITER, kind, location, str(go), str(w)) for w in range(4)]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == 'loaded\n', writer.stderr.read() if writer.stderr else ''
    go.touch()
    for w, writer in enumerate(writers):
        with writer:
            out, stderr = writer.communicate(timeout=300)
        assert writer.returncode == 0, stderr
        # Each session's state is the stored one after its last update: its own key at 49,
        # the others' as they were then.
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen['user'] == 'Ada' and seen[f'k{w}'] == 49
    stored = await make_store(kind, tmp_path).get('shared')
    assert stored['state'] == {'user': 'Ada', 'k0': 49, 'k1': 49, 'k2': 49, 'k3': 49}


def local_store(kind, tmp_path):
    return InMemorySessionStore() if kind == 'memory' else make_store(kind, tmp_path)


@pytest.mark.parametrize('kind', ['memory', *STORES])
async def test_a_replace_from_a_stale_copy_is_refused_and_loses_nothing(ai, kind, tmp_path):
    store = local_store(kind, tmp_path)
    first = ai.create_session(store=store, session_id='s')
    await first.chat().send('one')
    # A second writer (another process, or another session object) loads and adds a turn.
    other = await ai.load_session('s', store=store)
    await other.chat().send('two')
    replaced = [Message(role='user', content=[Part(text='only')])]
    stale = 'saved version 2 after this session loaded version 1'
    with pytest.raises(SessionConflictError, match=stale) as error:
        await first.update_messages('main', replaced)
    assert error.value.status == 'ABORTED'
    assert error.value.session_id == 's'
    # A new preamble is a replace too.
    with pytest.raises(SessionConflictError):
        await first.chat(system='be brief').send('three')
    stored = await store.get('s')
    assert [m['content'][0]['text'] for m in stored['threads']['main'][::2]] == ['one', 'two']
    assert len(first.threads['main']) == 2  # the refused write left the session as it was
    # Loaded again, the session holds every turn, and its replace goes through.
    again = await ai.load_session('s', store=store)
    await again.update_messages('main', replaced)
    assert (await store.get('s'))['threads']['main'] == [{'role': 'user', 'content': [{'text': 'only'}]}]


@pytest.mark.parametrize('kind', STORES)
async def test_kill_9_mid_turn_leaves_a_loadable_store(kind, tmp_path):
    location = store_location(kind, tmp_path)
    with spawn_python(WRITER, kind, location, '100000', 'K') as writer:
        acked = 0
        assert writer.stdout is not None
        while acked < 40:
            line = writer.stdout.readline()
            assert line, writer.stderr.read() if writer.stderr else 'writer died'
            acked = int(line.split()[1])
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    stored = await make_store(kind, tmp_path).get('shared')
    messages = stored['threads']['main']
    assert len(messages) >= 2 * acked
    assert len(messages) % 2 == 0
    assert [m['content'][0]['text'] for m in messages[::2]] == [f'K-{i}' for i in range(len(messages) // 2)]


async def test_file_store_turn_appends_one_line(ai, tmp_path):
    store = FileSessionStore(tmp_path)
    chat = ai.chat(store=store, session_id='log')
    await chat.send('one')
    log = tmp_path / 'log.jsonl'
    size_after_first = log.stat().st_size
    lines_after_first = len(log.read_text().splitlines())
    await chat.send('two')
    assert len(log.read_text().splitlines()) == lines_after_first + 1
    assert log.read_bytes().startswith(log.read_bytes()[:size_after_first])


async def test_corrupt_file_log_names_the_session(ai, tmp_path):
    store = FileSessionStore(tmp_path)
    chat = ai.chat(store=store, session_id='damaged')
    await chat.send('one')
    await chat.send('two')
    log = tmp_path / 'damaged.jsonl'
    lines = log.read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]
    log.write_text('\n'.join(lines) + '\n')
    with pytest.raises(CorruptSessionError) as raised:
        await ai.load_session('damaged', store=store)
    assert raised.value.session_id == 'damaged'
    assert raised.value.status == 'DATA_LOSS'
    assert 'damaged' in str(raised.value) and 'line 2' in str(raised.value)


async def test_corrupt_sqlite_row_names_the_session(ai, tmp_path):
    path = tmp_path / 'db.sqlite'
    chat = ai.chat(store=SqliteSessionStore(path), session_id='rotten')
    await chat.send('one')
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE genkit_session_messages SET message = '{broken' WHERE seq = 1")
    with pytest.raises(CorruptSessionError, match='rotten') as raised:
        await ai.load_session('rotten', store=SqliteSessionStore(path))
    assert raised.value.session_id == 'rotten'


async def test_sqlite_path_that_is_not_a_database(tmp_path):
    from genkit_parity import SessionStoreError

    junk = tmp_path / 'junk.sqlite'
    junk.write_bytes(b'definitely not sqlite ' * 100)
    with pytest.raises(SessionStoreError, match=r'junk\.sqlite'):
        SqliteSessionStore(junk)


async def test_custom_store_returning_malformed_data(ai):
    class BadStore:
        async def get(self, session_id):
            return {'id': session_id, 'threads': {'main': [{'role': 'user', 'content': 'not a list'}]}}

        async def save(self, session_id, data):
            raise AssertionError('not reached')

    with pytest.raises(CorruptSessionError, match="thread 'main'"):
        await ai.load_session('x', store=BadStore())


@pytest.mark.parametrize('kind', STORES)
async def test_unknown_id_loads_empty(ai, kind, tmp_path):
    session = await ai.load_session('never-seen', store=make_store(kind, tmp_path))
    assert session.to_json() == {'id': 'never-seen', 'threads': {}}


@pytest.mark.parametrize('kind', STORES)
async def test_update_messages_replaces_a_stored_thread(ai, kind, tmp_path):
    store = make_store(kind, tmp_path)
    session = ai.create_session(store=store, session_id='s')
    await session.chat().send('one')
    await session.update_messages('main', [Message(role='user', content=[Part(text='only')])])
    stored = await store.get('s')
    assert stored['threads']['main'] == [{'role': 'user', 'content': [{'text': 'only'}]}]
    loaded = await ai.load_session('s', store=store)
    assert len(loaded.threads['main']) == 1


@pytest.mark.parametrize('kind', STORES)
async def test_public_get_save_round_trip(kind, tmp_path):
    store = make_store(kind, tmp_path)
    data = {'state': {'a': [1, 2]}, 'threads': {'main': [{'role': 'user', 'content': [{'text': 'x'}]}]}}
    await store.save('direct', data)
    assert await store.get('direct') == {'id': 'direct', **data}
    assert await store.delete('direct') is True
    assert await store.get('direct') is None


@pytest.mark.parametrize('kind', STORES)
async def test_durable_stores_round_trip(ai, kind, tmp_path):
    location = store_location(kind, tmp_path)
    store = (
        FileSessionStore(location, durable=True)
        if kind == 'file'
        else SqliteSessionStore(location, durable=True)
    )
    chat = ai.chat(store=store, session_id='durable')
    await chat.send('one')
    await chat.session.update_state({'saved': True})
    loaded = await ai.load_session('durable', store=store)
    assert loaded.state == {'saved': True}
    assert len(loaded.threads['main']) == 2


async def test_file_log_is_compacted_and_keeps_everything(ai, tmp_path):
    store = FileSessionStore(tmp_path)
    session = await ai.load_session('busy', store=store)
    chat = session.chat()
    await chat.send('hello')
    for step in range(100):
        await session.update_state({'step': step})
    lines = (tmp_path / 'busy.jsonl').read_text().splitlines()
    assert len(lines) < 40, f'log not compacted: {len(lines)} lines'
    loaded = await ai.load_session('busy', store=store)
    assert loaded.state == {'step': 99}
    assert len(loaded.threads['main']) == 2


@pytest.mark.parametrize('kind', ['memory', *STORES])
async def test_state_after_an_update_is_what_a_reload_reads(ai, kind, tmp_path):
    store = local_store(kind, tmp_path)
    session = ai.create_session(store=store, session_id='s', initial_state={'a': 1})
    await session.update_state({'b': 2})
    await session.update_state({1: (2, 3), 'a': None})  # JSON has string keys and lists only
    reloaded = await ai.load_session('s', store=store)
    assert session.state == reloaded.state == {'a': None, 'b': 2, '1': [2, 3]}
    # Concurrent updates of one session object keep every key.
    await asyncio.gather(*(session.update_state({f'k{i}': i}) for i in range(20)))
    assert session.state == (await ai.load_session('s', store=store)).state
    assert all(session.state[f'k{i}'] == i for i in range(20))


async def test_a_sqlite_file_from_before_versions_is_upgraded_and_kept(ai, tmp_path):
    path = tmp_path / 'old.sqlite'
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE genkit_sessions (id TEXT PRIMARY KEY NOT NULL, state TEXT);
            CREATE TABLE genkit_session_threads (session_id TEXT NOT NULL, thread TEXT NOT NULL,
                position INTEGER NOT NULL, PRIMARY KEY (session_id, thread)) WITHOUT ROWID;
            CREATE TABLE genkit_session_messages (session_id TEXT NOT NULL, thread TEXT NOT NULL,
                seq INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (session_id, thread, seq))
                WITHOUT ROWID;
            INSERT INTO genkit_sessions VALUES ('old', '{"n":1}');
            INSERT INTO genkit_session_threads VALUES ('old', 'main', 0);
            INSERT INTO genkit_session_messages VALUES
                ('old', 'main', 0, '{"role":"user","content":[{"text":"kept"}]}');
            """
        )
    stores = [SqliteSessionStore(path), SqliteSessionStore(path)]  # two openings upgrade once
    session = await ai.load_session('old', store=stores[1])
    assert (session.version, session.state) == (0, {'n': 1})
    await session.update_state({'m': 2})
    stored = await stores[0].get('old')
    assert stored['state'] == {'n': 1, 'm': 2}
    assert [m['content'][0]['text'] for m in stored['threads']['main']] == ['kept']
    assert session.version == 1
