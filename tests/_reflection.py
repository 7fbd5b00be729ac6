"""Run a Genkit app in dev mode in a child process and talk to its real reflection server."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# Appended to the app's code: wait for genkit's runtime file, announce it, serve until stdin closes.
_SERVE = """
import glob as _glob, sys as _sys, time as _time
for _ in range(300):
    _files = _glob.glob('.genkit/runtimes/*.json')
    if _files:
        break
    _time.sleep(0.05)
print('RUNTIME', open(_files[0]).read().replace(chr(10), ' '), flush=True)
_sys.stdin.read()
"""


@contextlib.contextmanager
def serve_reflection(app_code: str, cwd: Path) -> Iterator[str]:
    """Start ``app_code`` with GENKIT_ENV=dev in ``cwd``; yield its reflection server URL."""
    env = {**os.environ, 'GENKIT_ENV': 'dev'}
    env.pop('GENKIT_TELEMETRY_SERVER', None)
    code = textwrap.dedent(app_code) + _SERVE
    with subprocess.Popen(
        [sys.executable, '-c', code],
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
    assert not list(cwd.glob('.genkit/runtimes/*.json')), 'runtime file left behind'


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
