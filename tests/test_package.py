"""The package surface: drop-in import, extend(), the doctor command, the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import genkit
import pytest
import tomllib
from genkit.exp import Genkit as ExpGenkit

import genkit_parity
from genkit_parity import Genkit, extend
from genkit_parity.testing import define_echo_model

ROOT = Path(__file__).resolve().parent.parent


def test_drop_in_subclass():
    ai = Genkit()
    assert isinstance(ai, genkit.Genkit)
    assert callable(ai.generate) and callable(ai.chat)


async def test_extend_plain_instance():
    ai = genkit.Genkit()
    assert not hasattr(ai, 'create_session')
    assert extend(ai) is ai
    assert isinstance(ai, genkit.Genkit)
    assert extend(ai) is ai
    define_echo_model(ai)
    response = await ai.chat(model='echoModel').send('hi')
    assert response.text == 'Echo: hi; config: {}'


async def test_extend_exp_instance():
    ai = extend(ExpGenkit())
    assert isinstance(ai, ExpGenkit)
    assert type(ai).__name__ == 'Genkit'
    define_echo_model(ai)
    session = ai.create_session(initial_state={'x': 1})
    await session.chat(model='echoModel').send('hi')
    assert len(session.threads['main']) == 2


def test_extend_rejects_non_genkit():
    with pytest.raises(TypeError, match=r'genkit\.Genkit instance'):
        extend(object())


def test_versions_agree():
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['version']
    cargo = tomllib.loads((ROOT / 'Cargo.toml').read_text())['package']['version']
    assert genkit_parity.__version__ == project == cargo


def test_doctor_command():
    result = subprocess.run(
        [sys.executable, '-m', 'genkit_parity', 'doctor'], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f'genkit-parity {genkit_parity.__version__}' in result.stdout
    assert f'genkit        {metadata.version("genkit")}\n' in result.stdout
    assert '[x] sessions and chat' in result.stdout
    assert '[x] background operations' in result.stdout
    assert '[x] live tracing' in result.stdout and '[x] streaming structured output' in result.stdout
    assert (
        'telemetry: no GENKIT_TELEMETRY_SERVER set' in result.stdout
        or 'telemetry: exports to' in result.stdout
    )


def test_pytest_plugin_is_registered(pytestconfig, ai, programmable_model):
    assert pytestconfig.pluginmanager.hasplugin('genkit_parity')
    assert isinstance(ai, Genkit)
    assert programmable_model.request_count == 0


async def test_programmable_model_script(ai, programmable_model):
    programmable_model.respond_with(['first', {'text': 'second'}, 'last'])
    got = [(await ai.generate(model='programmableModel', prompt=str(i))).text for i in range(4)]
    assert got == ['first', 'second', 'last', 'last']
    assert programmable_model.request_count == 4
    assert programmable_model.last_request_text == '3'
    programmable_model.reset()
    assert programmable_model.request_count == 0
    assert (await ai.generate(model='programmableModel', prompt='x')).text == ''
