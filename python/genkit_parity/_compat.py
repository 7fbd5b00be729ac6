"""The one module that touches genkit's private internals (genkit 0.12.x).

Everything genkit-parity needs from genkit beyond its public API goes through the names
below, so supporting another genkit line means another version of this file, not a fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections.abc import Iterator, Mapping
from typing import Any

import json5
from genkit._ai import _generate as _generate_module
from genkit._ai._agents._session import get_current_session as _agent_session
from genkit._ai._formats._array import ArrayFormat
from genkit._ai._formats._json import JsonFormat
from genkit._ai._formats._jsonl import JsonlFormat
from genkit._ai._formats._types import FormatDef, Formatter
from genkit._core import _background
from genkit._core._action import (
    GENKIT_DYNAMIC_ACTION_PROVIDER_ATTR,
    Action,
    ActionKind,
    get_current_context,
    parse_dap_qualified_name,
)
from genkit._core._dap import DynamicActionProvider as GenkitDynamicActionProvider
from genkit._core._error import GenkitError, RuntimeErrorReason
from genkit._core._extract_json import extract_json as genkit_extract_json
from genkit._core._schema import to_json_schema
from genkit._core._trace import _log_exporter
from genkit._core._trace._default_exporter import TraceServerExporter
from genkit._core._trace._suppress import suppress_telemetry
from genkit._core._tracing import SpanMetadata, init_provider, run_in_new_span
from genkit._core._typing import ActionMetadata
from genkit.model import BackgroundAction

__all__ = [
    'Action',
    'genkit_log_scope',
    'replace_genkit_log_exporter',
    'registered_tools_and_prompts',
    'ArrayFormat',
    'FormatDef',
    'GenkitDynamicActionProvider',
    'Formatter',
    'JsonFormat',
    'JsonlFormat',
    'check_stream_response',
    'genkit_telemetry_processors',
    'remove_span_processors',
    'set_model_custom_options',
    'stop_reflection_server',
    'telemetry_suppressed',
    'tracer_provider',
    'genkit_extract_json',
    'json5_loads',
    'js_generate_rules',
    'registered_format',
    'replace_format',
    'CANCEL_OPERATION',
    'CHECK_OPERATION',
    'ActionKind',
    'action_address',
    'action_metadata',
    'attach_provider',
    'define_provider_action',
    'action_kind',
    'agent_session',
    'get_current_context',
    'helper_span',
    'lookup_background_action',
    'require_operation',
    'override_input_schema',
    'prompt_action',
    'register_action',
    'registered_action',
    'set_span_output',
    'step_span',
    'to_json_schema',
    'to_span_json',
]


def agent_session() -> Any | None:
    """The genkit.exp agent session running in this context, if any."""
    return _agent_session()


@contextlib.contextmanager
def helper_span(name: str, *, labels: Mapping[str, str], input: Any) -> Iterator[Any]:
    """Open a Genkit span of type ``helper`` (as JS ``chat.send`` does).

    ``labels`` become span attributes verbatim (``genkit:sessionId`` ...); ``input`` is
    recorded as ``genkit:input``. Yields the OpenTelemetry span, on which the caller sets
    ``genkit:output``.
    """
    metadata = SpanMetadata(name=name, type='helper', input=input, telemetry_labels=dict(labels))
    with run_in_new_span(metadata) as span:
        yield span


@contextlib.contextmanager
def step_span(name: str, *, input: Any, has_input: bool, metadata: Any) -> Iterator[Any]:
    """Open a Genkit span of type ``flowStep`` (JS ``run``); ``input`` recorded when given."""
    span_metadata = SpanMetadata(
        name=name, type='flowStep', input=input if has_input else None, metadata=metadata
    )
    with run_in_new_span(span_metadata) as span:
        yield span


def set_span_output(span: Any, output: str) -> None:
    """Record ``genkit:output`` on a span opened by :func:`helper_span`."""
    span.set_attribute('genkit:output', output)


def to_span_json(value: Any) -> str:
    """JSON for a span attribute; pydantic models are dumped as Genkit dumps them."""
    dump = getattr(value, 'model_dump_json', None)
    if callable(dump):
        return str(dump(by_alias=True, exclude_none=True))
    return json.dumps(value, default=str)


def action_kind(value: str) -> Any:
    """Genkit's ``ActionKind`` for a JS action type string; ValueError listing the valid ones."""
    try:
        return ActionKind(value)
    except ValueError:
        kinds = ', '.join(sorted(str(kind.value) for kind in ActionKind.__members__.values()))
        raise ValueError(f'action_type must be one of: {kinds}; got {value!r}') from None


CHECK_OPERATION: Any = ActionKind.CHECK_OPERATION
CANCEL_OPERATION: Any = ActionKind.CANCEL_OPERATION


def action_address(key: str) -> tuple[Any, str] | None:
    """``(ActionKind, name)`` of a ``/<kind>/<name>`` key, or None if it is not one."""
    parts = key.split('/', 2)
    if len(parts) != 3 or parts[0]:
        return None
    try:
        return ActionKind(parts[1]), parts[2]
    except ValueError:
        return None


def registered_action(registry: Any, address: tuple[Any, str]) -> Any | None:
    """The action registered directly at ``address`` (a dict lookup, no resolution)."""
    return registry.registered_action(*address)


def register_action(registry: Any, action: Any) -> None:
    """Register a built ``Action`` instance in a genkit registry."""
    registry.register_action_from_instance(action)


def override_input_schema(action: Any, schema: Any) -> None:
    """Make an action validate (and list) its input against ``schema`` (pydantic type or JSON schema)."""
    action._override_input_schema(schema)


def define_provider_action(
    registry: Any, name: str, description: str | None, metadata: dict[str, Any]
) -> Any:
    """Register the action that stands for a dynamic action provider (its output is the listing)."""

    async def provider_action(listing: Any) -> Any:
        return listing

    return registry.register_action(
        name=name,
        kind=ActionKind.DYNAMIC_ACTION_PROVIDER,
        description=description,
        fn=provider_action,
        metadata={**metadata, 'type': 'dynamic-action-provider'},
    )


def attach_provider(action: Any, provider: Any) -> None:
    """Make ``provider`` the one genkit's registry, generate and reflection consult for ``action``."""
    setattr(action, GENKIT_DYNAMIC_ACTION_PROVIDER_ATTR, provider)


def action_metadata(*, key: str, action_type: str, action: Any) -> Any:
    """Genkit's ``ActionMetadata`` (the reflection listing row) for a provided action."""
    return ActionMetadata(
        key=key,
        action_type=action_type,
        name=action.name,
        description=action.description,
        input_schema=action.input_schema,
        output_schema=action.output_schema,
        metadata=dict(action.metadata) if action.metadata else None,
    )


def prompt_action(name: str, render: Any, description: str | None, input_schema: dict[str, Any]) -> Any:
    """An unregistered ``prompt`` action (for a dynamic action provider) rendering with ``render``."""
    kind: Any = ActionKind.PROMPT
    action = Action(kind=kind, name=name, fn=render, description=description)
    action._override_input_schema(input_schema)
    return action


async def lookup_background_action(registry: Any, key: str) -> BackgroundAction[Any] | None:
    """Genkit's background-action lookup (looked up when called, as genkit's own callers do)."""
    return await _background.lookup_background_action(registry, key)


def require_operation(value: object) -> Any:
    """Genkit's check that a poll handle is an ``Operation`` (INVALID_ARGUMENT otherwise)."""
    return _background.require_operation(value=value)


def json5_loads(text: str) -> Any:
    """Genkit's reader for complete JSON documents (the json5 package genkit depends on)."""
    return json5.loads(text)


def registered_format(registry: Any, name: str) -> Any | None:
    """The output format registered as ``name`` (looked up the way generate looks it up)."""
    return registry.lookup_value('format', name)


def replace_format(registry: Any, name: str, format_def: Any) -> None:
    """Put ``format_def`` in place of the format registered as ``name``.

    genkit's ``define_format`` refuses a name that is taken, and the built-in formats are
    registered by ``Genkit()`` itself, so the entry is swapped in the registry's table.
    """
    with registry._lock:
        registry._value_by_kind_and_name.setdefault('format', {})[name] = format_def


def check_stream_response(stream_response: Any, check: Any) -> None:
    """Make ``stream_response.response`` run ``check(response)`` and raise what it raises."""
    original = stream_response._response_future
    checked = asyncio.get_running_loop().create_future()

    def settle(done: Any) -> None:
        if checked.done():
            return
        if done.cancelled():
            checked.cancel()
            return
        error = done.exception()
        if error is None:
            try:
                check(done.result())
            except BaseException as raised:
                error = raised
        if error is None:
            checked.set_result(done.result())
        else:
            checked.set_exception(error)

    original.add_done_callback(settle)
    # Cancelling what the caller awaits cancels genkit's own future (and its generate).
    checked.add_done_callback(lambda done: original.cancel() if done.cancelled() else None)
    stream_response._response_future = checked


def tracer_provider() -> Any:
    """The global OpenTelemetry ``TracerProvider`` genkit traces into (created if missing)."""
    return init_provider()


def telemetry_suppressed() -> bool:
    """Whether genkit asked not to export the current trace (Dev UI prompt previews)."""
    return suppress_telemetry.get()


def _processors(provider: Any) -> Any:
    # OpenTelemetry SDK internals: the provider's SynchronousMultiSpanProcessor.
    return provider._active_span_processor


def genkit_telemetry_processors(provider: Any) -> list[Any]:
    """Genkit's own telemetry-server processors on ``provider`` (installed at ``import genkit``)."""
    found = []
    for processor in _processors(provider)._span_processors:
        exporter = getattr(processor, 'span_exporter', None)
        batch = getattr(processor, '_batch_processor', None)
        if exporter is None and batch is not None:
            exporter = getattr(batch, '_exporter', None)
        if isinstance(exporter, TraceServerExporter):
            found.append(processor)
    return found


def remove_span_processors(provider: Any, processors: list[Any]) -> None:
    """Take ``processors`` off ``provider`` (the SDK has no public way to remove one)."""
    multi = _processors(provider)
    with multi._lock:
        multi._span_processors = tuple(p for p in multi._span_processors if p not in processors)


def set_model_custom_options(action: Any, schema: dict[str, Any]) -> None:
    """Set the config schema the Dev UI reads at ``metadata.model.customOptions``."""
    model = action.metadata.setdefault('model', {})
    model['customOptions'] = schema


def stop_reflection_server(ai: Any, timeout: float) -> bool:
    """Ask ``ai``'s running reflection server (genkit's uvicorn server) to exit; wait for it.

    genkit keeps no handle on the server it starts in a background thread, so the running
    servers are found among live objects and matched by the port ``ai`` serves on.
    """
    import gc
    import os
    import socket
    import time
    from pathlib import Path

    from genkit._core._reflection import ReflectionServer

    spec = getattr(ai, '_reflection_server_spec', None)
    if spec is None:
        return False
    servers = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, ReflectionServer) and getattr(obj.config, 'port', None) == spec.port
    ]
    for server in servers:
        server.should_exit = True
    deadline = time.monotonic() + timeout
    runtime_files = Path.cwd() / '.genkit' / 'runtimes'
    while servers and time.monotonic() < deadline:
        try:  # until the port stops accepting and genkit has removed its runtime file
            with socket.create_connection((spec.host, spec.port), timeout=0.2):
                pass
        except OSError:
            if not list(runtime_files.glob(f'{os.getpid()}-{spec.port}-*.json')):
                return True
        time.sleep(0.05)
    return False


# -- generate(): the rules genkit-parity's Genkit applies on top of genkit's ----------------
#
# 1. docs=: JS skips context injection for models that take docs themselves.
# 2. Tools resolved through a dynamic action provider reach the model as JS names them (its
#    ``toToolDefinition``): named by the part after the last '/', ``metadata.originalName``
#    holding the tool's own name when that shortened it, ``key`` its provider key. Two such
#    tools the model would see under one name are an INVALID_ARGUMENT naming both.
#    Tools that are not from a provider keep genkit 0.12's naming.

_js_docs_rule: contextvars.ContextVar[bool] = contextvars.ContextVar('genkit_parity_docs', default=False)
_genkit_turn_request = _generate_module.turn_request
_genkit_expand_wildcard_tools = _generate_module.expand_wildcard_tools
_genkit_assert_valid_tool_names = _generate_module.assert_valid_tool_names
_TOOL_KEY_PREFIX = f'/{ActionKind.TOOL}/'


class _ProvidedTools:
    """The tools of one ``generate`` call that came through a dynamic action provider."""

    def __init__(self) -> None:
        # id(action) -> (action, '<provider>:tool/<name>', '/dynamic-action-provider/<...>')
        self.by_action: dict[int, tuple[Any, str, str]] = {}
        self.by_name: dict[str, int] = {}  # the action's registered name -> id(action)

    def add(self, action: Any, provider: str) -> bool:
        """Record ``action`` as provided by ``provider``; False if it already was."""
        if id(action) in self.by_action:  # listed twice (or by two providers): sent once
            return False
        full = f'{provider}:tool/{action.name}'
        earlier = self.by_name.get(action.name)
        if earlier is not None and earlier != id(action):
            # Both would be registered under one name for this call: never pick one silently.
            raise _same_name_error(self.by_action[earlier][1], full, _short_tool_name(action.name))
        self.by_action[id(action)] = (action, full, f'/dynamic-action-provider/{full}')
        self.by_name[action.name] = id(action)
        return True

    def full_name(self, action: Any) -> str:
        known = self.by_action.get(id(action))
        return known[1] if known is not None else str(action.name)


_provided_tools: contextvars.ContextVar[_ProvidedTools | None] = contextvars.ContextVar(
    'genkit_parity_provided_tools', default=None
)


def _short_tool_name(name: str) -> str:
    return name.rsplit('/', 1)[-1]


def _same_name_error(first: str, second: str, short: str) -> Exception:
    return GenkitError(
        status='INVALID_ARGUMENT',
        message=(
            f"Cannot provide two tools with the same name: '{first}' and '{second}' "
            f"(the model would see both as '{short}')"
        ),
        reason=RuntimeErrorReason('INVALID_INPUT'),  # genkit's own reason for this error
    )


def _registered_tool_name(given: str) -> str:
    # The name genkit's resolve_tool looks a tool string up by.
    return given[len(_TOOL_KEY_PREFIX) :] if given.startswith(_TOOL_KEY_PREFIX) else given


async def _expand_wildcard_tools(registry: Any, tool_names: list[str]) -> list[str]:
    record = _provided_tools.get()
    if record is None:
        return await _genkit_expand_wildcard_tools(registry, tool_names)
    expanded: list[str] = []
    others: list[str] = []
    for given in tool_names:
        # genkit binds each selector to /tool.v2/<name> keys, registering what the provider
        # gave on this call's registry; one selector at a time tells which tools it gave.
        keys = await _genkit_expand_wildcard_tools(registry, [given])
        selector = parse_dap_qualified_name(given)
        if selector is None or keys == [given]:
            expanded.extend(keys)
            others.append(given)
            continue
        for key in keys:
            action = registry.registered_action(ActionKind.TOOL, _registered_tool_name(key))
            if action is None or record.add(action, selector.provider):
                expanded.append(key)
    # A tool named by itself that a provider of this call also gave (the provided one would
    # shadow it on this call's registry). The provided keys come back on genkit's second
    # pass (resolving the expanded names); they are not a second tool.
    provided_keys = {f'{_TOOL_KEY_PREFIX}{name}' for name in record.by_name}
    for given in others:
        name = _registered_tool_name(given)
        provided = record.by_name.get(name)
        if provided is not None and given not in provided_keys:
            raise _same_name_error(given, record.by_action[provided][1], _short_tool_name(name))
    return expanded


def _assert_valid_tool_names(tools: list[Any]) -> None:
    record = _provided_tools.get()
    if record is not None and record.by_action and tools:
        seen: dict[str, Any] = {}
        for tool in tools:
            short = _short_tool_name(tool.name)
            other = seen.setdefault(short, tool)
            if other is not tool and (id(tool) in record.by_action or id(other) in record.by_action):
                raise _same_name_error(record.full_name(other), record.full_name(tool), short)
    _genkit_assert_valid_tool_names(tools)


def _model_supports_context(model: Any) -> bool:
    info = (getattr(model, 'metadata', None) or {}).get('model')
    supports = info.get('supports') if isinstance(info, Mapping) else None
    return isinstance(supports, Mapping) and supports.get('context') is True


async def _turn_request(*, options: Any, resolved: Any) -> Any:
    # genkit 0.12 injects the docs as a context part for every model; JS (and genkit-parity's
    # Genkit) leaves them to a model that declares supports.context.
    if _js_docs_rule.get() and _model_supports_context(resolved.model):
        model, tools = resolved.model, resolved.tools
        request = await _generate_module.to_model_request(options=options, tools=tools, model=model)
    else:
        request = await _genkit_turn_request(options=options, resolved=resolved)
    record = _provided_tools.get()
    if record is not None and record.by_action and request.tools:
        request.tools = [
            _provided_tool_definition(definition, record.by_action.get(id(tool)))
            for definition, tool in zip(request.tools, resolved.tools, strict=True)
        ]
    return request


def _provided_tool_definition(definition: Any, provided: tuple[Any, str, str] | None) -> Any:
    if provided is None:
        return definition
    action, _full, key = provided
    update: dict[str, Any] = {'name': _short_tool_name(action.name), 'key': key}
    if update['name'] != action.name:
        update['metadata'] = {**(definition.metadata or {}), 'originalName': action.name}
    return definition.model_copy(update=update)


_generate_module.turn_request = _turn_request
_generate_module.expand_wildcard_tools = _expand_wildcard_tools
_generate_module.assert_valid_tool_names = _assert_valid_tool_names


@contextlib.contextmanager
def js_generate_rules() -> Iterator[None]:
    """Within this block, ``generate`` follows JS for docs and for provider tools' names.

    Docs are not injected for context-aware models; tools resolved through a dynamic action
    provider are sent to the model under the name after the last ``/``.
    """
    docs_token = _js_docs_rule.set(True)
    tools_token = _provided_tools.set(_ProvidedTools())
    try:
        yield
    finally:
        _provided_tools.reset(tools_token)
        _js_docs_rule.reset(docs_token)


async def registered_tools_and_prompts(registry: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The registry's tool and prompt actions by name (what an MCP server offers)."""
    tools = await registry.resolve_actions_by_kind(ActionKind.TOOL)
    prompts = await registry.resolve_actions_by_kind(ActionKind.PROMPT)
    return tools, prompts


def genkit_log_scope() -> tuple[str, str]:
    """The OTLP scope (name, version) genkit names in the log records it sends the Dev UI."""
    from genkit._core._constants import GENKIT_VERSION

    return _log_exporter.SCOPE_NAME, GENKIT_VERSION


def replace_genkit_log_exporter(make: Any) -> Any | None:
    """Swap genkit's dev-mode log exporter for ``make(url)``; returns genkit's, or None.

    genkit's ``emit_log`` hands each record to the process-wide exporter's
    ``enqueue(record=...)``; nothing is swapped when genkit has none (not dev mode, opted
    out, no telemetry server) or it has stopped.
    """
    with _log_exporter._exporter_lock:
        current = _log_exporter._exporter
        if current is None or current.stopped or not isinstance(current, _log_exporter.LogServerExporter):
            return None
        _log_exporter._exporter = make(current.telemetry_server_url)
    return current
