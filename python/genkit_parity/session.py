"""Sessions: state plus named message threads, persisted in a store (JS Genkit 1.38 `Session`).

A session is created with :meth:`Genkit.create_session` or loaded with
:meth:`Genkit.load_session`; :meth:`Session.chat` opens a chat on one of its threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from genkit import GenkitError, Message

from . import _native
from ._json import coerce_messages, dumps_value, message_from_data, message_to_data, message_to_json
from .errors import CorruptSessionError
from .stores import Committed, InMemorySessionStore, NativeSessionStore, SessionStore

if TYPE_CHECKING:
    from ._genkit import GenkitParityMixin
    from .chat import Chat

__all__ = ['MAIN_THREAD', 'Session', 'current_session']

#: The thread a chat uses when none is named.
MAIN_THREAD = 'main'

T = TypeVar('T')

_current_session: ContextVar[Session | None] = ContextVar('genkit_parity_session', default=None)


def new_turn_id() -> str:
    """A fresh turn id: 128 random bits as hex, like ``uuid4().hex`` at a quarter of its cost."""
    return os.urandom(16).hex()


def current_session() -> Session:
    """The session whose ``run``, ``chat`` or ``send`` is executing.

    Raises:
        GenkitError: ``FAILED_PRECONDITION: not running within a session`` outside one
            (as JS Genkit does at HEAD).

    """
    session = _current_session.get()
    if session is None:
        raise GenkitError(status='FAILED_PRECONDITION', message='not running within a session')
    return session


def validate_thread(thread: object) -> str:
    """A thread name: a non-empty str without control characters."""
    if not isinstance(thread, str):
        raise TypeError(f'thread must be a str, not {type(thread).__name__}')
    if not thread or len(thread.encode()) > 1024 or any(ord(c) < 32 or ord(c) == 127 for c in thread):
        raise ValueError(
            f'invalid thread name {thread[:64]!r}: it must be 1-1024 bytes, no control characters'
        )
    return thread


def check_store(store: object) -> SessionStore:
    """A store argument: a built-in store or any object with async ``get`` and ``save``."""
    if isinstance(store, NativeSessionStore):
        return store
    get, save = getattr(store, 'get', None), getattr(store, 'save', None)
    if not (callable(get) and callable(save)):
        raise TypeError(
            f'store must be a session store (async get(session_id) and save(session_id, data)), '
            f'not {type(store).__name__}'
        )
    return store  # type: ignore[return-value]


class Session:
    """State and message threads of one conversation, kept in a store.

    Matches JS Genkit 1.38 ``Session``: ``state`` is the live state object,
    ``update_state`` merges shallowly and persists, each successful chat turn persists
    its thread. Unlike JS, built-in stores persist a turn by appending only its new
    messages, and stores never alias the live session object.
    """

    def __init__(
        self,
        ai: GenkitParityMixin,
        *,
        session_id: str,
        store: SessionStore,
        state: Any = None,
        threads: Mapping[str, list[Message]] | None = None,
        incremental: bool = False,
        load_on_first_use: bool = False,
        version: int = 0,
    ) -> None:
        """Use :meth:`Genkit.create_session` / :meth:`Genkit.load_session` instead."""
        self._ai = ai
        self._id = session_id
        self._store = store
        self._state = state
        self._threads: dict[str, list[Message]] = dict(threads or {})
        # Whether writes may be incremental (append a turn, set the state) with built-in
        # stores. True once the session is the store's (saved, loaded, or continued):
        # another process may be appending to it too, so it must never be overwritten.
        # False only for a session created afresh, whose first write replaces whatever
        # the store held under its id (JS createSession semantics).
        self._incremental = incremental
        self._load_on_first_use = load_on_first_use
        # Built-in stores: the version this session last loaded or wrote (what its next
        # commit expects), and the version its whole copy (every thread, the state) is known
        # to match. They differ once a commit found that another writer had saved: its own
        # thread then caught up, but others may not have, so a replace, which would drop
        # what it had not seen, expects the older version and is refused.
        self._version = version
        self._synced_version = version
        # Bumped whenever a thread changes, so chats on the same thread notice each other.
        self._thread_versions: dict[str, int] = {}
        self._turn_locks: dict[str, asyncio.Lock] = {}
        self._write_lock = asyncio.Lock()

    # -- public API ---------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The session id."""
        return self._id

    @property
    def store(self) -> SessionStore:
        """Where this session persists."""
        return self._store

    @property
    def version(self) -> int:
        """The store's version of this session as last loaded or saved here.

        Built-in stores count one per committed turn, state update or whole save; custom
        stores keep none (always 0).
        """
        return self._version

    @property
    def state(self) -> Any:
        """A copy of the session state (``None`` until set). Change it with :meth:`update_state`.

        A copy, so that changing it in place cannot make the session hold what its store
        does not (only the keys an update names are written).
        """
        return copy.deepcopy(self._state)

    @property
    def threads(self) -> dict[str, list[Message]]:
        """A copy of thread name → messages."""
        return {name: list(messages) for name, messages in self._threads.items()}

    async def update_state(self, patch: Mapping[str, Any]) -> None:
        """Shallow-merge ``patch`` into the state and persist it.

        Example:
            >>> # state {'user': 'John', 'color': 'Blue'} + {'color': 'Green'}
            >>> # -> {'user': 'John', 'color': 'Green'}

        """
        if not isinstance(patch, Mapping):
            raise TypeError(f'patch must be a mapping, not {type(patch).__name__}')
        await self._ensure_loaded()
        async with self._write_lock:
            current = self._state  # read under the lock: a concurrent update is not undone
            if current is not None and not isinstance(current, Mapping):
                raise TypeError(f'cannot merge a patch into state of type {type(current).__name__}')
            store = self._store
            if self._incremental and isinstance(store, NativeSessionStore):
                # Only the changed keys travel: the store merges them onto whatever another
                # writer stored, so no writer's keys are lost.
                patch_json = dumps_value(dict(patch), what='state')
                expected = self._version
                done = await store._commit(
                    self._id,
                    turn_id=new_turn_id(),
                    expected_version=expected,
                    threads=[],
                    state_mode='merge',
                    state_json=patch_json,
                )
                self._committed(expected, done)
                if done.state_json is not None:  # the stored state, other writers' keys included
                    self._state = json.loads(done.state_json)
                else:
                    # Nobody else had written (the file store does not read its log then):
                    # the patch as stored, so `{1: (2,)}` reads back as `{'1': [2]}`.
                    self._state = {**(current or {}), **json.loads(patch_json)}
            else:
                new_state = {**(current or {}), **patch}
                dumps_value(new_state, what='state')  # refused before the session changes
                previous, self._state = self._state, new_state
                try:
                    await self._save_whole()
                except BaseException:
                    self._state = previous
                    raise

    async def update_messages(self, thread: str, messages: Sequence[Message | Mapping[str, Any]]) -> None:
        """Replace a thread's messages and persist them.

        When ``messages`` extends the thread as held (same messages first), only the new
        tail is written; anything else (a replaced preamble, a shorter list) replaces the
        thread.
        """
        thread = validate_thread(thread)
        converted = coerce_messages(messages, what='messages')
        await self._ensure_loaded()
        current = self._threads.get(thread, [])
        extends = len(converted) >= len(current) and all(
            new is old or new == old for new, old in zip(converted, current, strict=False)
        )
        await self._commit_thread(thread, converted, first_new=len(current) if extends else None)

    def chat(self, *args: Any, thread: str | None = None, preamble: Any = None, **options: Any) -> Chat:
        """Open a chat on a thread of this session (``'main'`` by default).

        Call forms (as JS): ``chat(**options)``, ``chat(preamble, **options)``,
        ``chat(thread, **options)``, ``chat(thread, preamble, **options)``; ``thread=`` and
        ``preamble=`` may also be given by name. ``preamble`` is a prompt
        (``ai.define_prompt(...)``) or its rendered options.
        """
        from .chat import Chat, split_chat_args

        resolved_thread, resolved_preamble = split_chat_args(args, thread=thread, preamble=preamble)
        return Chat(self, resolved_thread, resolved_preamble, options)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` with this session current; return its result.

        If ``fn`` returns an awaitable, the returned awaitable runs it inside the session
        too, so ``await session.run(flow, input)`` works for flows and coroutines.
        """
        if not callable(fn):
            raise TypeError(f'fn must be callable, not {type(fn).__name__}')
        with self._activate():
            result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            return self._run_awaitable(result)  # type: ignore[return-value]
        return result

    def to_json(self) -> dict[str, Any]:
        """The session as plain JSON data: ``{'id', 'state'?, 'threads'}`` (JS ``toJSON``)."""
        data: dict[str, Any] = {'id': self._id}
        if self._state is not None:
            data['state'] = self._state
        data['threads'] = {
            name: [message_to_data(m) for m in messages] for name, messages in self._threads.items()
        }
        return data

    def __repr__(self) -> str:
        """Short description: id, store type, thread sizes."""
        sizes = {name: len(messages) for name, messages in self._threads.items()}
        return f'Session(id={self._id!r}, store={type(self._store).__name__}, threads={sizes})'

    # -- used by Chat and Genkit --------------------------------------------------------

    @contextlib.contextmanager
    def _activate(self) -> Iterator[None]:
        token = _current_session.set(self)
        try:
            yield
        finally:
            _current_session.reset(token)

    async def _run_awaitable(self, awaitable: Awaitable[T]) -> T:
        with self._activate():
            return await awaitable

    def _turn_lock(self, thread: str) -> asyncio.Lock:
        lock = self._turn_locks.get(thread)
        if lock is None:
            lock = self._turn_locks[thread] = asyncio.Lock()
        return lock

    def _thread_version(self, thread: str) -> int:
        return self._thread_versions.get(thread, 0)

    async def _ensure_loaded(self) -> None:
        """For ``ai.chat(store=..., session_id=...)``: adopt what the store already holds."""
        if not self._load_on_first_use:
            return
        async with self._write_lock:
            if not self._load_on_first_use:
                return
            data, version = await read_session(self._store, self._id)
            self._version = self._synced_version = version
            if data is not None:
                state, threads = parse_session_data(self._id, data)
                self._state = state if self._state is None else self._state
                for name, messages in threads.items():
                    self._threads.setdefault(name, messages)
                    self._thread_versions[name] = self._thread_version(name) + 1
            # Continue the stored session (or create it) without overwriting anything.
            self._incremental = True
            self._load_on_first_use = False

    async def _commit_thread(self, thread: str, messages: list[Message], *, first_new: int | None) -> None:
        """Persist a thread, then make it the session's. ``first_new`` marks an append."""
        async with self._write_lock:
            store = self._store
            if self._incremental and isinstance(store, NativeSessionStore):
                await self._commit_native(store, thread, messages, first_new)
            else:
                previous = self._threads.get(thread)
                self._threads[thread] = messages
                try:
                    await self._save_whole()
                except BaseException:
                    if previous is None:
                        del self._threads[thread]
                    else:
                        self._threads[thread] = previous
                    raise
            self._thread_versions[thread] = self._thread_version(thread) + 1

    async def _commit_native(
        self, store: NativeSessionStore, thread: str, messages: list[Message], first_new: int | None
    ) -> None:
        """One commit of a thread, which then includes what other writers stored before it.

        An append expects the version this session last saw; a replace expects the one at
        which its whole copy was current, so a store refuses it once another writer saved
        since (the replace would drop that write).
        """
        held = self._threads.get(thread, [])
        append = first_new is not None and first_new == len(held)
        start = first_new if append and first_new is not None else 0
        expected = self._version if append else self._synced_version
        done: Committed = await store._commit(
            self._id,
            turn_id=new_turn_id(),
            expected_version=expected,
            threads=[(thread, len(held), not append, [message_to_json(m) for m in messages[start:]])],
        )
        unseen = [message_from_data(json.loads(text)) for text in done.unseen.get(thread, [])]
        if not append or (not unseen and not done.duplicate):
            # Nothing landed meanwhile (the usual case): the list is the thread as stored,
            # kept without copying, so a turn costs the same at any history length.
            self._threads[thread] = messages
        elif done.duplicate:
            self._threads[thread] = messages[:start] + unseen
        else:
            self._threads[thread] = messages[:start] + unseen + messages[start:]
        self._committed(expected, done)

    def _committed(self, expected: int, done: Committed) -> None:
        """Take a commit's version; the whole copy stays synced only if nobody else wrote."""
        if self._synced_version == expected and done.version == expected + 1 and not done.duplicate:
            self._synced_version = done.version
        self._version = done.version

    async def _save_whole(self) -> None:
        store = self._store
        if isinstance(store, NativeSessionStore):
            # A new session's first write replaces whatever the id held (JS createSession).
            version = await store._save(self._id, dumps_value(self.to_json(), what='session'))
            self._version = self._synced_version = version  # what it wrote, read in the same step
        else:
            await store.save(self._id, self.to_json())
        self._incremental = True


def parse_session_data(session_id: str, data: object) -> tuple[Any, dict[str, list[Message]]]:
    """State and threads from a store's ``get`` result; CorruptSessionError if malformed."""
    if not isinstance(data, Mapping):
        raise CorruptSessionError(
            f'session {session_id!r}: store returned {type(data).__name__}, not a dict', session_id
        )
    threads_data = data.get('threads') or {}
    if not isinstance(threads_data, Mapping):
        raise CorruptSessionError(f'session {session_id!r}: "threads" is not a mapping', session_id)
    threads: dict[str, list[Message]] = {}
    for name, messages in threads_data.items():
        if not isinstance(messages, list):
            raise CorruptSessionError(f'session {session_id!r}: thread {name!r} is not a list', session_id)
        try:
            threads[name] = [message_from_data(m) for m in messages]
        except (ValueError, TypeError) as error:
            raise CorruptSessionError(
                f'session {session_id!r}: thread {name!r} holds an invalid message: {error}', session_id
            ) from None
    return data.get('state'), threads


def new_session(
    ai: GenkitParityMixin,
    *,
    store: object | None,
    initial_state: Any,
    session_id: object | None,
    load_on_first_use: bool = False,
) -> Session:
    """Create a session (``ai.create_session`` / ``ai.chat``): validates every argument."""
    import uuid

    if session_id is None:
        sid = str(uuid.uuid4())
    elif isinstance(session_id, str):
        sid = _native.validate_session_id(session_id)
    else:
        raise TypeError(f'session_id must be a str, not {type(session_id).__name__}')
    if initial_state is not None:
        dumps_value(initial_state, what='initial_state')
    return Session(
        ai,
        session_id=sid,
        store=InMemorySessionStore() if store is None else check_store(store),
        state=copy.deepcopy(initial_state),  # the caller keeps its own object
        load_on_first_use=load_on_first_use,
    )


async def load_session(ai: GenkitParityMixin, session_id: object, *, store: object | None) -> Session:
    """``ai.load_session``: the stored session, or an empty one for an unknown id (as JS).

    Either way the session continues what the store holds: its writes append, so two
    processes loading the same (even new) id never overwrite each other's turns.
    """
    if store is None:
        raise ValueError('store is required to load a session')
    checked_store = check_store(store)
    if not isinstance(session_id, str):
        raise TypeError(f'session_id must be a str, not {type(session_id).__name__}')
    sid = _native.validate_session_id(session_id)
    data, version = await read_session(checked_store, sid)
    if data is None:
        return Session(ai, session_id=sid, store=checked_store, incremental=True)
    state, threads = parse_session_data(sid, data)
    return Session(
        ai,
        session_id=sid,
        store=checked_store,
        state=state,
        threads=threads,
        incremental=True,
        version=version,
    )


async def read_session(store: SessionStore, session_id: str) -> tuple[dict[str, Any] | None, int]:
    """A store's session data and version (0 for custom stores, which keep none)."""
    if isinstance(store, NativeSessionStore):
        loaded = await store._load_versioned(session_id)
        if loaded is None:
            return None, 0
        return loaded
    return await store.get(session_id), 0
