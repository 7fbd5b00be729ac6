"""An app with an MCP host under the real genkit CLI (npm genkit-cli, tools/genkit-cli).

``genkit start -- python app.py`` runs the app in dev mode (``ai.run_main``, the host
connected in ``main()``); ``genkit flow:run`` then runs a flow that calls an MCP tool
through the app's reflection server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip('mcp')

ROOT = Path(__file__).resolve().parent.parent
GENKIT = ROOT / 'tools' / 'genkit-cli' / 'node_modules' / '.bin' / 'genkit'
SERVER = str(Path(__file__).with_name('mcp_server.py'))

APP = f"""
import sys
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
host = define_mcp_host(ai, 'mcp', {{'t': {{'command': sys.executable, 'args': [{SERVER!r}, 'stdio']}}}})

@ai.flow()
async def add_with_mcp(prompt: str) -> str:
    response = await ai.generate(model='programmableModel', prompt=prompt, tools=['mcp:tool/*'])
    return response.text

async def main():
    await host.connect()

ai.run_main(main())
"""


def test_genkit_start_and_flow_run(tmp_path: Path) -> None:
    if not GENKIT.exists():
        raise RuntimeError(
            'genkit-cli is not installed: run `make test` (it runs npm ci in tools/genkit-cli)'
        )
    (tmp_path / 'app.py').write_text(textwrap.dedent(APP))
    home = tmp_path / 'home'  # the CLI's own config (analytics consent) stays in the test's folder
    home.mkdir()
    env = {
        **os.environ,
        'HOME': str(home),
        'PATH': f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}',
    }
    for name in ('GENKIT_ENV', 'GENKIT_TELEMETRY_SERVER'):
        env.pop(name, None)
    log = tmp_path / 'start.log'
    with (
        log.open('w') as out,
        subprocess.Popen(
            [str(GENKIT), 'start', '--non-interactive', '--noui', '--', sys.executable, 'app.py'],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: the CLI, the app and the MCP server stop together
        ) as start,
    ):
        try:
            deadline = time.monotonic() + 60
            while not list(tmp_path.glob('.genkit/runtimes/*.json')):
                assert start.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f'the app never registered:\n{log.read_text()}'
                time.sleep(0.1)
            for _ in range(2):  # the second run reuses the connection opened in main()
                result = subprocess.run(
                    [str(GENKIT), 'flow:run', '--non-interactive', 'add_with_mcp', '"add"'],
                    cwd=tmp_path,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert result.returncode == 0, result.stdout + result.stderr + log.read_text()
                assert 'sum is 42' in result.stdout, result.stdout + result.stderr
        finally:
            os.killpg(start.pid, signal.SIGTERM)
            try:
                start.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(start.pid, signal.SIGKILL)
                start.wait(timeout=10)
