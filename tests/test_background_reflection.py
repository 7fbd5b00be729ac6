"""Background actions seen through the real reflection API of a running Genkit (dev mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from genkit_parity.background import OPERATION_JSON_SCHEMA

HOST = textwrap.dedent(
    """
    import glob, sys, time
    from genkit_parity import Genkit

    ai = Genkit()

    async def start(request, ctx):
        return {'id': 'op1', 'metadata': {'p': 1}}

    def check(op):
        message = {'role': 'model', 'content': [{'text': 'done'}]}
        return {'id': op.id, 'done': True, 'output': {'message': message}}

    ai.define_background_model(
        'bg', start=start, check=check,
        config_schema={'type': 'object', 'properties': {'duration': {'type': 'number'}}},
    )
    ai.define_background_action('job', start=lambda x: {'id': 'j1'}, check=check, cancel=lambda op: op)
    for _ in range(300):
        files = glob.glob('.genkit/runtimes/*.json')
        if files:
            break
        time.sleep(0.05)
    print('RUNTIME', open(files[0]).read().replace(chr(10), ' '), flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture(scope='module')
def reflection_url(tmp_path_factory):
    cwd = tmp_path_factory.mktemp('reflection')
    env = {**os.environ, 'GENKIT_ENV': 'dev'}
    env.pop('GENKIT_TELEMETRY_SERVER', None)
    with subprocess.Popen(
        [sys.executable, '-c', HOST],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as host:
        assert host.stdout is not None and host.stdin is not None
        line = ''
        while not line.startswith('RUNTIME '):  # genkit logs to stdout too
            line = host.stdout.readline()
            assert line, 'reflection host exited'
        runtime = json.loads(line.removeprefix('RUNTIME '))
        try:
            yield runtime['reflectionServerUrl']
        finally:
            host.stdin.close()
            host.wait(timeout=30)
    assert not list(Path(cwd).glob('.genkit/runtimes/*.json')), 'runtime file left behind'


def get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def post(url: str, body: object) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={'Content-Type': 'application/json'}, method='POST'
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


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
