"""Session stores: where sessions persist between turns and processes.

Built-in stores run in the Rust core, off the GIL:

- :class:`InMemorySessionStore`: per process; stores copies, never live objects.
- :class:`FileSessionStore`: one append-only log per session in a directory.
- :class:`SqliteSessionStore`: one SQLite database in WAL mode (the embedded default).

Any object with JS ``SessionStore``'s shape (async ``get(session_id)`` returning the session
dict or ``None``, async ``save(session_id, data)``) works as a custom store. Built-in stores
have that shape too, plus a cheaper path the chat uses: a turn appends only its new
messages instead of rewriting the whole history.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from . import _native, _runtime
from ._checks import MAX_POOL_SIZE, int_in
from ._json import dumps_value

__all__ = [
    'DEFAULT_STORE_DIR',
    'FileSessionStore',
    'InMemorySessionStore',
    'PostgresSessionStore',
    'RedisSessionStore',
    'SessionStore',
    'SqliteSessionStore',
    'default_store',
]

#: Where :func:`default_store` keeps its database, relative to the working directory.
DEFAULT_STORE_DIR = Path('.genkit-parity')


@runtime_checkable
class SessionStore(Protocol):
    """JS ``SessionStore``: what a custom store implements.

    ``get`` returns ``{'id', 'state'?, 'threads'}`` (plain JSON, as JS stores it) or
    ``None`` for an unknown id; ``save`` receives the whole session, ``id`` included.
    """

    async def get(self, session_id: str) -> dict[str, Any] | None:
        """Return the stored session, or None."""
        ...

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        """Store the whole session."""
        ...


def _check_id(session_id: object) -> str:
    if not isinstance(session_id, str):
        raise TypeError(f'session_id must be a str, not {type(session_id).__name__}')
    return session_id


def _session_json(session_id: str, data: object) -> str:
    if not isinstance(data, Mapping):
        raise TypeError(f'data must be a mapping (the session dict), not {type(data).__name__}')
    return dumps_value({**data, 'id': session_id}, what='session data')


class NativeSessionStore:
    """Base of the built-in stores (not instantiated directly).

    Besides the public ``get``/``save``/``delete``, it offers the incremental operations a
    :class:`~genkit_parity.Session` uses, with messages and state as JSON text.
    """

    async def get(self, session_id: str) -> dict[str, Any] | None:
        """Return the stored session as plain JSON data, or None for an unknown id."""
        loaded = await self._load_versioned(_check_id(session_id))
        return None if loaded is None else loaded[0]

    async def save(self, session_id: str, data: Mapping[str, Any]) -> None:
        """Replace everything stored for ``session_id`` with ``data``."""
        await self._save(_check_id(session_id), _session_json(session_id, data))

    async def delete(self, session_id: str) -> bool:
        """Remove a session; True if it existed."""
        raise NotImplementedError

    async def _load_versioned(self, session_id: str) -> tuple[dict[str, Any], int] | None:
        """The stored session and its version (one more for every write), or None."""
        raise NotImplementedError

    async def _save(self, session_id: str, data_json: str) -> int:
        """Replace the stored session; return the version written."""
        raise NotImplementedError

    async def _commit(
        self,
        session_id: str,
        *,
        turn_id: str | None,
        expected_version: int,
        threads: list[tuple[str, int, bool, list[str]]],
        state_mode: str = 'keep',
        state_json: str | None = None,
    ) -> Committed:
        """One turn's writes, applied atomically.

        ``threads`` holds ``(thread, messages held before, replace?, messages)``, written
        against ``expected_version`` (the version the writer's copy matches): if another
        writer saved since, appends go after what landed and come back as ``unseen``, and
        a replace is refused (:class:`~genkit_parity.SessionConflictError`; shared stores
        with ``on_conflict='error'`` refuse every such commit). ``state_mode`` is ``'keep'``,
        ``'merge'`` (``state_json``: the changed top-level keys, merged into the stored
        state) or ``'replace'``. Shared stores deduplicate by ``turn_id``.
        """
        raise NotImplementedError


def _parsed(loaded: tuple[str, int] | None) -> tuple[dict[str, Any], int] | None:
    if loaded is None:
        return None
    text, version = loaded
    return dict(json.loads(text)), version


class InMemorySessionStore(NativeSessionStore):
    """Sessions held in this process's memory (lost when it exits).

    Example:
        >>> store = InMemorySessionStore()
        >>> len(store)
        0

    """

    def __init__(self) -> None:
        """Create an empty store."""
        self._core = _native.MemoryStoreCore()

    def __len__(self) -> int:
        """Number of sessions held."""
        return len(self._core)

    async def delete(self, session_id: str) -> bool:
        """Remove a session; True if it existed."""
        return self._core.delete(_check_id(session_id))

    async def _load_versioned(self, session_id: str) -> tuple[dict[str, Any], int] | None:
        return _parsed(self._core.load_versioned(session_id))

    async def _save(self, session_id: str, data_json: str) -> int:
        return self._core.save(session_id, data_json)

    async def _commit(
        self,
        session_id: str,
        *,
        turn_id: str | None,
        expected_version: int,
        threads: list[tuple[str, int, bool, list[str]]],
        state_mode: str = 'keep',
        state_json: str | None = None,
    ) -> Committed:
        version, duplicate, unseen, state = self._core.commit(
            session_id,
            turn_id=turn_id,
            expected_version=expected_version,
            threads=threads,
            state_mode=state_mode,
            state_json=state_json,
        )
        return Committed(version, duplicate, dict(unseen), state)


class _WorkerSessionStore(NativeSessionStore):
    """Stores whose core runs each operation off the GIL and reports through a ticket."""

    _core: _native.DiskStoreCore | _native.SharedStoreCore

    async def delete(self, session_id: str) -> bool:
        """Remove a session; True if it existed."""
        session_id = _check_id(session_id)
        deleted: bool = await _runtime.call(lambda ticket: self._core.delete(ticket, session_id))
        return deleted

    async def _save(self, session_id: str, data_json: str) -> int:
        version: int = await _runtime.call(lambda ticket: self._core.save(ticket, session_id, data_json))
        return version

    async def _commit(
        self,
        session_id: str,
        *,
        turn_id: str | None,
        expected_version: int,
        threads: list[tuple[str, int, bool, list[str]]],
        state_mode: str = 'keep',
        state_json: str | None = None,
    ) -> Committed:
        version, duplicate, unseen, state = await _runtime.call(
            lambda ticket: self._core.commit(
                ticket,
                session_id,
                turn_id=turn_id,
                expected_version=expected_version,
                threads=threads,
                state_mode=state_mode,
                state_json=state_json,
            )
        )
        return Committed(version, duplicate, dict(unseen), state)


class _DiskSessionStore(_WorkerSessionStore):
    _core: _native.DiskStoreCore

    async def _load_versioned(self, session_id: str) -> tuple[dict[str, Any], int] | None:
        loaded: tuple[str, int] | None = await _runtime.call(
            lambda ticket: self._core.load_versioned(ticket, session_id)
        )
        return _parsed(loaded)


def _check_bool(value: object, what: str = 'durable') -> bool:
    # Not bool(value): durable='no' would turn durability on.
    if not isinstance(value, bool):
        raise TypeError(f'{what} must be True or False, not {value!r}')
    return value


def _check_path(value: object, name: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f'{name} must be a str or path, not {type(value).__name__}')
    return os.fspath(value)


class FileSessionStore(_DiskSessionStore):
    """Sessions as append-only JSON-lines logs, one per session, under ``directory``.

    A chat turn appends one line with its new messages, so its cost does not grow with
    the history; state changes append too, and the log is compacted into one snapshot
    when superseded records pile up. Several processes may share the directory: writers
    take turns through a lock file per session. With ``durable=True`` every write is
    fsynced before it is acknowledged (safe against power loss); by default an
    acknowledged write survives the process being killed.

    Example:
        >>> import tempfile
        >>> store = FileSessionStore(tempfile.mkdtemp())
        >>> store.directory.is_dir()
        True

    """

    def __init__(self, directory: str | os.PathLike[str], *, durable: bool = False) -> None:
        """Open (creating if needed) a store in ``directory``."""
        self._core = _native.DiskStoreCore.file(
            _check_path(directory, 'directory'), durable=_check_bool(durable)
        )

    @property
    def directory(self) -> Path:
        """The folder holding the logs."""
        return self._core.location


class SqliteSessionStore(_DiskSessionStore):
    """Sessions in a SQLite database (WAL mode, one row per message) at ``path``.

    A turn inserts only its new messages in one transaction. Several processes may share
    the file. ``durable=True`` selects ``synchronous=FULL``; the default ``NORMAL``
    keeps every acknowledged write across a killed process.

    Example:
        >>> import tempfile, os
        >>> store = SqliteSessionStore(os.path.join(tempfile.mkdtemp(), 'sessions.db'))
        >>> store.path.name
        'sessions.db'

    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False) -> None:
        """Open (creating if needed) the database at ``path``."""
        self._core = _native.DiskStoreCore.sqlite(_check_path(path, 'path'), durable=_check_bool(durable))

    @property
    def path(self) -> Path:
        """The database file."""
        return self._core.location


class Committed:
    """What a commit did (see ``NativeSessionStore._commit``).

    The version after it, whether its turn id had been applied already (shared stores
    deduplicate by turn id), per thread the stored messages the writer had not seen, and
    the stored state after it when the commit wrote state (``None`` where the file store
    did not read its log: nobody else had written, so it is the writer's state plus the
    patch).
    """

    __slots__ = ('duplicate', 'state_json', 'unseen', 'version')

    def __init__(
        self, version: int, duplicate: bool, unseen: dict[str, list[str]], state_json: str | None
    ) -> None:
        self.version = version
        self.duplicate = duplicate
        self.unseen = unseen
        self.state_json = state_json


def _check_on_conflict(on_conflict: object) -> str:
    if on_conflict not in ('append', 'error'):
        raise ValueError(f"on_conflict must be 'append' or 'error', not {on_conflict!r}")
    return str(on_conflict)


def _check_seconds(value: object, name: str, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'{name} must be a number of seconds, not {type(value).__name__}')
    return float(value)


class SharedSessionStore(_WorkerSessionStore):
    """Base of the stores many processes share (Redis, PostgreSQL); not instantiated directly.

    Every session has a version; a chat turn or state update is one atomic commit of its
    delta against the version the session was loaded at, carrying a turn id so a retried
    commit is stored once. What another worker committed meanwhile is never overwritten:
    with ``on_conflict='append'`` the turn goes after it (and the session sees it), with
    ``on_conflict='error'`` the save raises :class:`~genkit_parity.SessionConflictError`
    (``ABORTED``) so the caller reloads and redoes the turn.
    """

    _core: _native.SharedStoreCore
    _on_conflict: str

    @property
    def on_conflict(self) -> str:
        """``'append'`` or ``'error'``."""
        return self._on_conflict

    @property
    def target(self) -> str:
        """The server, as ``host:port``."""
        return self._core.target

    async def sweep_expired(self) -> int:
        """Delete the sessions whose ``ttl`` has passed; return how many were deleted.

        Expired sessions read as unknown at once either way; this reclaims their storage.
        A PostgreSQL store with a ``ttl`` also sweeps by itself as it writes (one batch at
        most every ``ttl`` seconds, clamped to 1-60 s); Redis expires keys by itself, so
        this returns 0 there.
        """
        deleted: int = await _runtime.call(self._core.sweep_expired)
        return deleted

    async def _load_versioned(self, session_id: str) -> tuple[dict[str, Any], int] | None:
        loaded: tuple[dict[str, Any], int] | None = await _runtime.call(
            lambda ticket: self._core.load_versioned(ticket, session_id)
        )
        return loaded


class RedisSessionStore(SharedSessionStore):
    """Sessions in Redis, shared by every worker that uses the same ``url`` and ``prefix``.

    Each write is one Lua script on a multiplexed connection (atomic on the server); all
    keys of a session share a hash tag, so a session lives in one cluster slot. ``ttl``
    (seconds) expires a session that has not been written for that long. If Redis loses a
    session a worker holds (restarted without persistence), that worker's next save raises
    :class:`~genkit_parity.SessionLostError` instead of re-creating a partial copy.
    Connection failures are retried for up to ``timeout`` seconds, then raise
    :class:`~genkit_parity.SessionStoreError` (``UNAVAILABLE``) naming ``host:port``.

    Example:
        >>> store = RedisSessionStore('redis://127.0.0.1:6379/0', prefix='docs-example')
        >>> store.target
        '127.0.0.1:6379'

    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = 'genkit',
        ttl: float | None = None,
        on_conflict: str = 'append',
        timeout: float = 5.0,
    ) -> None:
        """Connect lazily to ``url`` (``redis://[user:password@]host:port/db``)."""
        if not isinstance(url, str):
            raise TypeError(f'url must be a str, not {type(url).__name__}')
        if not isinstance(prefix, str):
            raise TypeError(f'prefix must be a str, not {type(prefix).__name__}')
        self._on_conflict = _check_on_conflict(on_conflict)
        self._core = _native.SharedStoreCore.redis(
            url,
            prefix=prefix,
            ttl=_check_seconds(ttl, 'ttl', allow_none=True),
            on_conflict=self._on_conflict,
            timeout=_check_seconds(timeout, 'timeout', allow_none=False) or 0.0,
        )


class PostgresSessionStore(SharedSessionStore):
    """Sessions in PostgreSQL: a row per session (version, state) and a row per message.

    A turn is one short transaction (the session row locked ``FOR UPDATE``, the messages
    inserted with consecutive ``seq`` numbers); reads order by ``seq`` only. Tables are
    ``<table_prefix>sessions``, ``..session_threads``, ``..session_messages`` and
    ``..session_turns``, created on first use (safely when several workers start at once).
    ``ttl`` (seconds) expires a session not written for that long. Server restarts and
    other transient failures are retried for up to ``timeout`` seconds, then raise
    :class:`~genkit_parity.SessionStoreError` (``UNAVAILABLE``) naming ``host:port``.

    Example:
        >>> store = PostgresSessionStore('postgresql://postgres@127.0.0.1:5432/postgres')
        >>> store.target
        '127.0.0.1:5432'

    """

    def __init__(
        self,
        dsn: str,
        *,
        table_prefix: str = 'genkit_',
        ttl: float | None = None,
        on_conflict: str = 'append',
        timeout: float = 5.0,
        pool_size: int = 8,
    ) -> None:
        """Connect lazily to ``dsn`` (URL or ``key=value`` form; no TLS)."""
        if not isinstance(dsn, str):
            raise TypeError(f'dsn must be a str, not {type(dsn).__name__}')
        if not isinstance(table_prefix, str):
            raise TypeError(f'table_prefix must be a str, not {type(table_prefix).__name__}')
        int_in(pool_size, 'pool_size', 1, MAX_POOL_SIZE)
        self._on_conflict = _check_on_conflict(on_conflict)
        self._core = _native.SharedStoreCore.postgres(
            dsn,
            table_prefix=table_prefix,
            ttl=_check_seconds(ttl, 'ttl', allow_none=True),
            on_conflict=self._on_conflict,
            timeout=_check_seconds(timeout, 'timeout', allow_none=False) or 0.0,
            pool_size=pool_size,
        )


def default_store(directory: str | os.PathLike[str] = DEFAULT_STORE_DIR) -> SqliteSessionStore:
    """The embedded default: ``<directory>/sessions.sqlite`` (``./.genkit-parity`` by default)."""
    return SqliteSessionStore(Path(_check_path(directory, 'directory')) / 'sessions.sqlite')
