"""Dynamic action providers: actions (mostly tools) discovered at run time, with a Rust cache.

Reference: JS Genkit ``defineDynamicActionProvider`` (spec §4). The provider is registered
in genkit's registry the way genkit's own is, so DAP keys
(``/dynamic-action-provider/<dap>:<type>/<name>``), ``generate(tools=['<dap>:tool/*'])``
and the reflection listing all consult it. What differs is the cache: a Rust TTL cache
with indexed lookups (a warm ``get_action`` never suspends) and one fetch at a time across
tasks, event loops and threads.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from genkit import Tool

from . import _compat, _native, _runtime

__all__ = ['DynamicActionProvider', 'ProviderFn', 'define_dynamic_action_provider']

#: What a provider function returns: action type → actions (or tools), e.g. ``{'tool': [...]}``.
ProviderFn = Callable[[], Awaitable[Mapping[str, Sequence[Any]]] | Mapping[str, Sequence[Any]]]


class DynamicActionProvider(_compat.GenkitDynamicActionProvider):
    """A registered dynamic action provider; get it from ``ai.define_dynamic_action_provider``.

    A subclass of genkit's own provider class (``isinstance`` checks and genkit's registry
    treat it as one) with every public method backed by the Rust cache instead of genkit's.
    """

    def __init__(self, action: Any, fn: ProviderFn, cache_ttl_millis: int | None) -> None:
        """Use ``ai.define_dynamic_action_provider`` instead."""
        super().__init__(action, _never_called, cache_ttl_millis)  # genkit's cache stays unused
        self.action = action
        self.name: str = action.name
        self._fn = fn
        self._rust_cache = _native.DapCache(cache_ttl_millis)
        self._keyed: tuple[int, dict[str, Any]] | None = None
        self._pending: dict[asyncio.AbstractEventLoop, asyncio.Task[_native.DapSnapshot]] = {}
        self._pending_lock = threading.Lock()

    # -- queries ------------------------------------------------------------------------

    def get_action_nowait(self, action_type: str, name: str) -> Any | None:
        """The provided action from a warm cache, synchronously; ``LookupError`` if cold."""
        fresh, action = self._rust_cache.get_warm(action_type, name)
        if not fresh:
            raise LookupError(f'dynamic action provider {self.name!r}: cache is cold; await get_action()')
        return action

    async def get_action(self, action_type: str, action_name: str) -> Any | None:
        """The provided action of ``action_type`` named ``action_name``, or None (O(1) when warm)."""
        fresh, action = self._rust_cache.get_warm(action_type, action_name)
        if fresh:
            return action
        return (await self._snapshot()).get(action_type, action_name)

    async def list_action_metadata(  # type: ignore[override]
        self, action_type: str, action_name: str
    ) -> list[dict[str, Any]]:
        """Metadata of provided actions matching ``action_name``: ``*``, ``prefix*`` or an exact name.

        Each entry has ``name``, ``key`` and, when set, ``description``, ``inputSchema``,
        ``outputSchema`` and ``metadata``; in provider order. Treat entries as read-only.
        """
        return (await self._snapshot()).list_metadata(action_type, action_name)

    async def list_action_metadata_by_key(self, dap_prefix: str | None = None) -> dict[str, Any]:
        """Reflection rows of every provided action, keyed by its full DAP key (no trace)."""
        snapshot = await self._snapshot(skip_trace=True)
        keyed = self._keyed
        if keyed is None or keyed[0] != snapshot.generation:
            rows = {
                metadata['key']: _compat.action_metadata(key=metadata['key'], action_type=kind, action=action)
                for kind, _name, action, metadata in snapshot.items()
            }
            keyed = self._keyed = (snapshot.generation, rows)
        return dict(keyed[1])

    def invalidate_cache(self) -> None:
        """Drop the cached actions; the next access fetches them again."""
        self._rust_cache.invalidate()

    # -- fetching -----------------------------------------------------------------------

    async def _snapshot(self, *, skip_trace: bool = False) -> _native.DapSnapshot:
        fresh = self._rust_cache.fresh()
        if fresh is not None:
            return fresh
        # Callers on one event loop share one acquisition (a task, so that cancelling any
        # caller never cancels it); the Rust cache then shares one fetch across loops.
        loop = asyncio.get_running_loop()
        with self._pending_lock:
            pending = self._pending.get(loop)
            if pending is None:
                pending = self._pending[loop] = loop.create_task(self._acquire(skip_trace))
                pending.add_done_callback(functools.partial(self._forget, loop))
        return await asyncio.shield(pending)

    def _forget(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[_native.DapSnapshot]) -> None:
        with self._pending_lock:
            if self._pending.get(loop) is task:
                del self._pending[loop]
        if not task.cancelled():
            task.exception()  # retrieved here: every caller re-raises it from the shield

    async def _acquire(self, skip_trace: bool) -> _native.DapSnapshot:
        bridge = _runtime.current_bridge()
        role = self._rust_cache.access(bridge.queue)
        if isinstance(role, _native.DapSnapshot):
            return role
        if isinstance(role, int):
            snapshot: _native.DapSnapshot = await bridge.wait(role)
            return snapshot
        return await self._fetch(role, skip_trace)

    async def _fetch(self, lease: _native.FetchLease, skip_trace: bool) -> _native.DapSnapshot:
        try:
            value = self._fn()
            if inspect.isawaitable(value):
                value = await value
            groups = self._index(value)
        except BaseException as error:
            self._rust_cache.fail(lease, error)
            raise
        snapshot = self._rust_cache.finish(lease, groups)
        if not skip_trace:
            # As JS: a fetch for a lookup is traced as a run of the provider's action. The
            # trace names what was provided; the schemas are in the reflection listing (with
            # them, a real filesystem server's listing made a ~150 KB span, carried twice).
            listing = {kind: [name for name, _action, _entry in entries] for kind, entries in groups}
            await self.action.run(listing)
        return snapshot

    def _index(self, value: object) -> list[tuple[str, list[tuple[str, Any, dict[str, Any]]]]]:
        if not isinstance(value, Mapping):
            raise TypeError(
                f'dynamic action provider {self.name!r} must return a dict of action type -> list of '
                f'actions, got {type(value).__name__}'
            )
        groups = []
        for kind, items in value.items():
            if not isinstance(kind, str):
                raise TypeError(f'dynamic action provider {self.name!r}: action type {kind!r} is not a str')
            if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
                raise TypeError(
                    f'dynamic action provider {self.name!r}: value[{kind!r}] must be a list of actions, '
                    f'got {type(items).__name__}'
                )
            entries = []
            for position, item in enumerate(items):
                action = item.action() if isinstance(item, Tool) else item
                name = getattr(action, 'name', None)
                if not isinstance(name, str) or not name or not callable(getattr(action, 'run', None)):
                    raise TypeError(
                        f'dynamic action provider {self.name!r}: value[{kind!r}][{position}] is not a '
                        f'named action or tool (got {type(item).__name__})'
                    )
                entries.append((name, action, self._listing_entry(kind, action)))
            groups.append((kind, entries))
        return groups

    def _listing_entry(self, kind: str, action: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            'key': f'/dynamic-action-provider/{self.name}:{kind}/{action.name}',
            'name': action.name,
        }
        for field, value in (
            ('description', action.description),
            ('inputSchema', getattr(action, 'input_schema', None)),
            ('outputSchema', getattr(action, 'output_schema', None)),
            ('metadata', dict(action.metadata) if action.metadata else None),
        ):
            if value is not None:
                entry[field] = value
        return entry


async def _never_called() -> dict[str, list[Any]]:
    raise AssertionError("genkit's own DAP fetch is replaced by DynamicActionProvider._snapshot")


def define_dynamic_action_provider(
    registry: Any,
    name: str,
    fn: ProviderFn,
    *,
    cache_ttl_millis: int | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> DynamicActionProvider:
    """Register a dynamic action provider; see ``Genkit.define_dynamic_action_provider``."""
    if not isinstance(name, str) or not name or ':' in name or '/' in name:
        raise ValueError(f'name must be a non-empty str without ":" or "/", got {name!r}')
    if not callable(fn):
        raise TypeError(f'fn must be callable, not {type(fn).__name__}')
    if cache_ttl_millis is not None and (
        isinstance(cache_ttl_millis, bool) or not isinstance(cache_ttl_millis, int)
    ):
        raise TypeError(f'cache_ttl_millis must be an int or None, not {type(cache_ttl_millis).__name__}')
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f'metadata must be a mapping, not {type(metadata).__name__}')
    action = _compat.define_provider_action(registry, name, description, dict(metadata or {}))
    provider = DynamicActionProvider(action, fn, cache_ttl_millis)
    _compat.attach_provider(action, provider)
    return provider
