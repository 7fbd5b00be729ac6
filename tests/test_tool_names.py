"""Tool names the model sees, as JS (spec §4.4): provider tools by their short name.

A tool resolved through a dynamic action provider (``files:tool/fs/read``) is sent to the
model as ``read`` with ``metadata.originalName == 'fs/read'`` and its provider ``key``; the
model's request for ``read`` runs it, on every send of a chat and when streaming. Tools
not from a provider keep genkit 0.12's naming. Two tools the model would see under one
name are an INVALID_ARGUMENT naming both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import genkit
import pytest
from genkit import GenkitError

from genkit_parity import extend
from genkit_parity.testing import define_programmable_model

SERVER = str(Path(__file__).with_name('mcp_server.py'))


def provided_tools(ai, calls, names=('fs/read', 'fs/write')):
    def make(name):
        def run(path: str) -> str:
            calls.append(name)
            return f'{name}({path})'

        return ai.dynamic_tool(run, name=name, description=f'the {name} tool')

    return [make(name) for name in names]


def call_tool(tool_name):
    """A model that asks for ``tool_name`` once per turn, then reports the tool's output."""

    def respond(request, send_chunk):
        last = request.messages[-1]
        if last.role == 'tool':
            part = last.content[0].tool_response
            return f'{part.name} said {part.output}'
        return {'tool_requests': [{'name': tool_name, 'input': 'a.txt', 'ref': 'r1'}]}

    return respond


def sent_tools(request):
    return [(t.name, (t.metadata or {}).get('originalName'), t.key) for t in request.tools]


async def test_provider_tools_reach_the_model_by_short_name(ai, programmable_model):
    calls: list[str] = []
    ai.define_dynamic_action_provider('files', lambda: {'tool': provided_tools(ai, calls)})
    programmable_model.respond_with(call_tool('read'))

    response = await ai.generate(model='programmableModel', prompt='read it', tools=['files:tool/*'])

    assert response.text == 'read said fs/read(a.txt)'
    assert calls == ['fs/read']
    assert sent_tools(programmable_model.last_request) == [
        ('read', 'fs/read', '/dynamic-action-provider/files:tool/fs/read'),
        ('write', 'fs/write', '/dynamic-action-provider/files:tool/fs/write'),
    ]
    first = programmable_model.last_request.tools[0]
    assert first.description == 'the fs/read tool'
    assert first.input_schema == {'type': 'string'}


async def test_streaming_and_the_full_name_still_run_the_tool(ai, programmable_model):
    calls: list[str] = []
    ai.define_dynamic_action_provider('files', lambda: {'tool': provided_tools(ai, calls)})
    programmable_model.respond_with(call_tool('write'))
    streamed = ai.generate_stream(model='programmableModel', prompt='write', tools=['files:tool/fs/w*'])
    async for _chunk in streamed.stream:
        pass
    assert (await streamed.response).text == 'write said fs/write(a.txt)'
    assert sent_tools(programmable_model.last_request) == [
        ('write', 'fs/write', '/dynamic-action-provider/files:tool/fs/write')
    ]
    # A model that answers with the tool's own name is still understood (as genkit does).
    programmable_model.respond_with(call_tool('fs/read'))
    response = await ai.generate(model='programmableModel', prompt='read', tools=['files:tool/*'])
    assert response.text == 'fs/read said fs/read(a.txt)'
    assert calls == ['fs/write', 'fs/read']


async def test_other_tools_keep_genkit_naming(ai, programmable_model):
    calls: list[str] = []

    @ai.tool(name='ns/add')
    async def add(numbers: list[int]) -> int:
        return sum(numbers)

    ai.define_dynamic_action_provider('files', lambda: {'tool': provided_tools(ai, calls, ['lookup'])})
    programmable_model.respond_with('ok')
    await ai.generate(model='programmableModel', prompt='x', tools=['ns/add', 'files:tool/lookup'])
    assert sent_tools(programmable_model.last_request) == [
        ('ns/add', None, None),  # genkit 0.12's definition, unchanged
        ('lookup', None, '/dynamic-action-provider/files:tool/lookup'),  # not shortened: no originalName
    ]
    assert programmable_model.last_request.tools[0].metadata is None


async def test_a_chat_sends_short_names_and_runs_the_tool_on_every_send(ai, programmable_model):
    calls: list[str] = []
    ai.define_dynamic_action_provider('files', lambda: {'tool': provided_tools(ai, calls)})
    programmable_model.respond_with(call_tool('read'))
    session = ai.create_session()
    chats = [
        ai.chat(model='programmableModel', tools=['files:tool/*']),
        session.chat('other', model='programmableModel', tools=['files:tool/fs/read']),
    ]
    for chat in chats:
        for turn in range(3):
            if turn == 1:
                response = await chat.send_stream('again').response
            else:
                response = await chat.send('again')
            assert response.text == 'read said fs/read(a.txt)'
            assert sent_tools(programmable_model.last_request)[0] == (
                'read',
                'fs/read',
                '/dynamic-action-provider/files:tool/fs/read',
            )
    assert calls == ['fs/read'] * 6
    history = chats[0].messages
    assert [p.tool_request.name for m in history for p in m.content if p.tool_request] == ['read'] * 3


async def test_extended_genkit_names_provider_tools_the_same_way():
    ai = extend(genkit.Genkit())
    model = define_programmable_model(ai)
    calls: list[str] = []
    ai.define_dynamic_action_provider('files', lambda: {'tool': provided_tools(ai, calls)})
    model.respond_with(call_tool('read'))
    response = await ai.generate(model='programmableModel', prompt='read', tools=['files:tool/fs/read'])
    assert response.text == 'read said fs/read(a.txt)'
    assert sent_tools(model.last_request) == [
        ('read', 'fs/read', '/dynamic-action-provider/files:tool/fs/read')
    ]


async def expect_collision(ai, programmable_model, tools, first, second):
    programmable_model.respond_with('never')
    with pytest.raises(GenkitError) as raised:
        await ai.generate(model='programmableModel', prompt='x', tools=tools)
    assert raised.value.status == 'INVALID_ARGUMENT'
    assert f"'{first}' and '{second}'" in str(raised.value)
    assert programmable_model.request_count == 0


async def test_two_provided_tools_with_one_short_name_are_an_error(ai, programmable_model):
    calls: list[str] = []
    ai.define_dynamic_action_provider(
        'files', lambda: {'tool': provided_tools(ai, calls, ['fs/read', 'db/read'])}
    )
    await expect_collision(
        ai, programmable_model, ['files:tool/*'], 'files:tool/fs/read', 'files:tool/db/read'
    )
    assert calls == []


async def test_one_name_from_two_providers_is_an_error_not_a_pick(ai, programmable_model):
    calls: list[str] = []
    ai.define_dynamic_action_provider('a', lambda: {'tool': provided_tools(ai, calls, ['fs/read'])})
    ai.define_dynamic_action_provider('b', lambda: {'tool': provided_tools(ai, calls, ['fs/read'])})
    await expect_collision(
        ai, programmable_model, ['a:tool/*', 'b:tool/*'], 'a:tool/fs/read', 'b:tool/fs/read'
    )


async def test_a_provided_tool_and_a_local_tool_of_one_name_are_an_error(ai, programmable_model):
    @ai.tool(name='read')
    async def local_read(path: str) -> str:
        return path

    @ai.tool(name='fs/read')
    async def local_fs_read(path: str) -> str:
        return path

    calls: list[str] = []
    ai.define_dynamic_action_provider('files', lambda: {'tool': provided_tools(ai, calls, ['fs/read'])})
    await expect_collision(ai, programmable_model, ['read', 'files:tool/*'], 'read', 'files:tool/fs/read')
    await expect_collision(
        ai, programmable_model, ['fs/read', 'files:tool/*'], 'fs/read', 'files:tool/fs/read'
    )


async def test_one_provided_tool_listed_twice_is_sent_once(ai, programmable_model):
    calls: list[str] = []
    ai.define_dynamic_action_provider('files', lambda: {'tool': provided_tools(ai, calls)})
    programmable_model.respond_with(call_tool('read'))
    tools = ['files:tool/*', 'files:tool/fs/read']
    assert (
        await ai.generate(model='programmableModel', prompt='x', tools=tools)
    ).text == 'read said fs/read(a.txt)'
    assert [name for name, _, _ in sent_tools(programmable_model.last_request)] == ['read', 'write']


# -- a real MCP server (tests/mcp_server.py, over stdio) -------------------------------------


@pytest.fixture
def mcp_host(ai):
    pytest.importorskip('mcp')
    from genkit_parity.mcp import define_mcp_host

    return define_mcp_host(ai, 'mcp', {'t': {'command': sys.executable, 'args': [SERVER, 'stdio']}})


async def test_mcp_tools_reach_the_model_by_short_name_on_every_send(ai, programmable_model, mcp_host):
    def respond(request, send_chunk):
        last = request.messages[-1]
        if last.role == 'tool':
            return f'sum is {last.content[0].tool_response.output}'
        return {'tool_requests': [{'name': 'add', 'input': {'a': 20, 'b': 22}, 'ref': 'r'}]}

    programmable_model.respond_with(respond)
    async with mcp_host:
        response = await ai.generate(model='programmableModel', prompt='add', tools=['mcp:tool/*'])
        assert response.text == 'sum is 42'
        assert sent_tools(programmable_model.last_request)[:2] == [
            ('add', 't/add', '/dynamic-action-provider/mcp:tool/t/add'),
            ('pixel', 't/pixel', '/dynamic-action-provider/mcp:tool/t/pixel'),
        ]
        chat = ai.chat(model='programmableModel', tools=['mcp:tool/t/add'])
        for _ in range(2):
            assert (await chat.send('add')).text == 'sum is 42'
            assert sent_tools(programmable_model.last_request) == [
                ('add', 't/add', '/dynamic-action-provider/mcp:tool/t/add')
            ]


async def test_two_mcp_servers_with_one_tool_name_are_an_error(ai, programmable_model):
    pytest.importorskip('mcp')
    from genkit_parity.mcp import define_mcp_host

    server = {'command': sys.executable, 'args': [SERVER, 'stdio']}
    async with define_mcp_host(ai, 'mcp', {'t': server, 'u': server}):
        await expect_collision(ai, programmable_model, ['mcp:tool/*'], 'mcp:tool/t/add', 'mcp:tool/u/add')
