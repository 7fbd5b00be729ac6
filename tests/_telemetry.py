"""The real Genkit telemetry server (npm @genkit-ai/telemetry-server), started for the tests."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent.parent / 'tools' / 'telemetry-server'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def telemetry_server(store: Path) -> Iterator[str]:
    """Start the server on a free loopback port with its store in ``store``; yield its URL."""
    if not (TOOLS / 'node_modules' / '@genkit-ai' / 'telemetry-server').is_dir():
        raise RuntimeError('the telemetry server is not installed: run `make test` (it runs npm ci)')
    port = free_port()
    with subprocess.Popen(
        ['node', str(TOOLS / 'start-telemetry.js'), str(port), str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as server:
        url = f'http://127.0.0.1:{port}'
        try:
            for _ in range(200):
                with contextlib.suppress(OSError), urllib.request.urlopen(f'{url}/api/__health', timeout=1):
                    break
                assert server.poll() is None, server.stdout.read() if server.stdout else 'exited'
                time.sleep(0.05)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def find_trace(url: str, root_name: str) -> dict[str, Any] | None:
    """The full trace whose root span is named ``root_name`` (the list only carries roots)."""
    listing = get_json(f'{url}/api/traces?limit=100')
    for trace in listing['traces']:
        if trace.get('displayName') == root_name:
            return get_json(f'{url}/api/traces/{trace["traceId"]}')
    return None


class SlowSink:
    """A stand-in telemetry server that takes ``delay`` seconds per request and keeps bodies."""

    def __init__(self, delay: float) -> None:
        self.bodies: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers['Content-Length'])
                body = json.loads(self.rfile.read(length))
                time.sleep(delay)
                sink.bodies.append(body)
                self.send_response(200)
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'OK')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
