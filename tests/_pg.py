"""Fresh PostgreSQL databases (with pgvector) for the vector-store tests, on the shared server.

Each test module gets its own database and drops it at the end; the shared server itself is
never restarted (tests that restart a server start a private one, see ``private_postgres``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

SHARED = {'host': '127.0.0.1', 'port': 5432, 'user': 'postgres'}
PG_BIN = '/usr/lib/postgresql/15/bin'


def psql(sql: str, *, port: int = 5432, db: str = 'postgres') -> str:
    result = subprocess.run(
        [
            'psql',
            '-h',
            '127.0.0.1',
            '-p',
            str(port),
            '-U',
            'postgres',
            '-d',
            db,
            '-v',
            'ON_ERROR_STOP=1',
            '-Atc',
            sql,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def dsn(db: str, port: int = 5432) -> str:
    return f'postgresql://postgres@127.0.0.1:{port}/{db}'


@contextlib.contextmanager
def fresh_database(prefix: str = 'gp_vs', *, port: int = 5432) -> Iterator[str]:
    """A new database with the vector extension; dropped (with its connections) at exit."""
    name = f'{prefix}_{uuid.uuid4().hex[:10]}'
    psql(f'CREATE DATABASE {name}', port=port)
    try:
        psql('CREATE EXTENSION IF NOT EXISTS vector', port=port, db=name)
        yield name
    finally:
        psql(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)', port=port)


class PrivatePostgres:
    """A PostgreSQL 15 instance of our own (initdb + pg_ctl as the postgres user, a free port)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = tempfile.mkdtemp(prefix='gp-pg-')
        os.chmod(self.dir, 0o777)
        self.data = os.path.join(self.dir, 'data')

    def _as_postgres(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ['runuser', '-u', 'postgres', '--', *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def start(self) -> PrivatePostgres:
        self._as_postgres(f'{PG_BIN}/initdb', '-D', self.data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8')
        self._pg_ctl('start')
        return self

    def _pg_ctl(self, action: str) -> None:
        options = f'-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off'
        self._as_postgres(
            f'{PG_BIN}/pg_ctl',
            '-D',
            self.data,
            '-o',
            options,
            '-l',
            os.path.join(self.dir, 'log'),
            '-w',
            action,
        )

    def restart(self) -> None:
        self._pg_ctl('restart')

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl('stop')
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(('127.0.0.1', port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f'nothing listens on port {port}')
