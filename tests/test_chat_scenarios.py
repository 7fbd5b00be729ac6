"""JS Genkit 1.38 chat scenarios C1-C8 (spec §2.8), tool loops (§2.5), streaming (§2.7)
and the JS quirks genkit-parity fixes on purpose (Appendix A, 1-3)."""

from __future__ import annotations

import pytest
from genkit import Message, Part

from genkit_parity import FileSessionStore, SqliteSessionStore

from .conftest import dump, texts


async def test_c1_ai_chat(ai):
    chat = ai.chat()
    await chat.send('hi')
    response = await chat.send('bye')
    assert response.text == 'Echo: hi,Echo: hi,; config: {},bye; config: {}'
    assert len(response.messages) == 4


async def test_c2_chat_from_rendered_prompt(ai):
    prompt = ai.define_prompt(name='hi', prompt='hi {{ name }}')
    rendered = await prompt.render({'name': 'Genkit'}, config={'temperature': 11})
    response = await ai.chat(rendered).send('hi')
    assert response.text == 'Echo: hi Genkit,hi; config: {"temperature":11}'


async def test_c3_prompt_messages_template(ai):
    prompt = ai.define_prompt(name='p', config={'version': 'abc'}, messages='hi from template')
    response = await ai.chat(prompt).send('send it')
    assert response.text == 'Echo: hi from template,send it; config: {"version":"abc"}'


async def test_c4_prompt_with_input(ai):
    prompt = ai.define_prompt(name='p', config={'version': 'abc'}, messages='hi {{ name }} from template')
    response = await ai.chat(prompt, input={'name': 'Genkit'}).send('send it')
    assert response.text == 'Echo: hi Genkit from template,send it; config: {"version":"abc"}'


async def test_c5_send_rendered_prompt(ai):
    prompt = ai.define_prompt(name='p', config={'version': 'abc'}, prompt='hi {{ name }}')
    rendered = await prompt.render({'name': 'Genkit'}, config={'temperature': 11})
    response = await ai.chat().send(rendered)
    assert response.text == 'Echo: hi Genkit; config: {"version":"abc","temperature":11}'


async def test_c6_fresh_chat_rerenders_preamble_with_new_state(ai):
    agent = ai.define_prompt(
        name='agent', config={'temperature': 2}, messages='{{ role "system" }} greet {{ @state.name }}'
    )
    session = ai.create_session(initial_state={'name': 'Pavel'})
    await session.chat(agent, model='echoModel').send('hi')
    await session.update_state({'name': 'Michael'})
    response = await session.chat(agent, model='echoModel').send('hi')
    got = texts(response.messages)
    assert [t.strip() for t in got[:2]] == ['greet Michael', 'hi']
    assert response.messages[0].metadata == {'preamble': True}
    assert 'greet Pavel' in got[2]
    assert got[3] == 'hi'
    assert 'greet Michael,hi,Echo: system:' in got[4] and 'greet Pavel' in got[4]
    assert got[4].endswith('; config: {"temperature":2},hi; config: {"temperature":2}')
    assert len(response.messages) == 5


async def test_c6_existing_chat_keeps_the_state_it_was_created_with(ai):
    agent = ai.define_prompt(name='agent', system='greet {{ @state.name }}')
    session = ai.create_session(initial_state={'name': 'Pavel'})
    chat = session.chat(agent)
    await session.update_state({'name': 'Michael'})
    await chat.send('hi')
    assert texts(chat.messages)[0] == 'greet Pavel'


async def test_c7_system_and_messages_are_preamble(ai):
    chat = ai.chat(
        model='echoModel',
        system='system instructions',
        messages=[
            Message(role='user', content=[Part(text='hi')]),
            Message(role='model', content=[Part(text='bye')]),
        ],
    )
    response = await chat.send('hi again')
    messages = response.messages
    assert [m.metadata for m in messages[:3]] == [{'preamble': True}] * 3
    assert texts(messages[:4]) == ['system instructions', 'hi', 'bye', 'hi again']
    assert messages[3].metadata is None
    assert texts(messages)[4] == 'Echo: system: system instructions,hi,bye,hi again; config: {}'


async def test_c8_prompt_with_history(ai):
    prompt = ai.define_prompt(name='hi', system='system instructions', prompt='hi {{ name }}')
    history = [
        Message(role='user', content=[Part(text='hi')]),
        Message(role='model', content=[Part(text='bye')]),
    ]
    response = await ai.chat(prompt, input={'name': 'Genkit'}, messages=history).send('hi again')
    assert texts(response.messages)[:5] == ['system instructions', 'hi', 'bye', 'hi Genkit', 'hi again']
    assert [bool(m.metadata and m.metadata.get('preamble')) for m in response.messages] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]


async def test_tool_loop_is_stored_in_full(ai, programmable_model, memory_store):
    @ai.tool(name='getWeather')
    async def get_weather(city: str) -> str:
        return f'sunny in {city}'

    programmable_model.respond_with(
        [
            {'text': 'calling', 'tool_requests': [{'name': 'getWeather', 'input': 'Paris', 'ref': 'r1'}]},
            'sunny',
        ]
    )
    session = ai.create_session(store=memory_store)
    chat = session.chat('weather', model='programmableModel', system='sys', tools=['getWeather'])
    await chat.send('weather?')
    stored = (await memory_store.get(session.id))['threads']['weather']
    assert stored == [
        {'role': 'system', 'content': [{'text': 'sys'}], 'metadata': {'preamble': True}},
        {'role': 'user', 'content': [{'text': 'weather?'}]},
        {
            'role': 'model',
            'content': [
                {'text': 'calling'},
                {'toolRequest': {'name': 'getWeather', 'input': 'Paris', 'ref': 'r1'}},
            ],
        },
        {
            'role': 'tool',
            'content': [{'toolResponse': {'name': 'getWeather', 'ref': 'r1', 'output': 'sunny in Paris'}}],
        },
        {'role': 'model', 'content': [{'text': 'sunny'}]},
    ]
    assert dump(chat.messages) == stored


async def test_failed_streamed_turn_is_reported_and_not_recorded(ai, programmable_model, memory_store):
    # genkit 0.12 boxes a failed generate into response.error; a chat turn does the same.
    programmable_model.respond_with(lambda request, send_chunk: send_chunk('partial') or RuntimeError('boom'))
    session = ai.create_session(store=memory_store)
    chat = session.chat(model='programmableModel')
    streamed = chat.send_stream('hi')
    assert [c.text async for c in streamed.stream] == ['partial']
    response = await streamed.response
    assert response.error is not None and response.finish_reason == 'failed'
    assert chat.messages == []
    assert await memory_store.get(session.id) is None


async def test_error_outside_generate_reaches_stream_and_response(ai, memory_store):
    chat = ai.create_session(store=memory_store).chat(model='noSuchModel')
    streamed = chat.send_stream('hi')
    with pytest.raises(Exception, match='noSuchModel') as from_stream:
        async for _ in streamed.stream:
            pass
    with pytest.raises(type(from_stream.value)):
        await streamed.response
    assert chat.messages == []


async def test_streaming_chunks_from_programmable_model(ai, programmable_model):
    programmable_model.respond_with({'chunks': ['a', 'b'], 'text': 'ab'})
    chat = ai.chat(model='programmableModel')
    streamed = chat.send_stream('go')
    assert [c.text async for c in streamed] == ['a', 'b']
    assert (await streamed.response).text == 'ab'
    assert (await chat.send_stream('again')).text == 'ab'


async def test_on_chunk_option_of_send(ai):
    seen = []
    response = await ai.chat().send('hi', on_chunk=lambda chunk: seen.append(chunk.text))
    assert seen == ['3', '2', '1']
    assert response.text == 'Echo: hi; config: {}'


async def test_failed_send_changes_nothing(ai, programmable_model, capturing_store):
    programmable_model.respond_with(['ok', ValueError('model down')])
    session = ai.create_session(store=capturing_store)
    chat = session.chat(model='programmableModel')
    await chat.send('first')
    saves_before, messages_before = len(capturing_store.saves), dump(chat.messages)
    failed = await chat.send('second')
    assert failed.error is not None and failed.finish_reason == 'failed'
    assert dump(chat.messages) == messages_before
    assert len(capturing_store.saves) == saves_before


async def test_messages_readable_before_first_send(ai):
    assert texts(ai.chat(system='be nice').messages) == ['be nice']
    assert ai.chat().messages == []


async def test_reload_with_new_system_replaces_old_preamble(ai, memory_store):
    session = ai.create_session(store=memory_store)
    await session.chat(system='OLD SYS').send('hi')
    loaded = await ai.load_session(session.id, store=memory_store)
    kept = loaded.chat()
    assert texts(kept.messages)[0] == 'OLD SYS'
    replaced = loaded.chat(system='NEW SYS')
    assert texts(replaced.messages)[:2] == ['NEW SYS', 'hi']
    await replaced.send('again')
    stored = (await memory_store.get(session.id))['threads']['main']
    assert [m['content'][0]['text'] for m in stored][:2] == ['NEW SYS', 'hi']
    assert sum(m.get('metadata', {}).get('preamble', False) for m in stored) == 1


async def test_prompt_option_at_creation_is_untagged_user_message(ai):
    response = await ai.chat(prompt='base prompt').send('hello')
    assert texts(response.messages)[:2] == ['base prompt', 'hello']
    assert response.messages[0].metadata is None


# -- JS quirks fixed on purpose ---------------------------------------------------------


async def test_fix_per_send_config_applies_to_that_send_only(ai):
    chat = ai.chat(config={'temperature': 1})
    assert (await chat.send('hi', config={'temperature': 5})).text.endswith('; config: {"temperature":5}')
    assert (await chat.send('again')).text.endswith('; config: {"temperature":1}')


async def test_fix_namespaced_tools_keep_resolving(ai, programmable_model):
    @ai.tool(name='ns/add')
    async def add(numbers: list[int]) -> int:
        return sum(numbers)

    def respond(request, send_chunk):
        names = [tool.name for tool in request.tools or []]
        last = request.messages[-1]
        if last.role == 'tool':
            return f'sum is {last.content[0].tool_response.output}; tools {names}'
        return {'tool_requests': [{'name': names[0], 'input': [1, 2], 'ref': 'x'}]}

    programmable_model.respond_with(respond)
    chat = ai.chat(model='programmableModel', tools=['ns/add'])
    first = await chat.send('add')
    second = await chat.send('add again')
    assert first.text.startswith('sum is 3')
    assert second.text.startswith('sum is 3')
    assert programmable_model.request_count == 4


async def test_fix_per_send_messages_are_appended(ai):
    chat = ai.chat(system='sys')
    await chat.send('one')
    extra = [Message(role='user', content=[Part(text='extra')])]
    response = await chat.send('two', messages=extra)
    assert texts(response.messages)[:5] == ['sys', 'one', texts(response.messages)[2], 'extra', 'two']
    assert len(chat.messages) == 6


@pytest.mark.parametrize('make_store', [SqliteSessionStore, FileSessionStore])
async def test_fix_ai_chat_honours_store_and_session_id(ai, tmp_path, make_store):
    store = make_store(tmp_path / 'store')
    chat = ai.chat(store=store, session_id='fixed', system='sys')
    assert chat.session_id == 'fixed'
    await chat.send('one')
    again = ai.chat(store=store, session_id='fixed')
    response = await again.send('two')
    assert texts(response.messages)[:3] == ['sys', 'one', texts(response.messages)[2]]
    assert len((await store.get('fixed'))['threads']['main']) == 5


async def test_send_span_carries_session_and_thread(ai, spans):
    session = ai.create_session()
    await session.chat('t1').send('weather?')
    by_name = {span.name: span for span in spans.get_finished_spans()}
    send = by_name['send']
    assert send.attributes['genkit:type'] == 'helper'
    assert send.attributes['genkit:sessionId'] == session.id
    assert send.attributes['genkit:threadName'] == 't1'
    assert (
        '"prompt": "weather?"' in send.attributes['genkit:input']
        or '"prompt":"weather?"' in send.attributes['genkit:input']
    )
    generate = by_name['generate']
    assert generate.parent.span_id == send.context.span_id
    assert 'genkit:sessionId' not in generate.attributes


async def test_thread_and_preamble_by_keyword(ai, memory_store):
    agent = ai.define_prompt(name='agent', system='from prompt')
    session = ai.create_session(store=memory_store)
    await session.chat(thread='kw', preamble=agent).send('hi')
    await session.chat(thread='plain', system='sys').send('hi')
    stored = (await memory_store.get(session.id))['threads']
    assert list(stored) == ['kw', 'plain']
    assert stored['kw'][0]['content'] == [{'text': 'from prompt'}]
