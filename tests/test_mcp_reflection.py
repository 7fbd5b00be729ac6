"""An MCP host under genkit's reflection server (dev mode, its own thread and loop).

The app connects its host on the main thread's loop (as ``ai.run_main`` apps do); the Dev
UI's requests arrive on genkit's reflection thread. Both must see and run the MCP tools.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip('mcp')

from ._reflection import get, post, serve_reflection

SERVER = str(Path(__file__).with_name('mcp_server.py'))

APP = f"""
import asyncio
from genkit_parity import Genkit
from genkit_parity.mcp import define_mcp_host
from genkit_parity.testing import define_programmable_model

ai = Genkit()
model = define_programmable_model(ai)

def respond(request, send_chunk):
    if request.messages[-1].role == 'tool':
        return 'sum is ' + str(request.messages[-1].content[0].tool_response.output)
    return {{'tool_requests': [{{'name': 't/add', 'input': {{'a': 20, 'b': 22}}, 'ref': 'r'}}]}}

model.respond_with(respond)
host = define_mcp_host(ai, 'mcp', {{'t': {{'command': {sys.executable!r}, 'args': [{SERVER!r}, 'stdio']}}}})

@ai.flow()
async def add_with_mcp(prompt: str) -> str:
    response = await ai.generate(model='programmableModel', prompt=prompt, tools=['mcp:tool/*'])
    return response.text

asyncio.run(host.connect())  # on a loop that is gone when the Dev UI asks
"""


@pytest.fixture(scope='module')
def reflection_url(tmp_path_factory):
    with serve_reflection(APP, tmp_path_factory.mktemp('mcp-reflection')) as url:
        yield url


def test_actions_list_the_mcp_tools(reflection_url):
    actions = get(f'{reflection_url}/api/actions')
    tool = actions['/dynamic-action-provider/mcp:tool/t/add']
    assert tool['name'] == 't/add' and tool['description'] == 'Adds two numbers'
    assert set(tool['inputSchema']['properties']) == {'a', 'b'}
    assert '/dynamic-action-provider/mcp:prompt/t/greet' in actions


def test_run_a_flow_that_calls_an_mcp_tool(reflection_url):
    status, body = post(f'{reflection_url}/api/runAction', {'key': '/flow/add_with_mcp', 'input': 'add'})
    assert status == 200, body
    assert json.loads(body)['result'] == 'sum is 42'


def test_run_the_mcp_tool_itself(reflection_url):
    status, body = post(
        f'{reflection_url}/api/runAction',
        {'key': '/dynamic-action-provider/mcp:tool/t/add', 'input': {'a': 2, 'b': 3}},
    )
    assert status == 200, body
    assert json.loads(body)['result']['output'] == '5'
