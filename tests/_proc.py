"""Helpers that run genkit-parity in a separate Python process (fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

PRELUDE = """
import asyncio, json, sys
from genkit_parity import Genkit, FileSessionStore, SqliteSessionStore
from genkit_parity.testing import define_echo_model, define_programmable_model

def make_store(kind, location):
    return FileSessionStore(location) if kind == 'file' else SqliteSessionStore(location)
"""


def store_location(kind: str, tmp_path: Path) -> str:
    return str(tmp_path / ('files' if kind == 'file' else 'sessions.sqlite'))


def run_python(body: str, *args: str, timeout: float = 120) -> Any:
    """Run ``body`` in a fresh interpreter; it must print one JSON value last."""
    code = PRELUDE + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, '-c', code, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f'child failed ({result.returncode}):\n{result.stderr}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def spawn_python(body: str, *args: str) -> subprocess.Popen[str]:
    """Start ``body`` in a fresh interpreter with stdout piped, line-buffered."""
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, '-u', '-c', code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
