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
from ._json import dumps_value

__all__ = [
    'DEFAULT_STORE_DIR',
    'FileSessionStore',
    'InMemorySessionStore',
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
        text = await self._load(_check_id(session_id))
        return None if text is None else dict(json.loads(text))

    async def save(self, session_id: str, data: Mapping[str, Any]) -> None:
        """Replace everything stored for ``session_id`` with ``data``."""
        await self._save(_check_id(session_id), _session_json(session_id, data))

    async def delete(self, session_id: str) -> bool:
        """Remove a session; True if it existed."""
        raise NotImplementedError

    async def _load(self, session_id: str) -> str | None:
        raise NotImplementedError

    async def _save(self, session_id: str, data_json: str) -> None:
        raise NotImplementedError

    async def _append(self, session_id: str, thread: str, messages: list[str]) -> None:
        raise NotImplementedError

    async def _replace_thread(self, session_id: str, thread: str, messages: list[str]) -> None:
        raise NotImplementedError

    async def _set_state(self, session_id: str, state_json: str | None) -> None:
        raise NotImplementedError


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

    async def _load(self, session_id: str) -> str | None:
        return self._core.load(session_id)

    async def _save(self, session_id: str, data_json: str) -> None:
        self._core.save(session_id, data_json)

    async def _append(self, session_id: str, thread: str, messages: list[str]) -> None:
        self._core.append(session_id, thread, messages)

    async def _replace_thread(self, session_id: str, thread: str, messages: list[str]) -> None:
        self._core.replace_thread(session_id, thread, messages)

    async def _set_state(self, session_id: str, state_json: str | None) -> None:
        self._core.set_state(session_id, state_json)


class _DiskSessionStore(NativeSessionStore):
    _core: _native.DiskStoreCore

    async def delete(self, session_id: str) -> bool:
        """Remove a session; True if it existed."""
        session_id = _check_id(session_id)
        deleted: bool = await _runtime.call(lambda ticket: self._core.delete(ticket, session_id))
        return deleted

    async def _load(self, session_id: str) -> str | None:
        text: str | None = await _runtime.call(lambda ticket: self._core.load(ticket, session_id))
        return text

    async def _save(self, session_id: str, data_json: str) -> None:
        await _runtime.call(lambda ticket: self._core.save(ticket, session_id, data_json))

    async def _append(self, session_id: str, thread: str, messages: list[str]) -> None:
        await _runtime.call(lambda ticket: self._core.append(ticket, session_id, thread, messages))

    async def _replace_thread(self, session_id: str, thread: str, messages: list[str]) -> None:
        await _runtime.call(lambda ticket: self._core.replace_thread(ticket, session_id, thread, messages))

    async def _set_state(self, session_id: str, state_json: str | None) -> None:
        await _runtime.call(lambda ticket: self._core.set_state(ticket, session_id, state_json))


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
        self._core = _native.DiskStoreCore.file(_check_path(directory, 'directory'), durable=bool(durable))

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
        self._core = _native.DiskStoreCore.sqlite(_check_path(path, 'path'), durable=bool(durable))

    @property
    def path(self) -> Path:
        """The database file."""
        return self._core.location


def default_store(directory: str | os.PathLike[str] = DEFAULT_STORE_DIR) -> SqliteSessionStore:
    """The embedded default: ``<directory>/sessions.sqlite`` (``./.genkit-parity`` by default)."""
    return SqliteSessionStore(Path(_check_path(directory, 'directory')) / 'sessions.sqlite')
