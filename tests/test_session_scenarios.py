"""JS Genkit 1.38 session scenarios S1-S11 (spec §1.10) and §1 behaviour."""

from __future__ import annotations

import pytest
from genkit import GenkitError, Message, Part

import genkit_parity
from genkit_parity import InMemorySessionStore

from .conftest import dump, texts


async def test_s1_two_sends_build_history(ai):
    chat = ai.create_session().chat()
    first = await chat.send('hi')
    assert first.text == 'Echo: hi; config: {}'
    second = await chat.send('bye')
    assert second.text == 'Echo: hi,Echo: hi,; config: {},bye; config: {}'
    assert dump(second.messages) == [
        {'role': 'user', 'content': [{'text': 'hi'}]},
        {'role': 'model', 'content': [{'text': 'Echo: hi'}, {'text': '; config: {}'}]},
        {'role': 'user', 'content': [{'text': 'bye'}]},
        {
            'role': 'model',
            'content': [{'text': 'Echo: hi,Echo: hi,; config: {},bye'}, {'text': '; config: {}'}],
        },
    ]
    assert dump(chat.messages) == dump(second.messages)


async def test_s2_update_messages_saves_plain_json(ai, capturing_store):
    session = ai.create_session(store=capturing_store, initial_state={'foo': 'bar'})
    await session.update_messages('main', [Message(role='user', content=[Part(text='hello there')])])
    assert capturing_store.saves[-1] == (
        session.id,
        {
            'id': session.id,
            'state': {'foo': 'bar'},
            'threads': {'main': [{'content': [{'text': 'hello there'}], 'role': 'user'}]},
        },
    )


@pytest.mark.parametrize('store_kind', ['capturing', 'memory', 'sqlite', 'file'])
async def test_s3_threads(ai, store_kind, capturing_store, tmp_path):
    from genkit_parity import FileSessionStore, SqliteSessionStore

    store = {
        'capturing': capturing_store,
        'memory': InMemorySessionStore(),
        'sqlite': SqliteSessionStore(tmp_path / 'db.sqlite'),
        'file': FileSessionStore(tmp_path / 'files'),
    }[store_kind]
    session = ai.create_session(store=store, initial_state={'name': 'Genkit'})
    await session.chat().send('hi main')
    lawyer = await session.chat('lawyerChat', system='talk like a lawyer').send('hi lawyerChat')
    assert lawyer.text == 'Echo: system: talk like a lawyer,hi lawyerChat; config: {}'
    await session.chat('pirateChat', system='talk like a pirate').send('hi pirateChat')
    stored = await store.get(session.id)
    assert list(stored['threads']) == ['main', 'lawyerChat', 'pirateChat']
    assert stored['threads']['lawyerChat'][0] == {
        'role': 'system',
        'content': [{'text': 'talk like a lawyer'}],
        'metadata': {'preamble': True},
    }
    assert stored['threads']['pirateChat'][0]['content'] == [{'text': 'talk like a pirate'}]
    assert stored['state'] == {'name': 'Genkit'}


async def test_s4_send_stream(ai):
    chat = ai.create_session().chat()
    for prompt, expected in (
        ('hi', 'Echo: hi; config: {}'),
        ('bye', 'Echo: hi,Echo: hi,; config: {},bye; config: {}'),
    ):
        streamed = chat.send_stream(prompt)
        chunks = [chunk.text async for chunk in streamed.stream]
        assert chunks == ['3', '2', '1']
        assert (await streamed.response).text == expected
    assert len(chat.messages) == 4


async def test_s5_store_holds_state_and_thread(ai, memory_store):
    session = ai.create_session(store=memory_store, initial_state={'foo': 'bar'})
    chat = session.chat()
    await chat.send('hi')
    await chat.send('bye')
    stored = await memory_store.get(session.id)
    assert stored.pop('id') == session.id
    assert stored == {'state': {'foo': 'bar'}, 'threads': {'main': dump(chat.messages)}}
    assert len(stored['threads']['main']) == 4


async def test_s6_reload_continues_without_old_config(ai, memory_store):
    original = ai.create_session(store=memory_store)
    chat = original.chat(config={'temperature': 1})
    await chat.send('hi')
    await chat.send('bye')
    loaded = await ai.load_session(original.id, store=memory_store)
    reloaded_chat = loaded.chat()
    assert dump(reloaded_chat.messages) == dump(chat.messages)
    response = await reloaded_chat.send('hi again')
    assert response.text.endswith('; config: {}')
    assert len((await memory_store.get(original.id))['threads']['main']) == 6


async def test_s7_prompt_preamble(ai):
    agent = ai.define_prompt(name='agent', config={'temperature': 1}, system='hello from template')
    chat = ai.create_session().chat(agent)
    response = await chat.send('hi')
    assert dump(response.messages) == [
        {'role': 'system', 'content': [{'text': 'hello from template'}], 'metadata': {'preamble': True}},
        {'role': 'user', 'content': [{'text': 'hi'}]},
        {
            'role': 'model',
            'content': [
                {'text': 'Echo: system: hello from template,hi'},
                {'text': '; config: {"temperature":1}'},
            ],
        },
    ]


async def test_s8_prompt_preamble_renders_input(ai):
    agent = ai.define_prompt(name='agent', config={'temperature': 1}, system='hello {{ name }} from template')
    chat = ai.create_session().chat(agent, input={'name': 'Genkit'})
    await chat.send('hi')
    assert texts(chat.messages)[0] == 'hello Genkit from template'


async def test_s9_named_thread_with_preamble_and_store(ai, memory_store):
    agent = ai.define_prompt(name='agent', config={'temperature': 1}, system='hello {{ name }} from template')
    session = ai.create_session(store=memory_store)
    await session.chat('mythread', agent, input={'name': 'Genkit'}).send('hi')
    stored = await memory_store.get(session.id)
    assert list(stored['threads']) == ['mythread']
    assert len(stored['threads']['mythread']) == 3


async def test_s10_prompt_reads_session_state(ai):
    agent = ai.define_prompt(name='agent', system='foo={{@state.foo}}')
    session = ai.create_session(initial_state={'foo': 'bar'})
    await session.chat(agent).send('hi')
    assert texts(session.threads['main'])[0] == 'foo=bar'


async def test_s11_current_session_in_flow(ai):
    # JS's current_session() raises outside a session: genkit_parity.current_session() does.
    @ai.flow()
    async def read_state(_: str = '') -> object:
        return genkit_parity.current_session().state

    with pytest.raises(GenkitError) as raised:
        await read_state('')
    assert raised.value.status == 'FAILED_PRECONDITION'
    assert str(raised.value) == 'FAILED_PRECONDITION: not running within a session'
    session = ai.create_session(initial_state={'foo': 'bar'})
    assert await session.run(read_state, '') == {'foo': 'bar'}


def test_ai_current_session_outside_is_none_as_in_genkit(ai):
    # genkit's ai.current_session() is a staticmethod returning None outside a session.
    assert ai.current_session() is None
    assert type(ai).current_session() is None
    with pytest.raises(GenkitError, match='not running within a session'):
        genkit_parity.current_session()


def test_run_returns_sync_results_and_restores_context(ai):
    session = ai.create_session()
    assert session.run(lambda: ai.current_session()) is session
    assert session.run(lambda: type(ai).current_session()) is session
    assert ai.current_session() is None


async def test_current_session_inside_send(ai, programmable_model):
    session = ai.create_session(initial_state={'x': 1})
    seen = []

    def respond(request, send_chunk):
        seen.append(ai.current_session())
        return 'ok'

    programmable_model.respond_with(respond)
    await session.chat(model='programmableModel').send('hi')
    assert seen == [session]


async def test_update_state_merges_shallowly(ai, capturing_store):
    session = ai.create_session(
        store=capturing_store, initial_state={'userName': 'John', 'color': 'Blue', 'age': 25}
    )
    await session.update_state({'color': 'Green'})
    assert session.state == {'userName': 'John', 'color': 'Green', 'age': 25}
    await session.update_state({'userName': 'Jane', 'color': 'red', 'age': 26})
    assert session.state == {'userName': 'Jane', 'color': 'red', 'age': 26}
    assert capturing_store.saves[-1][1]['state'] == {'userName': 'Jane', 'color': 'red', 'age': 26}
    empty = ai.create_session(store=capturing_store)
    await empty.update_state({'newProp': 'value'})
    assert empty.state == {'newProp': 'value'}


async def test_state_survives_chat_turns(ai, memory_store):
    session = ai.create_session(store=memory_store, initial_state={'a': 1})
    chat = session.chat()
    await chat.send('one')
    await session.update_state({'b': 2})
    await chat.send('two')
    assert session.state == {'a': 1, 'b': 2}
    stored = await memory_store.get(session.id)
    assert stored['state'] == {'a': 1, 'b': 2}
    assert len(stored['threads']['main']) == 4


def test_create_session_ids(ai):
    assert ai.create_session(session_id='  abc  ').id == 'abc'
    first, second = ai.create_session(), ai.create_session()
    assert first.id != second.id and len(first.id) == 36


def test_fresh_session_json(ai):
    session = ai.create_session(initial_state={'k': 'v'}, session_id='s')
    assert session.to_json() == {'id': 's', 'state': {'k': 'v'}, 'threads': {}}
    assert ai.create_session(session_id='t').to_json() == {'id': 't', 'threads': {}}


async def test_creation_does_not_save(ai, capturing_store):
    session = ai.create_session(store=capturing_store)
    session.chat(system='x')
    assert capturing_store.saves == []


async def test_load_unknown_session_is_empty(ai, memory_store):
    session = await ai.load_session('nope', store=memory_store)
    assert session.id == 'nope'
    assert session.state is None
    assert session.to_json() == {'id': 'nope', 'threads': {}}


async def test_load_requires_store(ai):
    with pytest.raises(ValueError, match='store is required'):
        await ai.load_session('x', store=None)


async def test_store_keeps_copies_not_live_objects(ai, memory_store):
    state = {'list': [1]}
    session = ai.create_session(store=memory_store, initial_state=state)
    await session.chat().send('hi')
    session.state['list'].append(2)
    assert (await memory_store.get(session.id))['state'] == {'list': [1]}
