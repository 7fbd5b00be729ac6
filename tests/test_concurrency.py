"""Concurrent turns on one session: serialised in arrival order, nothing lost."""

from __future__ import annotations

import asyncio

import pytest

from genkit_parity import FileSessionStore, InMemorySessionStore, SqliteSessionStore

from .conftest import texts


def reply_to_last_user(request, send_chunk):
    return 'reply to ' + request.messages[-1].content[0].text


@pytest.mark.parametrize('kind', ['memory', 'file', 'sqlite'])
async def test_fifty_concurrent_sends_on_one_thread(ai, programmable_model, kind, tmp_path):
    store = {
        'memory': InMemorySessionStore,
        'file': lambda: FileSessionStore(tmp_path / 'f'),
        'sqlite': lambda: SqliteSessionStore(tmp_path / 'db.sqlite'),
    }[kind]()
    programmable_model.respond_with(reply_to_last_user)
    session = ai.create_session(store=store)
    chat = session.chat(model='programmableModel')
    responses = await asyncio.gather(*(chat.send(f'm{i}') for i in range(50)))
    assert [r.text for r in responses] == [f'reply to m{i}' for i in range(50)]
    expected = [text for i in range(50) for text in (f'm{i}', f'reply to m{i}')]
    assert texts(chat.messages) == expected
    stored = (await store.get(session.id))['threads']['main']
    assert [m['content'][0]['text'] for m in stored] == expected
    # Turn n saw exactly the 2n messages before it.
    assert [len(r.messages) for r in responses] == [2 * (i + 1) for i in range(50)]


async def test_two_chats_on_one_thread_see_each_other(ai, memory_store):
    session = ai.create_session(store=memory_store)
    first, second = session.chat(), session.chat()
    await first.send('a')
    response = await second.send('b')
    assert texts(response.messages)[:3] == ['a', 'Echo: a; config: {}', 'b']
    await first.send('c')
    stored = (await memory_store.get(session.id))['threads']['main']
    assert [m['content'][0]['text'] for m in stored][::2] == ['a', 'b', 'c']


async def test_sends_on_different_threads_run_concurrently(ai, programmable_model):
    gate = asyncio.Event()
    started = []

    async def respond(request, send_chunk):
        started.append(request.messages[-1].content[0].text)
        if len(started) == 2:
            gate.set()
        await asyncio.wait_for(gate.wait(), 5)
        return 'ok'

    programmable_model.respond_with(respond)
    session = ai.create_session()
    await asyncio.gather(
        session.chat('one', model='programmableModel').send('x'),
        session.chat('two', model='programmableModel').send('y'),
    )
    assert sorted(started) == ['x', 'y']
    assert set(session.threads) == {'one', 'two'}


async def test_cancelled_send_leaves_no_trace(ai, programmable_model, memory_store):
    release = asyncio.Event()

    async def slow(request, send_chunk):
        await release.wait()
        return 'late'

    programmable_model.respond_with(slow)
    session = ai.create_session(store=memory_store)
    chat = session.chat(model='programmableModel')
    task = asyncio.ensure_future(chat.send('will be cancelled'))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    programmable_model.respond_with('fine')
    await chat.send('next')
    assert texts(chat.messages) == ['next', 'fine']
    assert len((await memory_store.get(session.id))['threads']['main']) == 2
