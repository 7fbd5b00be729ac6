"""Background actions seen through the real reflection API of a running Genkit (dev mode)."""

from __future__ import annotations

import json

import pytest

from genkit_parity.background import OPERATION_JSON_SCHEMA

from ._reflection import get, post, serve_reflection

HOST = """
from genkit_parity import Genkit

ai = Genkit()

async def start(request, ctx):
    return {'id': 'op1', 'metadata': {'p': 1}}

def check(op):
    message = {'role': 'model', 'content': [{'text': 'done'}]}
    return {'id': op.id, 'done': True, 'output': {'message': message}}

ai.define_background_model(
    'bg', start=start, check=check, report_latency=True,
    config_schema={'type': 'object', 'properties': {'duration': {'type': 'number'}}},
)
ai.define_background_action('job', start=lambda x: {'id': 'j1'}, check=check, cancel=lambda op: op)
"""


@pytest.fixture(scope='module')
def reflection_url(tmp_path_factory):
    with serve_reflection(HOST, tmp_path_factory.mktemp('reflection')) as url:
        yield url


def test_actions_listing_has_js_shapes(reflection_url):
    actions = get(f'{reflection_url}/api/actions')
    start = actions['/background-model/bg']
    assert start['key'] == '/background-model/bg'
    assert start['name'] == 'bg' and start['description'] == 'bg'
    model = start['metadata']['model']
    assert model['label'] == 'bg'
    assert model['supports'] == {'longRunning': True}
    assert model['customOptions'] == {'type': 'object', 'properties': {'duration': {'type': 'number'}}}
    assert {'message', 'finishReason'} <= set(start['metadata']['outputSchema']['properties'])
    assert 'messages' in start['inputSchema']['properties']
    assert start['outputSchema'] == OPERATION_JSON_SCHEMA
    check = actions['/check-operation/bg/check']
    assert check['name'] == 'bg/check' and check['description'] == 'bg'
    assert check['metadata']['model'] == model
    assert check['metadata']['outputSchema'] == start['metadata']['outputSchema']
    assert check['inputSchema'] == check['outputSchema'] == OPERATION_JSON_SCHEMA
    assert '/cancel-operation/bg/cancel' not in actions
    assert {'/custom/job', '/check-operation/job/check', '/cancel-operation/job/cancel'} <= set(actions)


def test_run_start_then_check(reflection_url):
    status, body = post(
        f'{reflection_url}/api/runAction',
        {
            'key': '/background-model/bg',
            'input': {'messages': [{'role': 'user', 'content': [{'text': 'hi'}]}]},
        },
    )
    assert status == 200, body
    started = json.loads(body)
    operation = started['result']
    assert operation['id'] == 'op1' and operation['action'] == '/background-model/bg'
    assert operation['metadata'] == {'p': 1} and operation['latencyMs'] >= 0
    assert started['telemetry']['traceId']
    status, body = post(
        f'{reflection_url}/api/runAction', {'key': '/check-operation/bg/check', 'input': operation}
    )
    assert status == 200, body
    checked = json.loads(body)['result']
    assert checked['done'] is True and checked['action'] == '/background-model/bg'
    assert checked['output']['message']['content'] == [{'text': 'done'}]


def test_missing_cancel_action_is_not_found(reflection_url):
    status, body = post(
        f'{reflection_url}/api/runAction', {'key': '/cancel-operation/bg/cancel', 'input': {'id': 'op1'}}
    )
    assert status == 404, body
    assert '/cancel-operation/bg/cancel' in body
