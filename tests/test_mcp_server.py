"""create_mcp_server: a Genkit app's tools and prompts over MCP (stdio and streamable HTTP).

Clients are the official mcp SDK's ClientSession and genkit-parity's own host.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip('mcp')

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from genkit_parity.mcp import create_mcp_server, define_mcp_host

from .test_mcp import free_port, wait_for_port

APP = str(Path(__file__).with_name('genkit_mcp_app.py'))


@pytest.fixture(scope='module')
def http_app() -> Iterator[str]:
    port = free_port()
    with subprocess.Popen(
        [sys.executable, APP, 'http', str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as process:
        try:
            wait_for_port(port, process)
            yield f'http://127.0.0.1:{port}/mcp'
        finally:
            process.terminate()
            process.wait(timeout=10)


@contextlib.asynccontextmanager
async def official_client(transport: str, url: str) -> AsyncIterator[ClientSession]:
    async with contextlib.AsyncExitStack() as stack:
        if transport == 'stdio':
            params = StdioServerParameters(command=sys.executable, args=[APP, 'stdio'])
            read, write = await stack.enter_async_context(stdio_client(params))
        else:
            read, write, _ = await stack.enter_async_context(streamable_http_client(url))
        session = await stack.enter_async_context(ClientSession(read, write))
        info = await session.initialize()
        assert (info.serverInfo.name, info.serverInfo.version) == ('genkit-app', '0.3.0')
        yield session


@pytest.mark.parametrize('transport', ['stdio', 'http'])
async def test_official_client_lists_and_calls_tools_and_prompts(transport, http_app):
    async with official_client(transport, http_app) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert sorted(tools) == ['broken', 'place_order', 'shout']
        assert tools['shout'].description == 'Shouts a word'
        assert tools['shout'].inputSchema == {
            'type': 'object',
            'properties': {'input': {'type': 'string'}},
            'required': ['input'],
        }
        assert tools['place_order'].inputSchema['type'] == 'object'
        assert set(tools['place_order'].inputSchema['properties']) == {'item', 'quantity'}

        shouted = await session.call_tool('shout', {'input': 'hey'})
        assert not shouted.isError and shouted.content[0].text == 'HEY!'
        ordered = await session.call_tool('place_order', {'item': 'tea', 'quantity': 4})
        assert json.loads(ordered.content[0].text) == {'ok': True, 'item': 'tea', 'total': 12}
        failed = await session.call_tool('broken', {'input': 'x'})
        assert failed.isError and 'cannot handle x' in failed.content[0].text
        invalid = await session.call_tool('place_order', {'item': 'tea'})
        assert invalid.isError and 'quantity' in invalid.content[0].text

        prompts = (await session.list_prompts()).prompts
        assert [p.name for p in prompts] == ['haiku']  # genkit 0.12 keeps no prompt description
        assert [(a.name, a.required) for a in prompts[0].arguments] == [('topic', True)]
        rendered = await session.get_prompt('haiku', {'topic': 'rust'})
        assert [(m.role, m.content.text) for m in rendered.messages] == [
            ('user', 'You write haiku.'),
            ('user', 'Write a haiku about rust.'),
        ]


async def test_our_host_on_our_server(ai, programmable_model, http_app):
    def respond(request, send_chunk):
        if request.messages[-1].role == 'tool':
            return 'got ' + str(request.messages[-1].content[0].tool_response.output)
        return {'tool_requests': [{'name': 'app/shout', 'input': {'input': 'mcp'}, 'ref': 'r'}]}

    programmable_model.respond_with(respond)
    host = define_mcp_host(
        ai,
        'mcp',
        {'app': {'command': sys.executable, 'args': [APP, 'stdio']}, 'web': {'url': http_app}},
    )
    try:
        names = sorted(m['name'] for m in await host.provider.list_action_metadata('tool', '*'))
        assert names == [
            'app/broken',
            'app/place_order',
            'app/shout',
            'web/broken',
            'web/place_order',
            'web/shout',
        ]
        response = await ai.generate(model='programmableModel', prompt='go', tools=['mcp:tool/app/shout'])
        assert response.text == 'got MCP!'
        messages = await host.get_prompt('web', 'haiku', {'topic': 'tea'})
        assert [m.content[0].text for m in messages] == ['You write haiku.', 'Write a haiku about tea.']
    finally:
        await host.close()


def test_bad_server_options(ai):
    with pytest.raises(ValueError, match='name must be a non-empty str'):
        create_mcp_server(ai, name='')
    with pytest.raises(ValueError, match='version must be a non-empty str'):
        create_mcp_server(ai, name='x', version='')
