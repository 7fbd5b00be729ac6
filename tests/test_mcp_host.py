"""The MCP host as JS users configure it: config dicts, lazy connect, any loop, run-time changes.

Against real MCP servers (FastMCP, tests/mcp_server.py) over stdio and streamable HTTP.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from typing import Any

import pytest
from genkit import GenkitError

pytest.importorskip('mcp')

from genkit_parity.mcp import (
    McpHostClosedError,
    McpServerStartError,
    McpServerUnavailableError,
    create_mcp_client,
    define_mcp_host,
)

from ._loopback import free_port
from .test_mcp import SERVER, http_server, wait_for_port  # noqa: F401 - the fixture

STDIO = {'command': sys.executable, 'args': [SERVER, 'stdio']}


def tool_names(tools: list[Any]) -> list[str]:
    return [tool.action().name for tool in tools]


async def test_js_config_dicts_over_stdio_and_http(ai, http_server):  # noqa: F811
    host = define_mcp_host(
        ai,
        'mcp',
        {
            'local': {**STDIO, 'env': {'TOKEN': 'from-env'}},
            'remote': {'url': http_server, 'headers': {'x-token': 'from-header'}},
            'off': {**STDIO, 'disabled': True},
        },
    )
    try:
        assert host.servers == {'local': 'disconnected', 'remote': 'disconnected', 'off': 'disabled'}
        names = [m['name'] for m in await host.provider.list_action_metadata('tool', '*')]
        assert 'local/whoami' in names and 'remote/whoami' in names
        assert not any(name.startswith('off/') for name in names)
        for server, expected in (('local', 'from-env'), ('remote', 'from-header')):
            whoami = await host.provider.get_action('tool', f'{server}/whoami')
            assert (await whoami.run({})).response.output == expected
        assert host.servers == {'local': 'connected', 'remote': 'connected', 'off': 'disabled'}
    finally:
        await host.close()


def test_unknown_keys_and_bad_values_are_type_errors(ai):
    with pytest.raises(TypeError, match=r"MCP server 'fs': unknown config key 'comand'"):
        define_mcp_host(ai, 'h1', {'fs': {'comand': 'npx'}})
    with pytest.raises(TypeError, match=r"MCP server 'fs': unknown config key 'transport'.*not supported"):
        define_mcp_host(ai, 'h2', {'fs': {'transport': object()}})
    with pytest.raises(TypeError, match=r"MCP server 'x': give either command .* or url"):
        define_mcp_host(ai, 'h3', {'x': {'command': 'a', 'url': 'http://127.0.0.1:1/mcp'}})
    with pytest.raises(TypeError, match=r"MCP server 'x': \"args\" must be a list of str"):
        define_mcp_host(ai, 'h4', {'x': {'command': 'a', 'args': 'b c'}})
    with pytest.raises(TypeError, match=r"MCP server 'x': 'headers' must be a dict of str to str"):
        define_mcp_host(ai, 'h5', {'x': {'url': 'http://127.0.0.1:1/mcp', 'headers': {'a': 1}}})
    with pytest.raises(TypeError, match=r"MCP server 'x': \"disabled\" must be a bool"):
        define_mcp_host(ai, 'h6', {'x': {**STDIO, 'disabled': 'yes'}})
    with pytest.raises(ValueError, match=r"MCP server 'x': url must be http"):
        define_mcp_host(ai, 'h7', {'x': {'url': 'ftp://host/mcp'}})


async def test_connects_lazily_on_first_generate(ai, programmable_model):
    def respond(request, send_chunk):
        if request.messages[-1].role == 'tool':
            return 'sum is ' + str(request.messages[-1].content[0].tool_response.output)
        return {'tool_requests': [{'name': 't/add', 'input': {'a': 40, 'b': 2}, 'ref': 'r'}]}

    programmable_model.respond_with(respond)
    host = define_mcp_host(ai, 'lazy', {'t': STDIO})  # no connect()
    try:
        response = await ai.generate(model='programmableModel', prompt='add', tools=['lazy:tool/*'])
        assert response.text == 'sum is 42'
    finally:
        await host.close()


async def test_works_from_other_threads_and_loops(ai):
    host = define_mcp_host(ai, 'mcp', {'t': STDIO})
    try:
        add = await host.provider.get_action('tool', 't/add')
        assert (await add.run({'a': 1, 'b': 2})).response.output == '3'
        results: list[Any] = []

        def elsewhere(n: int) -> None:
            async def call() -> str:  # a fresh event loop in another thread, as genkit's reflection server
                tool = await host.provider.get_action('tool', 't/add')
                return str((await tool.run({'a': n, 'b': n})).response.output)

            try:
                results.append(asyncio.run(call()))
            except BaseException as error:
                results.append(error)

        threads = [threading.Thread(target=elsewhere, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join, 30)
        assert sorted(results) == ['0', '2', '4', '6']
        assert (await add.run({'a': 5, 'b': 5})).response.output == '10'  # still fine on this loop
    finally:
        await host.close()


def test_a_host_outlives_the_loop_that_first_used_it(ai):
    host = define_mcp_host(ai, 'mcp', {'t': STDIO})

    async def add(a: int) -> str:
        tool = await host.provider.get_action('tool', 't/add')
        return str((await tool.run({'a': a, 'b': 1})).response.output)

    assert asyncio.run(add(1)) == '2'  # that loop is closed now
    assert asyncio.run(add(2)) == '3'
    asyncio.run(host.close())


async def test_a_server_that_fails_to_start_says_why_with_its_stderr(ai):
    crashing = {
        'command': sys.executable,
        'args': ['-c', 'import sys; sys.stderr.write("config error: MY_API_KEY is not set\\n"); sys.exit(2)'],
    }
    host = define_mcp_host(ai, 'mcp', {'bad': crashing, 'missing': {'command': '/nonexistent/mcp-server'}})
    with pytest.raises(McpServerStartError) as raised:
        await host.client('bad').ready()
    message = str(raised.value)
    assert "MCP server 'bad' failed to start" in message
    assert 'MY_API_KEY is not set' in message and 'TaskGroup' not in message
    assert raised.value.status == 'UNAVAILABLE'
    with pytest.raises(
        McpServerStartError, match=r"'missing' failed to start .*(FileNotFoundError|No such file)"
    ):
        await host.client('missing').ready()
    # Nothing offered: the listing raises the first failure instead of an empty list.
    with pytest.raises(McpServerStartError, match='failed to start'):
        await host.get_active_tools(ai)
    assert host.servers == {'bad': 'error', 'missing': 'error'}
    await host.close()


async def test_closed_host_and_disabled_server_say_so(ai, programmable_model):
    programmable_model.respond_with(lambda request, send_chunk: 'never')
    host = define_mcp_host(ai, 'mcp', {'t': STDIO})
    add = await host.provider.get_action('tool', 't/add')
    await host.disable('t')
    with pytest.raises(
        McpServerUnavailableError, match=r"'t' is not available \(disabled\); call host\.enable"
    ):
        await add.run({'a': 1, 'b': 1})
    assert await host.get_active_tools(ai) == []
    await host.enable('t')
    assert (await add.run({'a': 1, 'b': 1})).response.output == '2'
    await host.close()
    with pytest.raises(McpServerUnavailableError, match=r'\(closed\); call host\.connect\(\)'):
        await add.run({'a': 1, 'b': 1})
    with pytest.raises(McpHostClosedError, match=r"MCP host 'mcp' is closed; call await host\.connect\(\)"):
        await ai.generate(model='programmableModel', prompt='x', tools=['mcp:tool/t/add'])
    await host.connect()
    assert (await add.run({'a': 2, 'b': 2})).response.output == '4'
    await host.close()


async def test_servers_added_and_removed_at_run_time(ai, http_server):  # noqa: F811
    host = define_mcp_host(ai, 'mcp', {})
    try:
        assert await host.provider.list_action_metadata('tool', '*') == []
        await host.add_server('web', {'url': http_server})
        names = [m['name'] for m in await host.provider.list_action_metadata('tool', '*')]
        assert 'web/add' in names
        await host.add_server('local', STDIO)
        assert {n.split('/')[0] for n in tool_names(await host.get_active_tools(ai))} == {'web', 'local'}
        await host.remove_server('web')
        assert {n.split('/')[0] for n in tool_names(await host.get_active_tools(ai))} == {'local'}
        assert await host.provider.get_action('tool', 'web/add') is None
        with pytest.raises(ValueError, match='unknown MCP server'):
            await host.remove_server('web')
    finally:
        await host.close()


async def test_active_tools_resources_and_raw_responses(ai, programmable_model):
    host = define_mcp_host(ai, 'mcp', {'t': STDIO}, raw_tool_responses=True)
    try:
        tools = await host.get_active_tools(ai)
        assert tool_names(tools) == ['t/add', 't/pixel', 't/grow', 't/whoami', 't/crash', 't/wait']
        add = next(t for t in tools if t.action().name == 't/add')
        raw = (await add.action().run({'a': 2, 'b': 5})).response.output
        assert raw['content'] == [{'type': 'text', 'text': '7'}] and raw['isError'] is False
        resources = await host.get_active_resources(ai)
        assert [(r.server, r.uri, r.description) for r in resources] == [
            ('t', 'note://hello', 'A short note')
        ]
        assert [p.text for p in await resources[0].read()] == ['hi there']
        prompts = await host.get_active_prompts(ai)
        assert [p.name for p in prompts] == ['t/greet']

        # Active tools go straight into generate, as in JS.
        def respond(request, send_chunk):
            if request.messages[-1].role == 'tool':
                return json.dumps(request.messages[-1].content[0].tool_response.output['content'])
            return {'tool_requests': [{'name': 't/add', 'input': {'a': 1, 'b': 1}, 'ref': 'r'}]}

        programmable_model.respond_with(respond)
        response = await ai.generate(model='programmableModel', prompt='go', tools=tools)
        assert json.loads(response.text) == [{'type': 'text', 'text': '2'}]
    finally:
        await host.close()


async def test_single_server_client(ai, http_server):  # noqa: F811
    client = create_mcp_client('web', {'url': http_server})
    try:
        assert client.status == 'disconnected'
        tools = await client.get_active_tools(ai)
        assert 'web/add' in tool_names(tools)
        assert client.status == 'connected'
        named = create_mcp_client('my-client', STDIO, server_name='fs')
        assert tool_names(await named.get_active_tools(ai))[0] == 'fs/add'
        await named.close()
        with pytest.raises(McpServerUnavailableError, match=r'\(closed\); call client\.connect\(\)'):
            await named.call_tool('add', {'a': 1, 'b': 1})
        await named.restart()
        assert (await named.call_tool('add', {'a': 1, 'b': 1})).content[0].text == '2'
        await named.close()
    finally:
        await client.close()


async def test_listing_trace_carries_names_only(ai, spans):
    host = define_mcp_host(ai, 'mcp', {'t': STDIO})
    try:
        await host.provider.get_action('tool', 't/add')
        (fetch,) = [s for s in spans.get_finished_spans() if s.name == 'mcp']
        listing = json.loads(fetch.attributes['genkit:input'])
        assert listing == {
            'tool': ['t/add', 't/pixel', 't/grow', 't/whoami', 't/crash', 't/wait'],
            'prompt': ['t/greet'],
        }
        assert json.loads(fetch.attributes['genkit:output']) == listing
        assert len(fetch.attributes['genkit:input']) + len(fetch.attributes['genkit:output']) < 400
    finally:
        await host.close()


async def test_requests_waiting_on_a_connection_this_side_shuts_fail_at_once(ai):
    host = define_mcp_host(ai, 'mcp', {'t': STDIO})
    for shut, reason in ((host.disable, 'disabled'), (host.reconnect, 'reconnected')):
        await host.client('t').ready()
        waiting = asyncio.ensure_future(host.client('t').call_tool('wait'))
        await asyncio.sleep(0.3)  # the call is with the server now
        await shut('t')
        with pytest.raises(McpServerUnavailableError, match=f'{reason} while the request waited'):
            await waiting
        await host.enable('t')
    await host.close()


async def test_a_server_that_does_not_answer_is_deadline_exceeded_and_skipped(ai, monkeypatch):
    from genkit_parity import mcp_client

    monkeypatch.setattr(mcp_client, 'LIST_TIMEOUT_SECONDS', 1.0)
    monkeypatch.setattr(mcp_client, 'CALL_TIMEOUT_SECONDS', 1.0)
    slow = {**STDIO, 'env': {'MCP_TEST_SLOW_LIST': '1'}}
    async with define_mcp_host(ai, 'mcp', {'t': STDIO, 'slow': slow}) as host:
        # The silent server is left out of the listing; the healthy one's tools are there.
        assert 't/add' in tool_names(await host.get_active_tools(ai))
        with pytest.raises(GenkitError, match=r"'slow': tools/list got no answer within 1 s") as late:
            await host.client('slow').list_tools()
        assert late.value.status == 'DEADLINE_EXCEEDED'
        with pytest.raises(GenkitError, match=r"'t': tool 'wait' got no answer within 1 s"):
            await host.client('t').call_tool('wait')
        # The connection itself is fine: the next call is answered.
        assert (await host.client('t').call_tool('add', {'a': 1, 'b': 2})).content[0].text == '3'


async def test_a_banner_on_stdout_is_named_only_if_the_server_then_never_answers(ai, monkeypatch):
    from genkit_parity import mcp_client

    monkeypatch.setattr(mcp_client, 'CONNECT_TIMEOUT_SECONDS', 2.0)
    servers = {
        'chatty': {'command': sys.executable, 'args': [SERVER, 'banner']},
        'noisy': {'command': sys.executable, 'args': [SERVER, 'garbage']},
    }
    async with define_mcp_host(ai, 'mcp', {'chatty': servers['chatty']}) as host:
        # A banner, then a working server: it connects and works, as with the SDK alone.
        assert (await host.client('chatty').call_tool('add', {'a': 1, 'b': 2})).content[0].text == '3'
    host = define_mcp_host(ai, 'mcp2', {'noisy': servers['noisy']})
    with pytest.raises(
        McpServerStartError, match=r'no answer to initialize within 2 s \(it wrote what is not JSON-RPC'
    ):
        await host.client('noisy').ready()
    await host.close()


async def test_a_remote_server_that_dies_fails_the_next_call_at_once(ai):
    port = free_port()
    process = subprocess.Popen([sys.executable, SERVER, 'http', str(port)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        async with define_mcp_host(ai, 'mcp', {'r': {'url': f'http://127.0.0.1:{port}/mcp'}}) as host:
            waiting = asyncio.ensure_future(host.client('r').call_tool('wait'))
            await asyncio.sleep(0.5)
            process.kill()
            process.wait()
            with pytest.raises(McpServerUnavailableError):
                await asyncio.wait_for(waiting, 30)
            with pytest.raises(McpServerUnavailableError):
                await asyncio.wait_for(host.client('r').call_tool('add', {'a': 1, 'b': 2}), 30)
    finally:
        process.kill()
        process.wait()


def test_a_connect_timeout_leaves_no_unretrieved_future_at_exit():
    code = """
import asyncio, sys
from genkit_parity import Genkit
from genkit_parity import mcp_client
from genkit_parity.mcp import McpServerStartError, define_mcp_host
mcp_client.CONNECT_TIMEOUT_SECONDS = 0.5
async def main():
    mute = {'command': sys.executable, 'args': ['-c', 'import time; time.sleep(30)']}
    host = define_mcp_host(Genkit(), 'mcp', {'mute': mute})
    try:
        await host.client('mute').ready()
    except McpServerStartError as error:
        print('no answer to initialize' in str(error))
    await host.close()
asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, '-X', 'dev', '-c', code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'True'
    assert 'never retrieved' not in done.stderr, done.stderr


async def _relay_cutting_idle_streams(client_reader, client_writer, upstream_port: int) -> None:
    """Relay one connection; a GET (the SDK's idle server stream) is cut after 1 s."""
    server_reader, server_writer = await asyncio.open_connection('127.0.0.1', upstream_port)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    first = await client_reader.read(65536)
    server_writer.write(first)
    await server_writer.drain()
    pipes = [
        asyncio.ensure_future(pipe(client_reader, server_writer)),
        asyncio.ensure_future(pipe(server_reader, client_writer)),
    ]
    if first.startswith(b'GET '):
        await asyncio.sleep(1.0)  # as a load balancer cuts an idle stream
        client_writer.transport.abort()
        server_writer.close()
        for each in pipes:
            each.cancel()
        return
    await asyncio.gather(*pipes, return_exceptions=True)


async def test_a_cut_idle_server_stream_is_not_a_lost_server(ai):
    upstream = free_port()
    process = subprocess.Popen([sys.executable, SERVER, 'http', str(upstream)], stderr=subprocess.DEVNULL)
    relay = await asyncio.start_server(
        lambda r, w: _relay_cutting_idle_streams(r, w, upstream), '127.0.0.1', 0
    )
    port = relay.sockets[0].getsockname()[1]
    try:
        wait_for_port(upstream, process)
        async with define_mcp_host(ai, 'mcp', {'r': {'url': f'http://127.0.0.1:{port}/mcp'}}) as host:
            assert (await host.client('r').call_tool('add', {'a': 1, 'b': 2})).content[0].text == '3'
            await asyncio.sleep(2.5)  # the GET stream has been cut (the SDK reconnects it)
            assert (await host.client('r').call_tool('add', {'a': 2, 'b': 2})).content[0].text == '4'
            assert host.servers == {'r': 'connected'}
    finally:
        relay.close()
        process.kill()
        process.wait()
