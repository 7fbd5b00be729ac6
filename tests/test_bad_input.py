"""Bad input gets a clear, typed exception naming the problem, before anything is stored."""

from __future__ import annotations

import pytest

from genkit_parity import FileSessionStore, InMemorySessionStore, SqliteSessionStore

HOSTILE_IDS = ['../x', '/abs', 'a\0b', '', '   ', 'x' * 1025, '..', 'a/../../b', 'c:\\windows']


@pytest.mark.parametrize('session_id', HOSTILE_IDS)
async def test_hostile_ids_rejected_before_touching_disk(ai, tmp_path, session_id):
    folder = tmp_path / 'store'
    stores = [FileSessionStore(folder), SqliteSessionStore(tmp_path / 'db.sqlite'), InMemorySessionStore()]
    before = sorted(p.name for p in folder.iterdir())
    for store in stores:
        with pytest.raises(ValueError, match='invalid session id'):
            ai.create_session(store=store, session_id=session_id)
        with pytest.raises(ValueError, match='invalid session id'):
            await ai.load_session(session_id, store=store)
        with pytest.raises(ValueError, match='invalid session id'):
            await store.get(session_id)
        with pytest.raises(ValueError, match='invalid session id'):
            await store.save(session_id, {'threads': {}})
        with pytest.raises(ValueError, match='invalid session id'):
            ai.chat(store=store, session_id=session_id)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert not (tmp_path / 'x').exists() and not (tmp_path.parent / 'x').exists()


async def test_wrong_argument_types_name_the_argument(ai, memory_store):
    with pytest.raises(TypeError, match='session_id must be a str'):
        ai.create_session(session_id=42)
    with pytest.raises(TypeError, match='session_id must be a str'):
        await ai.load_session(42, store=memory_store)
    with pytest.raises(TypeError, match='store must be a session store'):
        ai.create_session(store=object())
    with pytest.raises(TypeError, match='initial_state must be JSON-serializable'):
        ai.create_session(initial_state={'x': object()})
    with pytest.raises(TypeError, match='directory must be a str or path'):
        FileSessionStore(3.5)
    with pytest.raises(TypeError, match='path must be a str or path'):
        SqliteSessionStore(None)
    # Not truthiness: durable='no' would have turned durability on.
    with pytest.raises(TypeError, match="durable must be True or False, not 'no'"):
        SqliteSessionStore(':memory:', durable='no')
    with pytest.raises(TypeError, match='durable must be True or False'):
        FileSessionStore('.', durable=1)
    session = ai.create_session()
    with pytest.raises(TypeError, match='patch must be a mapping'):
        await session.update_state([('a', 1)])
    with pytest.raises(TypeError, match='messages must be a list of messages'):
        await session.update_messages('main', 'hello')
    with pytest.raises(TypeError, match=r'messages\[0\] is not a valid message'):
        await session.update_messages('main', [{'role': 'user'}])
    with pytest.raises(TypeError, match='thread must be a str'):
        await session.update_messages(7, [])
    with pytest.raises(ValueError, match='invalid thread name'):
        session.chat('', system='x')
    with pytest.raises(TypeError, match=r'chat\(\) takes \(thread: str, preamble'):
        session.chat('t', 42)
    with pytest.raises(TypeError, match='thread both positionally and by name'):
        session.chat('t', thread='u')
    with pytest.raises(TypeError, match="unexpected option 'temprature'"):
        session.chat(temprature=1)
    chat = session.chat()
    with pytest.raises(TypeError, match='prompt must be a str'):
        await chat.send(12)
    with pytest.raises(TypeError, match="send\\(\\) got an unexpected option 'input'"):
        await chat.send('hi', input={})
    with pytest.raises(TypeError, match='on_chunk must be callable'):
        await chat.send('hi', on_chunk='nope')
    with pytest.raises(TypeError, match='data must be a mapping'):
        await memory_store.save('ok', ['not', 'a', 'dict'])
    with pytest.raises(TypeError, match='fn must be callable'):
        session.run('not callable')
    assert chat.messages == []


async def test_update_state_on_non_mapping_state(ai):
    session = ai.create_session(initial_state=[1, 2])
    with pytest.raises(TypeError, match='cannot merge a patch into state of type list'):
        await session.update_state({'a': 1})
    assert session.state == [1, 2]


async def test_unserialisable_state_patch_is_rejected_and_not_applied(ai, memory_store):
    session = ai.create_session(store=memory_store, initial_state={'a': 1})
    with pytest.raises(TypeError, match='state must be JSON-serializable'):
        await session.update_state({'bad': {1, 2}})
    assert session.state == {'a': 1}


async def test_failing_custom_store_keeps_session_unchanged(ai):
    class FailingStore:
        async def get(self, session_id):
            return None

        async def save(self, session_id, data):
            raise OSError('disk on fire')

    session = ai.create_session(store=FailingStore(), initial_state={'a': 1})
    chat = session.chat()
    with pytest.raises(OSError, match='disk on fire'):
        await chat.send('hi')
    assert chat.messages == []
    assert session.threads == {}
    with pytest.raises(OSError, match='disk on fire'):
        await session.update_state({'b': 2})
    assert session.state == {'a': 1}


async def test_state_is_a_copy_and_nan_never_reaches_a_store(ai, memory_store):
    initial = {'cart': []}
    session = ai.create_session(store=memory_store, session_id='s', initial_state=initial)
    initial['cart'].append('pear')  # the caller's object is not the session's
    session.state['cart'].append('apple')  # nor is what `state` returns
    await session.update_state({'step': 2})
    assert session.state == {'cart': [], 'step': 2}
    assert (await memory_store.get('s'))['state'] == {'cart': [], 'step': 2}
    for bad in (float('nan'), float('inf')):
        with pytest.raises(TypeError, match='state must be JSON-serializable: Out of range float'):
            await session.update_state({'n': bad})
        with pytest.raises(TypeError, match='initial_state must be JSON-serializable'):
            ai.create_session(initial_state={'n': bad})
    assert session.state == {'cart': [], 'step': 2}
