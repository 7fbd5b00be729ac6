"""What a stale session copy may and may not do, on every built-in store.

Two session objects on one stored session stand for two workers (or processes). A stale
one's turn appends after what landed meanwhile and its session then holds it; its replace
of a thread, which would drop what it had not seen, is a ``SessionConflictError``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from genkit import Message, Part

from genkit_parity import (
    FileSessionStore,
    Genkit,
    InMemorySessionStore,
    PostgresSessionStore,
    RedisSessionStore,
    SessionConflictError,
    SessionLostError,
    SqliteSessionStore,
)
from genkit_parity.stores import NativeSessionStore
from genkit_parity.testing import define_programmable_model

from ._engines import REDIS_URL, redis_prefix

_prefixes = itertools.count()


@pytest.fixture(params=['memory', 'file', 'sqlite', 'redis', 'postgres'])
def store(request: pytest.FixtureRequest, tmp_path: Path, database: str) -> Iterator[NativeSessionStore]:
    kind = request.param
    if kind == 'redis':
        with redis_prefix() as prefix:
            yield RedisSessionStore(REDIS_URL, prefix=prefix)
    elif kind == 'postgres':
        yield PostgresSessionStore(database, table_prefix=f'c{next(_prefixes)}_{os.getpid()}_')
    elif kind == 'file':
        yield FileSessionStore(tmp_path / 'files')
    elif kind == 'sqlite':
        yield SqliteSessionStore(tmp_path / 'sessions.sqlite')
    else:
        yield InMemorySessionStore()


def make_ai() -> Genkit:
    ai = Genkit(model='programmableModel')
    define_programmable_model(
        ai, respond=lambda request, send_chunk: f're {request.messages[-1].content[0].text}'
    )
    return ai


def user(text: str) -> Message:
    return Message(role='user', content=[Part(text=text)])


def texts(stored: dict | None, thread: str = 'main') -> list[str]:
    assert stored is not None
    return [m['content'][0]['text'] for m in stored['threads'][thread]]


async def test_a_stale_turn_appends_and_the_session_then_holds_both(store):
    ai = make_ai()
    await ai.create_session(store=store, session_id='s').chat().send('one')
    a = await ai.load_session('s', store=store)
    b = await ai.load_session('s', store=store)
    await a.chat().send('from a')
    await b.chat().send('from b')  # b's copy was stale: its turn goes after a's
    assert texts(await store.get('s')) == ['one', 're one', 'from a', 're from a', 'from b', 're from b']
    assert [m.content[0].text for m in b.threads['main']] == texts(await store.get('s'))
    assert (a.version, b.version) == (2, 3)  # the first save, then one per turn


async def test_a_replace_of_the_same_length_from_a_stale_copy_is_refused(store):
    # Length alone cannot tell: b cuts the thread short, then a turn brings it back to 4.
    ai = make_ai()
    await ai.create_session(store=store, session_id='s').chat().send('one')
    a = await ai.load_session('s', store=store)
    b = await ai.load_session('s', store=store)
    await b.update_messages('main', [*b.threads['main'][:-2], user('cut')])
    await b.chat().send('B-turn')
    edited = [user(f'edit {i}') for i in range(4)]
    with pytest.raises(SessionConflictError, match='load the session again') as refused:
        await a.update_messages('main', edited)
    assert refused.value.status == 'ABORTED'
    assert texts(await store.get('s'))[-2:] == ['B-turn', 're B-turn']
    again = await ai.load_session('s', store=store)
    await again.update_messages('main', edited)  # reloaded, the replace goes through
    assert texts(await store.get('s')) == [f'edit {i}' for i in range(4)]


async def test_after_a_stale_turn_on_one_thread_a_replace_of_another_is_refused(store):
    # a's turn on `main` catches `main` up; its copy of `side` is still stale.
    ai = make_ai()
    seed = ai.create_session(store=store, session_id='s')
    await seed.chat().send('one')
    await seed.chat('side').send('side one')
    a = await ai.load_session('s', store=store)
    b = await ai.load_session('s', store=store)
    await b.chat('side').send('b on side')
    await a.chat().send('a on main')
    with pytest.raises(SessionConflictError):
        await a.update_messages('side', [user('a rewrites side')])
    assert texts(await store.get('s'), 'side')[-2:] == ['b on side', 're b on side']
    # An append to `side` still lands, after b's turn.
    await a.chat('side').send('a on side')
    assert texts(await store.get('s'), 'side') == [
        'side one',
        're side one',
        'b on side',
        're b on side',
        'a on side',
        're a on side',
    ]


async def test_state_updates_from_stale_copies_merge_and_the_session_holds_every_key(store):
    ai = make_ai()
    await ai.create_session(store=store, session_id='s', initial_state={'user': 'Ada'}).update_state({})
    a = await ai.load_session('s', store=store)
    b = await ai.load_session('s', store=store)
    await a.update_state({'a': 1})
    await b.update_state({'b': 2})
    assert b.state == {'user': 'Ada', 'a': 1, 'b': 2}
    assert (await store.get('s'))['state'] == {'user': 'Ada', 'a': 1, 'b': 2}


async def test_a_write_to_a_session_deleted_meanwhile_is_lost_not_recreated(store):
    ai = make_ai()
    await ai.create_session(store=store, session_id='s').chat().send('one')
    held = await ai.load_session('s', store=store)
    assert await store.delete('s')
    with pytest.raises(SessionLostError) as lost:
        await held.chat().send('two')
    assert lost.value.status == 'DATA_LOSS'
    assert await store.get('s') is None
