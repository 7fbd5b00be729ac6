"""Dynamic action providers seen through the real reflection API (spec §4.6)."""

from __future__ import annotations

import json

import pytest

from ._reflection import get, post, serve_reflection

HOST = """
from genkit_parity import Genkit

ai = Genkit()

@ai.tool(description='dyn tool')
async def dt1(q: str) -> str:
    return 'ok:' + q

async def provide():
    return {'tool': [dt1]}

ai.define_dynamic_action_provider('mcp-host', provide)
"""


@pytest.fixture(scope='module')
def reflection_url(tmp_path_factory):
    with serve_reflection(HOST, tmp_path_factory.mktemp('dap-reflection')) as url:
        yield url


def test_listing_expands_provided_actions(reflection_url):
    actions = get(f'{reflection_url}/api/actions')
    provider = actions['/dynamic-action-provider/mcp-host']
    assert provider['name'] == 'mcp-host'
    assert provider['metadata']['type'] == 'dynamic-action-provider'
    provided = actions['/dynamic-action-provider/mcp-host:tool/dt1']
    assert provided['key'] == '/dynamic-action-provider/mcp-host:tool/dt1'
    assert provided['name'] == 'dt1'
    assert provided['description'] == 'dyn tool'
    assert provided['inputSchema'] == {'type': 'string'}


def test_run_a_provided_action(reflection_url):
    status, body = post(
        f'{reflection_url}/api/runAction', {'key': '/dynamic-action-provider/mcp-host:tool/dt1', 'input': 'x'}
    )
    assert status == 200, body
    assert json.loads(body)['result']['output'] == 'ok:x'
