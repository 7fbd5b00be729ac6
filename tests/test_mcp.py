"""The MCP host against a real MCP server (FastMCP, tests/mcp_server.py) over stdio and HTTP."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip('mcp')

from genkit_parity.mcp import McpServerUnavailableError, StdioServerParameters, define_mcp_host

SERVER = str(Path(__file__).with_name('mcp_server.py'))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until ``process`` listens on ``port`` (fails with its stderr if it exits first)."""
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(('127.0.0.1', port)) == 0:
                return
        if process.poll() is not None:
            raise AssertionError(f'MCP HTTP server exited: {process.stderr.read() if process.stderr else ""}')
        assert time.monotonic() < deadline, 'MCP HTTP server did not start'
        time.sleep(0.05)


@pytest.fixture
def http_server():
    port = free_port()
    with subprocess.Popen(
        [sys.executable, SERVER, 'http', str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as process:
        wait_for_port(port, process)
        try:
            yield f'http://127.0.0.1:{port}/mcp'
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(params=['stdio', 'http'])
def server_target(request):
    if request.param == 'stdio':
        return StdioServerParameters(command=sys.executable, args=[SERVER, 'stdio'])
    return request.getfixturevalue('http_server')


async def test_tools_are_listed_and_called(ai, server_target):
    async with define_mcp_host(ai, 'mcp', {'t': server_target}) as host:
        names = [m['name'] for m in await host.provider.list_action_metadata('tool', '*')]
        assert names == ['t/add', 't/pixel', 't/grow', 't/whoami', 't/crash', 't/wait']
        add = await host.provider.get_action('tool', 't/add')
        assert (await add.run({'a': 2, 'b': 3})).response.output == '5'
        pixel = await host.provider.get_action('tool', 't/pixel')
        image = (await pixel.run({})).response
        assert image.content[0].media.content_type == 'image/png'
        assert image.content[0].media.url.startswith('data:image/png;base64,iVBOR')


async def test_generate_calls_server_tools(ai, programmable_model, server_target):
    def respond(request, send_chunk):
        last = request.messages[-1]
        if last.role == 'tool':
            return 'sum is ' + str(last.content[0].tool_response.output)
        assert 'add' in {tool.name for tool in request.tools}  # as JS: the name after the last '/'
        return {'tool_requests': [{'name': 'add', 'input': {'a': 20, 'b': 22}, 'ref': 'r'}]}

    programmable_model.respond_with(respond)
    async with define_mcp_host(ai, 'mcp', {'t': server_target}):
        response = await ai.generate(model='programmableModel', prompt='add', tools=['mcp:tool/*'])
    assert response.text == 'sum is 42'


async def test_list_changed_notification_refreshes_tools(ai):
    target = StdioServerParameters(command=sys.executable, args=[SERVER, 'stdio'])
    async with define_mcp_host(ai, 'mcp', {'t': target}) as host:
        await host.provider.list_action_metadata('tool', '*')
        grow = await host.provider.get_action('tool', 't/grow')
        assert (await grow.run({})).response.output == 'grown'
        for _ in range(100):
            fresh = await host.provider.get_action('tool', 't/fresh')
            if fresh is not None:
                break
            await asyncio.sleep(0.02)
        assert fresh is not None
        assert (await fresh.run({})).response.output == 'so fresh'


async def test_dead_server_gives_a_clear_error_and_reconnects(ai):
    target = StdioServerParameters(command=sys.executable, args=[SERVER, 'stdio'])
    async with define_mcp_host(ai, 'mcp', {'t': target}) as host:
        crash = await host.provider.get_action('tool', 't/crash')
        add = await host.provider.get_action('tool', 't/add')
        with pytest.raises(McpServerUnavailableError, match=r"MCP server 't' is not available"):
            await crash.run({})
        with pytest.raises(McpServerUnavailableError, match=r"host\.reconnect\('t'\)") as raised:
            await add.run({'a': 1, 'b': 1})
        assert raised.value.status == 'UNAVAILABLE'
        await host.reconnect('t')
        add = await host.provider.get_action('tool', 't/add')
        assert (await add.run({'a': 1, 'b': 1})).response.output == '2'


async def test_bad_configuration(ai):
    with pytest.raises(TypeError, match='StdioServerParameters or a streamable-HTTP URL'):
        define_mcp_host(ai, 'mcp', {'t': 42})
    with pytest.raises(ValueError, match='server names'):
        define_mcp_host(ai, 'mcp2', {'a/b': 'http://127.0.0.1:1/mcp'})
    host = define_mcp_host(ai, 'mcp3', {'down': f'http://127.0.0.1:{free_port()}/mcp'})
    with pytest.raises(McpServerUnavailableError, match="'down'"):
        await host.connect()
    with pytest.raises(ValueError, match='unknown MCP server'):
        await host.reconnect('nope')
    await host.close()


async def test_prompts_and_resources(ai, server_target):
    async with define_mcp_host(ai, 'mcp', {'t': server_target}) as host:
        assert [m['name'] for m in await host.provider.list_action_metadata('prompt', '*')] == ['t/greet']
        prompt = await host.provider.get_action('prompt', 't/greet')
        rendered = (await prompt.run({'name': 'Ada'})).response
        assert rendered == {'messages': [{'role': 'user', 'content': [{'text': 'Please greet Ada warmly.'}]}]}
        messages = await host.get_prompt('t', 'greet', {'name': 'Bo'})
        assert [(m.role, m.content[0].text) for m in messages] == [('user', 'Please greet Bo warmly.')]
        parts = await host.read_resource('t', 'note://hello')
        assert [p.text for p in parts] == ['hi there']
