"""Helpers for the Redis and PostgreSQL store tests: per-test namespaces and private servers.

The machine's shared Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) are never
restarted or flushed: each test uses its own key prefix or its own database, and a test that
restarts a server starts a private one on a free port.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from typing import Any

REDIS_URL = 'redis://127.0.0.1:6379/0'
PG_ADMIN = ['psql', '-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAt']


def psql(sql: str, *, dbname: str = 'postgres', port: int = 5432) -> str:
    """Run SQL through psql as the postgres user; return its output."""
    args = [*PG_ADMIN, '-p', str(port), '-c', sql]
    args[args.index('-d') + 1] = dbname
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh database on the shared server (dropped afterwards); yields its DSN."""
    name = f'gp_test_{uuid.uuid4().hex[:12]}'
    psql(f'CREATE DATABASE {name}')
    try:
        yield f'postgresql://postgres@127.0.0.1:5432/{name}'
    finally:
        psql(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')


@contextlib.contextmanager
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix on the shared Redis; its keys are deleted afterwards."""
    prefix = f'gp-test-{uuid.uuid4().hex[:12]}'
    try:
        yield prefix
    finally:
        # One key a line (keys may hold spaces: the hostile-id tests write some).
        keys = subprocess.run(
            ['redis-cli', '-h', '127.0.0.1', '--scan', '--pattern', f'{prefix}:*'],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        for start in range(0, len(keys), 500):
            subprocess.run(
                ['redis-cli', '-h', '127.0.0.1', 'DEL', *keys[start : start + 500]],
                check=True,
                capture_output=True,
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting')
        time.sleep(0.02)


class PrivateRedis:
    """A throwaway redis-server without persistence on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f'redis://127.0.0.1:{self.port}/0'

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                'redis-server',
                '--port',
                str(self.port),
                '--bind',
                '127.0.0.1',
                '--save',
                '',
                '--appendonly',
                'no',
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers)

    def _answers(self) -> bool:
        done = subprocess.run(
            ['redis-cli', '-p', str(self.port), 'ping'], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() == 'PONG'

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl, run as the postgres user) on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix='gp-pg-')
        shutil.chown(self.dir, 'postgres')
        bindir = sorted(os.listdir('/usr/lib/postgresql'))[-1]
        self.bin = f'/usr/lib/postgresql/{bindir}/bin'
        self._as_postgres([f'{self.bin}/initdb', '-D', f'{self.dir}/data', '-A', 'trust', '-U', 'postgres'])

    @property
    def dsn(self) -> str:
        return f'postgresql://postgres@127.0.0.1:{self.port}/postgres'

    def _as_postgres(self, args: list[str]) -> None:
        subprocess.run(['runuser', '-u', 'postgres', '--', *args], check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{self.dir}'"
        self._as_postgres(
            [
                f'{self.bin}/pg_ctl',
                '-D',
                f'{self.dir}/data',
                '-o',
                options,
                '-l',
                f'{self.dir}/log',
                '-w',
                'start',
            ]
        )

    def stop(self, mode: str = 'fast') -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres([f'{self.bin}/pg_ctl', '-D', f'{self.dir}/data', '-m', mode, '-w', 'stop'])

    def remove(self) -> None:
        self.stop('immediate')
        shutil.rmtree(self.dir, ignore_errors=True)


WORKER_PRELUDE = """
import asyncio, json, sys
from genkit_parity import Genkit, PostgresSessionStore, RedisSessionStore, SessionConflictError
from genkit_parity.testing import define_programmable_model

def make_store(engine, location, on_conflict='append', **options):
    if engine == 'redis':
        url = options.pop('url', 'redis://127.0.0.1:6379/0')
        return RedisSessionStore(url, prefix=location, on_conflict=on_conflict, **options)
    return PostgresSessionStore(location, on_conflict=on_conflict, **options)

def make_ai():
    ai = Genkit(model='programmableModel')
    # The reply names the prompt it answers and how many messages the request carried.
    def respond(request, send_chunk):
        return f're {request.messages[-1].content[0].text} saw {len(request.messages)}'
    define_programmable_model(ai, respond=respond)
    return ai
"""


def spawn(body: str, *args: str) -> subprocess.Popen[str]:
    """Start ``body`` (after WORKER_PRELUDE) in a fresh interpreter, stdout line-buffered."""
    code = WORKER_PRELUDE + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, '-u', '-c', code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(processes: list[subprocess.Popen[str]], timeout: float = 240) -> list[Any]:
    """Wait for every process; each must exit 0 and print one JSON value last."""
    results = []
    for process in processes:
        with process:
            stdout, stderr = process.communicate(timeout=timeout)
        assert process.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


class TcpProxy:
    """A loopback TCP relay the test controls: pass traffic, or swallow the server's replies.

    With ``drop_replies`` set, requests still reach the server but nothing comes back: the
    worst partition for a writer (its write may have been applied; it cannot know).
    """

    def __init__(self, upstream_port: int) -> None:
        import threading

        self.upstream_port = upstream_port
        self.drop_replies = False
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(('127.0.0.1', self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, is_reply: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not (is_reply and self.drop_replies):
                    sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
