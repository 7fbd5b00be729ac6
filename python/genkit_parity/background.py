"""Background operations: long-running actions and models polled through an ``Operation``.

Reference: JS Genkit ``defineBackgroundAction`` / ``defineBackgroundModel`` /
``checkOperation`` / ``cancelOperation`` (spec §3). Actions are registered in genkit's own
registry under the JS keys, so genkit's ``check_operation``, the Dev UI and the reflection
API work with them; ``wait_for_operation`` is new, paced by the Rust core.
"""

from __future__ import annotations

import inspect
import json
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from genkit import ActionRunContext, GenkitError, Metadata, RuntimeErrorReason
from genkit.model import BackgroundAction, ModelInfo, ModelRequest, ModelResponse
from genkit.model import Error as GenkitErrorData
from genkit.model import Operation as GenkitOperation
from pydantic import BaseModel, ConfigDict

from . import _compat, _native, _runtime
from .errors import CorruptOperationError, InvalidOperationError, NotFoundError, OperationTimeoutError
from .schemas import dev_ui_schema, generation_common_config_schema

__all__ = [
    'OPERATION_JSON_SCHEMA',
    'Operation',
    'OperationStore',
    'PostgresOperationStore',
    'RedisOperationStore',
    'cancel_operation',
    'check_operation',
    'define_background_action',
    'define_background_model',
    'to_operation',
    'wait_for_operation',
]

#: The Operation JSON schema exactly as JS Genkit serves it in the reflection API.
OPERATION_JSON_SCHEMA: dict[str, Any] = {
    'type': 'object',
    'properties': {
        'action': {'type': 'string'},
        'id': {'type': 'string'},
        'done': {'type': 'boolean'},
        'output': {},
        'error': {
            'type': 'object',
            'properties': {'message': {'type': 'string'}},
            'required': ['message'],
            'additionalProperties': True,
        },
        'metadata': {'type': 'object', 'additionalProperties': {}},
    },
    'required': ['id'],
    'additionalProperties': True,
    '$schema': 'http://json-schema.org/draft-07/schema#',
}


class Operation(GenkitOperation):
    """genkit's ``Operation`` that also keeps fields beyond the schema, as JS does.

    It *is* a ``genkit.model.Operation`` (genkit's own ``check_operation`` accepts it);
    extra fields such as a background model's ``latencyMs`` survive round trips.
    """

    model_config = ConfigDict(
        extra='allow',
        alias_generator=GenkitOperation.model_config.get('alias_generator'),
        populate_by_name=True,
    )


# genkit's Operation annotates its fields with names from its own module.
Operation.model_rebuild(_types_namespace={'Error': GenkitErrorData, 'Metadata': Metadata})


def to_operation(value: object) -> Operation:
    """An ``Operation`` from an Operation, a dict (JS ``Operation`` JSON) or a JSON string.

    Raises:
        InvalidOperationError: for anything else, or a malformed operation (the message
            names the field: missing ``id``, ``done`` not a boolean, ...).

    """
    if isinstance(value, Operation):
        return value
    if isinstance(value, GenkitOperation):
        return Operation.model_validate(value.model_dump(by_alias=True, exclude_none=True))
    if isinstance(value, ModelResponse):
        raise InvalidOperationError('got a ModelResponse; pass response.operation')
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as error:
            raise InvalidOperationError(f'invalid operation: not JSON-serializable: {error}') from None
    else:
        raise InvalidOperationError(
            f'invalid operation: expected an Operation or a dict, got {type(value).__name__}'
        )
    return Operation.model_validate_json(_native.normalize_operation(text))


def _accepts_context(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _adapt(fn: Callable[..., Any], what: str) -> Callable[[Any, ActionRunContext], Awaitable[Any]]:
    """A user's start/check/cancel (sync or async, with or without ctx) as ``async (x, ctx)``."""
    if not callable(fn):
        raise TypeError(f'{what} must be callable, not {type(fn).__name__}')
    with_context = _accepts_context(fn)

    async def call(value: Any, ctx: ActionRunContext) -> Any:
        result = fn(value, ctx) if with_context else fn(value)
        return await result if inspect.isawaitable(result) else result

    return call


def _stamped(result: object, key: str, what: str) -> Operation:
    try:
        operation = to_operation(result)
    except InvalidOperationError as error:
        raise GenkitError(
            status='FAILED_PRECONDITION', message=f'{what} did not return an operation: {error}'
        ) from None
    operation.action = key
    return operation


def define_background_action(
    registry: Any,
    name: str,
    *,
    start: Callable[..., Any],
    check: Callable[..., Any],
    cancel: Callable[..., Any] | None = None,
    action_type: str = 'custom',
    input_schema: type | dict[str, Any] | None = None,
    output_schema: type | dict[str, Any] | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> BackgroundAction[Any]:
    """Register a background action (JS ``defineBackgroundAction``).

    See ``Genkit.define_background_action``.
    """
    return _define(
        registry,
        name,
        start=start,
        check=check,
        cancel=cancel,
        action_type=action_type,
        input_schema=input_schema,
        output_schema=output_schema,
        description=description,
        metadata=metadata,
        wrap_start=None,
    )


StartFn = Callable[[Any, ActionRunContext], Awaitable[Operation]]


def _define(
    registry: Any,
    name: str,
    *,
    start: Callable[..., Any],
    check: Callable[..., Any],
    cancel: Callable[..., Any] | None,
    action_type: str,
    input_schema: type | dict[str, Any] | None,
    output_schema: type | dict[str, Any] | None,
    description: str | None,
    metadata: Mapping[str, Any] | None,
    wrap_start: Callable[[StartFn], Any] | None,
    config_schema: type | dict[str, Any] | None = None,
) -> BackgroundAction[Any]:
    """Build and register the start/check/cancel actions; ``wrap_start`` decorates the start."""
    if not isinstance(name, str) or not name:
        raise TypeError('name must be a non-empty str')
    kind = _compat.action_kind(action_type)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f'metadata must be a mapping, not {type(metadata).__name__}')
    key = f'/{kind.value}/{name}'
    shared_metadata: dict[str, Any] = dict(metadata or {})
    if output_schema is not None:
        shared_metadata['outputSchema'] = _compat.to_json_schema(output_schema)
    run_start, run_check = _adapt(start, 'start'), _adapt(check, 'check')
    run_cancel = _adapt(cancel, 'cancel') if cancel is not None else None

    async def start_fn(input: Any, ctx: ActionRunContext) -> Operation:
        started = _stamped(await run_start(input, ctx), key, f'{name} start')
        store = _operation_stores.get(registry)
        return started if store is None else await store.put(started)

    async def check_fn(operation: Operation, ctx: ActionRunContext) -> Operation:
        return _stamped(await run_check(to_operation(operation), ctx), key, f'{name} check')

    start_impl = wrap_start(start_fn) if wrap_start is not None else start_fn
    # genkit checks a config instance against the start action's config class (as its own
    # background models do): a config of another class is INVALID_ARGUMENT before start().
    start_action = _compat.Action(
        kind=kind,
        name=name,
        fn=start_impl,
        description=description,
        metadata=dict(shared_metadata),
        config_schema=config_schema,
    )
    if input_schema is not None:
        _compat.override_input_schema(start_action, input_schema)
    start_action.output_schema = OPERATION_JSON_SCHEMA
    check_action = _compat.Action(
        kind=_compat.CHECK_OPERATION,
        name=f'{name}/check',
        fn=check_fn,
        description=description,
        metadata=dict(shared_metadata),
    )
    actions = [start_action, check_action]
    cancel_action = None
    if run_cancel is not None:
        cancel_with = run_cancel

        async def cancel_fn(operation: Operation, ctx: ActionRunContext) -> Operation:
            return _stamped(await cancel_with(to_operation(operation), ctx), key, f'{name} cancel')

        cancel_action = _compat.Action(
            kind=_compat.CANCEL_OPERATION,
            name=f'{name}/cancel',
            fn=cancel_fn,
            description=description,
            metadata=dict(shared_metadata),
        )
        actions.append(cancel_action)
    for action in actions[1:]:
        action.input_schema = OPERATION_JSON_SCHEMA
        action.output_schema = OPERATION_JSON_SCHEMA
    for action in actions:
        # genkit mirrors each action's own output schema (the Operation) into
        # metadata.outputSchema; JS keeps the final output's schema there, on all three.
        if 'outputSchema' in shared_metadata:
            action.metadata['outputSchema'] = shared_metadata['outputSchema']
        else:
            action.metadata.pop('outputSchema', None)
        _compat.register_action(registry, action)
    return BackgroundAction(start_action=start_action, check_action=check_action, cancel_action=cancel_action)


def define_background_model(
    registry: Any,
    name: str,
    *,
    start: Callable[..., Any],
    check: Callable[..., Any],
    cancel: Callable[..., Any] | None = None,
    label: str | None = None,
    info: ModelInfo | Mapping[str, Any] | None = None,
    supports: Mapping[str, Any] | None = None,
    versions: list[str] | None = None,
    config_schema: type | dict[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    description: str | None = None,
    report_latency: bool = False,
    js_config_schema: bool = False,
) -> BackgroundAction[Any]:
    """Register a background model (JS ``defineBackgroundModel``); see ``Genkit.define_background_model``."""
    info_data: dict[str, Any] = {}
    if isinstance(info, ModelInfo):
        info_data = info.model_dump(by_alias=True, exclude_none=True)
    elif isinstance(info, Mapping):
        info_data = dict(info)
    elif info is not None:
        raise TypeError(f'info must be a ModelInfo or a mapping, not {type(info).__name__}')
    model_label = label or info_data.get('label') or name
    model_supports = {**(info_data.get('supports') or {}), **(supports or {}), 'longRunning': True}
    model: dict[str, Any] = {'label': model_label, 'supports': model_supports}
    if js_config_schema:  # the Dev UI's config form in JS's draft-07 shape, common config by default
        if config_schema is None:
            model['customOptions'] = generation_common_config_schema()
        elif isinstance(config_schema, type) and issubclass(config_schema, BaseModel):
            model['customOptions'] = dev_ui_schema(config_schema)
        else:  # a JSON Schema is listed as given (JS)
            model['customOptions'] = _compat.to_json_schema(config_schema)
    elif config_schema:  # genkit's: the schema as genkit converts it, none without one
        model['customOptions'] = _compat.to_json_schema(config_schema)
    if versions or info_data.get('versions'):
        model['versions'] = list(versions or info_data['versions'])

    def timed(start_fn: StartFn) -> Any:
        # As JS (opt-in): the start of a background model reports its latency on the operation.
        # Off by default: genkit's Operation has no such field, and its save/reload path
        # (Operation.model_validate(op.model_dump(by_alias=True))) rejects extra fields.
        async def start_model(request: ModelRequest[Any], ctx: ActionRunContext) -> Operation:
            began = time.perf_counter()
            operation = await start_fn(request, ctx)
            setattr(operation, 'latencyMs', (time.perf_counter() - began) * 1000)  # noqa: B010
            return operation

        return start_model

    return _define(
        registry,
        name,
        start=start,
        check=check,
        cancel=cancel,
        action_type='background-model',
        input_schema=ModelRequest,
        output_schema=ModelResponse,
        description=description or model_label,
        metadata={**(metadata or {}), 'model': model},
        wrap_start=timed if report_latency else None,
        config_schema=config_schema,
    )


def _operation_context(
    context: Mapping[str, Any] | None, config: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """JS ``OperationOptions``: ``config`` is folded into ``context['config']``."""
    if context is not None and not isinstance(context, Mapping):
        raise TypeError(f'context must be a mapping, not {type(context).__name__}')
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f'config must be a mapping, not {type(config).__name__}')
    if context is None and config is None:
        return None
    folded = dict(context if context is not None else (_compat.get_current_context() or {}))
    if config is not None:
        folded['config'] = dict(config)
    return folded


# Resolved background actions per registry and start key, with the key's registry address.
def _operation_json(operation: Operation) -> str:
    return operation.model_dump_json(by_alias=True, exclude_none=True)


def _stored_operation(operation_id: str, stored: str) -> Operation:
    """A record the core read back and checked (JSON of that operation), as an ``Operation``."""
    try:
        return Operation.model_validate_json(stored)
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise CorruptOperationError(
            f'operation {operation_id!r}: the stored record is corrupt: {error}', operation_id
        ) from None


class OperationStore:
    """Where operations live so that any worker can check them (base; see the two stores below).

    ``id -> latest Operation``; ``done`` never reverts (a stale not-done write over a done
    operation is ignored), and an entry expires ``ttl`` seconds after its last write.
    Pass one as ``Genkit(operation_store=...)`` or ``extend(ai, operation_store=...)``: every
    started operation is stored, and ``check_operation`` / ``wait_for_operation`` accept an
    operation or just its id, from any worker.
    """

    _core: _native.OperationStoreCore

    async def put(self, operation: object) -> Operation:
        """Store ``operation`` unless it would revert a done one; return what is stored now."""
        checked = to_operation(operation)
        text = _operation_json(checked)
        stored: str = await _runtime.call(lambda ticket: self._core.put(ticket, text))
        return _stored_operation(checked.id, stored)

    async def get(self, operation_id: str) -> Operation | None:
        """The stored operation, or None for an unknown or expired id."""
        if not isinstance(operation_id, str):
            raise TypeError(f'operation_id must be a str, not {type(operation_id).__name__}')
        stored: str | None = await _runtime.call(lambda ticket: self._core.get(ticket, operation_id))
        return None if stored is None else _stored_operation(operation_id, stored)

    @property
    def lease(self) -> float | None:
        """Seconds one worker's check holds the provider for an operation (None: no lease)."""
        return self._core.lease

    async def _try_lease(self, operation_id: str) -> bool:
        """Whether this worker may poll the provider for the operation now."""
        taken: bool = await _runtime.call(lambda ticket: self._core.try_lease(ticket, operation_id))
        return taken


def _seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'{name} must be a number of seconds, not {type(value).__name__}')
    return float(value)


def _lease(value: object) -> float | None:
    return None if value is None else _seconds(value, 'lease')


class RedisOperationStore(OperationStore):
    """Operations in Redis (``<prefix>:op:{<id>}``), expiring ``ttl`` seconds after the last write.

    Example:
        >>> store = RedisOperationStore('redis://127.0.0.1:6379/0', ttl=3600)

    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = 'genkit',
        ttl: float = 86400,
        timeout: float = 5.0,
        lease: float | None = None,
    ) -> None:
        """Connect lazily to ``url``; failures are retried for ``timeout`` seconds, then UNAVAILABLE.

        With ``lease`` (seconds), one worker at a time polls the provider per operation:
        concurrent ``check_operation`` calls make one provider call per lease period, the
        others answer with the latest stored state.
        """
        if not isinstance(url, str) or not isinstance(prefix, str):
            raise TypeError('url and prefix must be str')
        self._core = _native.OperationStoreCore.redis(
            url,
            prefix=prefix,
            ttl=_seconds(ttl, 'ttl'),
            timeout=_seconds(timeout, 'timeout'),
            lease=_lease(lease),
        )


class PostgresOperationStore(OperationStore):
    """Operations in PostgreSQL (table ``<table_prefix>operations``, created on first use).

    Example:
        >>> store = PostgresOperationStore('postgresql://postgres@127.0.0.1:5432/postgres')

    """

    def __init__(
        self,
        dsn: str,
        *,
        table_prefix: str = 'genkit_',
        ttl: float = 86400,
        timeout: float = 5.0,
        lease: float | None = None,
    ) -> None:
        """Connect lazily to ``dsn``; failures are retried for ``timeout`` seconds, then UNAVAILABLE.

        ``lease`` as for :class:`RedisOperationStore` (leases in ``<table_prefix>operation_leases``).
        """
        if not isinstance(dsn, str) or not isinstance(table_prefix, str):
            raise TypeError('dsn and table_prefix must be str')
        self._core = _native.OperationStoreCore.postgres(
            dsn,
            table_prefix=table_prefix,
            ttl=_seconds(ttl, 'ttl'),
            timeout=_seconds(timeout, 'timeout'),
            lease=_lease(lease),
        )


_operation_stores: weakref.WeakKeyDictionary[Any, OperationStore] = weakref.WeakKeyDictionary()


def set_operation_store(registry: Any, store: OperationStore | None) -> None:
    """Make ``store`` the operation store of ``registry`` (None removes it)."""
    if store is None:
        _operation_stores.pop(registry, None)
    elif not isinstance(store, OperationStore):
        raise TypeError(
            'operation_store must be a RedisOperationStore or PostgresOperationStore, '
            f'not {type(store).__name__}'
        )
    else:
        _operation_stores[registry] = store


async def _current(registry: Any, operation: object) -> Operation:
    """The operation to act on: an id is looked up in the registry's store (NOT_FOUND if absent)."""
    store = _operation_stores.get(registry)
    if store is not None and isinstance(operation, str) and not _is_json_object(operation):
        # An id, even one that starts with '{' ('{3F25...}', a GUID: not JSON).
        found = await store.get(operation)
        if found is None:
            raise NotFoundError(f'operation {operation!r} is unknown or has expired')
        return found
    return to_operation(operation)


def _is_json_object(text: str) -> bool:
    if not text.lstrip().startswith('{'):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


# An entry is used only while the registry still holds the same start action at that
# address, so redefinitions are seen.
_resolved: weakref.WeakKeyDictionary[Any, dict[str, tuple[tuple[Any, str] | None, BackgroundAction[Any]]]] = (
    weakref.WeakKeyDictionary()
)


async def _resolve(registry: Any, operation: Operation) -> BackgroundAction[Any]:
    key = operation.action
    if not key:
        raise GenkitError(
            status='INVALID_ARGUMENT',
            message='Provided operation is missing original request information',
            reason=RuntimeErrorReason('INVALID_INPUT'),
        )
    cache = _resolved.setdefault(registry, {})
    cached = cache.get(key)
    if cached is not None:
        address, action = cached
        if address is not None and _compat.registered_action(registry, address) is action.start_action:
            return action
    resolved: BackgroundAction[Any] | None = None
    try:
        resolved = await _compat.lookup_background_action(registry, key)
    except ValueError:
        resolved = None
    if resolved is None:
        raise GenkitError(
            status='INVALID_ARGUMENT',
            message=f'Failed to resolve background action from original request: {key}',
            reason=RuntimeErrorReason('ACTION_NOT_FOUND'),
        )
    cache[key] = (_compat.action_address(key), resolved)
    return resolved


async def _run_operation(
    registry: Any,
    operation: object,
    context: Mapping[str, Any] | None,
    config: Mapping[str, Any] | None,
    *,
    cancel: bool,
) -> Operation:
    # genkit's rule: the poll handle is an Operation; a dump, a JSON string or a
    # ModelResponse is INVALID_ARGUMENT (with genkit's message and reason).
    op = to_operation(_compat.require_operation(operation))
    action = await _resolve(registry, op)
    if cancel and not action.supports_cancel:
        raise GenkitError(
            status='UNIMPLEMENTED',
            message=f'Background action {op.action} does not support cancellation.',
            reason=RuntimeErrorReason('UNSUPPORTED_BY_MODEL'),
        )
    run = action.cancel if cancel else action.check
    return to_operation(await run(op, context=_operation_context(context, config)))


async def check_operation(
    registry: Any,
    operation: object,
    *,
    context: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Operation:
    """Check an operation once (JS ``checkOperation``); see ``Genkit.check_operation``."""
    store = _operation_stores.get(registry)
    if store is None:
        return await _run_operation(registry, operation, context, config, cancel=False)
    op = await _current(registry, operation)
    if op.done:
        return op
    stored = await store.get(op.id)
    if stored is not None and stored.done:
        return stored  # finished (seen by another worker): the provider is not asked again
    if store.lease is not None and not await store._try_lease(op.id):
        # Another worker polls the provider for it this lease period: its latest state.
        return stored if stored is not None else op
    return await store.put(await _run_operation(registry, op, context, config, cancel=False))


async def cancel_operation(
    registry: Any,
    operation: object,
    *,
    context: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Operation:
    """Cancel an operation (JS ``cancelOperation``); see ``Genkit.cancel_operation``."""
    store = _operation_stores.get(registry)
    if store is None:
        return await _run_operation(registry, operation, context, config, cancel=True)
    op = await _current(registry, operation)
    return await store.put(await _run_operation(registry, op, context, config, cancel=True))


async def wait_for_operation(
    registry: Any,
    operation: object,
    *,
    interval: float = 1.0,
    max_interval: float = 30.0,
    timeout: float | None = None,
    multiplier: float = 2.0,
    jitter: float = 0.2,
    context: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Operation:
    """Poll until the operation is done; see ``Genkit.wait_for_operation``."""
    op = await _current(registry, operation)
    poller = _native.OperationPoller(
        interval=interval, max_interval=max_interval, multiplier=multiplier, jitter=jitter, timeout=timeout
    )
    if op.done:
        return op
    while True:
        op = await check_operation(registry, op, context=context, config=config)
        poller.record_check()
        if op.done:
            return op
        delay = poller.next_delay()
        if delay is None:
            raise OperationTimeoutError(
                f'operation {op.id!r} not done after {poller.elapsed:.3g} s ({poller.checks} checks)',
                operation=op,
                checks=poller.checks,
                elapsed=poller.elapsed,
            )
        await _runtime.sleep(delay)
