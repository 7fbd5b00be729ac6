"""One MCP server connection (JS ``createMcpClient``), owned by the process's MCP loop.

Every request runs on the owner loop (``_mcp_owner``), so a client works from any event
loop or thread: the app's, genkit's reflection server's, a worker thread's. It connects
lazily on first use. A server that fails to start reports the real cause and the tail of
its stderr; a server that dies mid-session fails the calls that follow until
``restart()``; a disabled or closed client says so.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, TextIO, cast

import genkit
from genkit import GenkitError, Message, Part
from pydantic import AnyUrl

try:
    import mcp.types as mcp_types
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import McpError
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError('genkit_parity.mcp needs the mcp SDK: pip install "genkit-parity[mcp]"') from error

from . import _compat, _mcp_owner
from ._mcp_http import watched_http_client
from .mcp_config import McpServerConfig, parse_server_config, validate_server_name

__all__ = [
    'McpClient',
    'McpResource',
    'McpServerStartError',
    'McpServerUnavailableError',
    'create_mcp_client',
]

logger = logging.getLogger('genkit_parity.mcp')

#: How long a tool call, prompt render or resource read may wait for its server.
CALL_TIMEOUT_SECONDS = 60.0
#: How long a listing (tools, prompts, resources) may wait: every listing of a host waits
#: for its slowest server, so one that never answers must not hold up the others for long.
LIST_TIMEOUT_SECONDS = 10.0
#: How long a server may take to start and answer ``initialize``.
CONNECT_TIMEOUT_SECONDS = 30.0
#: How much of a failed server's stderr an error quotes.
STDERR_TAIL_CHARS = 2000


class McpServerUnavailableError(GenkitError):
    """An MCP server is not connected (it died, never started, is disabled or closed).

    Status ``UNAVAILABLE``; ``server`` names it, the message says what to do.
    """

    def __init__(self, server: str, detail: str, hint: str) -> None:
        super().__init__(
            status='UNAVAILABLE', message=f'MCP server {server!r} is not available ({detail}); {hint}'
        )
        self.server = server


class McpServerStartError(McpServerUnavailableError):
    """An MCP server failed to start or to answer ``initialize``: the cause and its stderr tail."""

    def __init__(self, server: str, cause: str, target: str, stderr_tail: str, hint: str) -> None:
        tail = f'\n--- server stderr (last lines) ---\n{stderr_tail}' if stderr_tail else ''
        GenkitError.__init__(
            self,
            status='UNAVAILABLE',
            message=(
                f'MCP server {server!r} failed to start ({target}): {cause}{tail}\n'
                f'Check its command/args/env (or url), then {hint}'
            ),
        )
        self.server = server
        self.start_failure = cause
        self.stderr_tail = stderr_tail


def _root_cause(error: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, as the SDK's task groups raise them."""
    while True:
        inner = getattr(error, 'exceptions', None)
        if not inner:
            return error
        real = [e for e in inner if not isinstance(e, asyncio.CancelledError)]
        error = (real or inner)[0]


def _describe(error: BaseException) -> str:
    text = str(error)
    return f'{type(error).__name__}: {text}' if text else type(error).__name__


def _connection_lost(error: BaseException) -> bool:
    """Whether a request failed because the connection is gone (not a server-side error reply)."""
    if isinstance(error, McpError):
        return error.error.code == mcp_types.CONNECTION_CLOSED
    return not isinstance(error, (GenkitError, ValueError, TypeError))


@dataclass(frozen=True)
class McpResource:
    """A resource (or resource template) an MCP server offers; ``await resource.read()`` reads it."""

    server: str
    name: str
    uri: str | None
    uri_template: str | None
    description: str | None
    mime_type: str | None
    client: McpClient

    async def read(self, uri: str | None = None) -> list[Part]:
        """The resource's contents as Genkit parts; a template needs the concrete ``uri``."""
        target = uri or self.uri
        if target is None:
            raise ValueError(f'resource template {self.uri_template!r} needs a concrete uri')
        return await self.client.read_resource(target)


class McpClient:
    """A connection to one MCP server; see :func:`create_mcp_client`.

    All methods can be awaited from any event loop or thread.
    """

    def __init__(
        self,
        server_name: str,
        config: McpServerConfig,
        *,
        raw_tool_responses: bool = False,
        hint_owner: str = 'client',
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """Use :func:`create_mcp_client` (or a host) instead."""
        self.server_name = validate_server_name(server_name)
        self.config = config
        self.raw_tool_responses = raw_tool_responses
        self._hint_owner = hint_owner
        self._on_change = on_change
        self._enabled = not config.disabled
        self._closed = False
        self._session: ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._opening: asyncio.Future[None] | None = None
        self._failure: McpServerUnavailableError | None = None
        # Why the connection was shut by this side (disable, close, ...), for the requests
        # that were waiting on it.
        self._shut_reason = 'closed'
        # While the server starts: what it wrote that is not JSON-RPC (why it may never
        # answer initialize).
        self._bad_output: str | None = None
        self._stderr: IO[str] | None = None
        self._pid = os.getpid()
        _mcp_owner.close_at_exit(self)

    # -- state -----------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """``connected``, ``disconnected`` (not yet used), ``disabled``, ``closed`` or ``error``."""
        if self._closed:
            return 'closed'
        if not self._enabled:
            return 'disabled'
        if self._session is not None:
            return 'connected'
        return 'error' if self._failure is not None else 'disconnected'

    @property
    def error(self) -> McpServerUnavailableError | None:
        """Why the server is not connected, when it failed."""
        return self._failure

    @property
    def enabled(self) -> bool:
        """Whether the client may connect (``disabled: True`` in the config starts it disabled)."""
        return self._enabled

    def _hint(self, action: str) -> str:
        return f'call {self._hint_owner}.{action}'

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # -- lifecycle (public: any loop) --------------------------------------------------------

    async def ready(self) -> None:
        """Connect now if enabled and not connected; raises why it cannot."""
        await _mcp_owner.run_on_owner(self._use())

    async def restart(self) -> None:
        """Close the connection (if any) and open it again."""
        await _mcp_owner.run_on_owner(self._restart())

    async def enable(self) -> None:
        """Allow connecting again (lazily, on next use)."""
        await _mcp_owner.run_on_owner(self._set_enabled(True))

    async def disable(self) -> None:
        """Close the connection and keep it closed until :meth:`enable`; its tools disappear."""
        await _mcp_owner.run_on_owner(self._set_enabled(False))

    async def close(self) -> None:
        """Close the connection (a stdio server is stopped); it reconnects only after :meth:`restart`."""
        await _mcp_owner.run_on_owner(self._close())

    async def close_on_owner(self) -> None:
        """Close, already on the owner loop (interpreter exit)."""
        await self._close()

    # -- lifecycle (owner loop) -----------------------------------------------------------

    def _forget_parent_process(self) -> None:
        # After fork the parent's session, task and loop are not ours: start afresh.
        self._pid = os.getpid()
        self._session = self._task = self._stop = self._opening = self._failure = None
        self._stderr = None

    async def _use(self) -> ClientSession:
        if self._pid != os.getpid():
            self._forget_parent_process()
        if self._closed:
            raise McpServerUnavailableError(self.server_name, 'closed', self._hint('connect()'))
        if not self._enabled:
            action = f'enable({self.server_name!r})' if self._hint_owner == 'host' else 'enable()'
            raise McpServerUnavailableError(self.server_name, 'disabled', self._hint(action))
        if self._session is not None:
            return self._session
        if self._failure is not None:
            raise self._failure
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        opening = self._opening
        stop = self._stop
        try:
            await asyncio.shield(opening)
        except McpServerUnavailableError:
            if stop is not None and stop.is_set() and self._failure is None:
                raise self._shut_error() from None  # shut by this side while connecting
            raise
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None
        if self._session is None:  # closed or disabled while connecting
            raise self._shut_error()
        return self._session

    def _shut_error(self) -> McpServerUnavailableError:
        return McpServerUnavailableError(
            self.server_name, f'{self._shut_reason} while the request waited', self._reconnect_hint()
        )

    def _reconnect_hint(self) -> str:
        if self._hint_owner == 'host':
            return self._hint(f'reconnect({self.server_name!r})')
        return self._hint('restart()')

    async def _open(self) -> None:
        self._failure = self._bad_output = None
        self._stop = asyncio.Event()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The SDK's contexts must be entered and exited in one task: the connection's own.
        self._task = asyncio.ensure_future(self._serve(self._stop, ready))
        try:
            await asyncio.wait_for(asyncio.shield(ready), CONNECT_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            hint = f' ({self._bad_output})' if self._bad_output else ''
            self._failure = McpServerStartError(
                self.server_name,
                f'no answer to initialize within {CONNECT_TIMEOUT_SECONDS:g} s{hint}',
                self.config.describe(),
                self._stderr_tail(),
                self._reconnect_hint(),
            )
            raise self._failure from None
        finally:
            if ready.done() and not ready.cancelled():
                ready.exception()  # retrieved: raised above, or replaced by the timeout's
            self._changed()

    async def _serve(self, stop: asyncio.Event, ready: asyncio.Future[None]) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.config.stdio is not None:
                    errlog = self._new_stderr()
                    read, write = await stack.enter_async_context(
                        stdio_client(self.config.stdio, errlog=cast(TextIO, errlog))
                    )
                else:
                    assert self.config.url is not None
                    http = await stack.enter_async_context(
                        watched_http_client(self.config.headers, self._server_vanished)
                    )
                    read, write, _session_id = await stack.enter_async_context(
                        streamable_http_client(self.config.url, http_client=http)
                    )
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._on_message)
                )
                await session.initialize()
                self._bad_output = None
                self._session = session
                ready.set_result(None)
                await stop.wait()
        except BaseException as error:
            cause = _describe(_root_cause(error))
            if self._bad_output:
                cause += f' ({self._bad_output})'
            if not ready.done():
                self._failure = McpServerStartError(
                    self.server_name,
                    cause,
                    self.config.describe(),
                    self._stderr_tail(),
                    self._reconnect_hint(),
                )
                ready.set_exception(self._failure)
            elif not stop.is_set():
                self._lost(cause)
        finally:
            self._session = None
            self._changed()

    def _server_vanished(self, error: BaseException) -> None:
        # From the HTTP transport, on the owner loop; a shut connection's last calls fail too.
        if self._stop is not None and not self._stop.is_set() and self._session is not None:
            self._lost(_describe(error))

    def _lost(self, cause: str) -> None:
        tail = self._stderr_tail()
        detail = f'connection lost: {cause}' + (f'; server stderr ends: {tail[-300:]!r}' if tail else '')
        self._failure = McpServerUnavailableError(self.server_name, detail, self._reconnect_hint())
        if self._stop is not None:
            self._stop.set()

    def _new_stderr(self) -> IO[str]:
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile('w+', encoding='utf-8', errors='replace')  # noqa: SIM115
        return self._stderr

    def _stderr_tail(self) -> str:
        # pread: the server shares the file offset, so reading must not move it.
        if self._stderr is None or self._stderr.closed:
            return ''
        fd = self._stderr.fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - STDERR_TAIL_CHARS)
        return os.pread(fd, size - start, start).decode('utf-8', 'replace').strip()

    async def _shut(self, reason: str) -> None:
        """Close the connection; requests waiting on it fail at once, saying ``reason``."""
        self._shut_reason = reason
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            if self._opening is not None and not self._opening.done():
                self._task.cancel()  # still starting: do not wait for its answer
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 10)
        if self._opening is not None:
            with contextlib.suppress(BaseException):
                await self._opening
        self._task = None
        self._session = None
        self._failure = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    async def _restart(self) -> None:
        await self._shut('reconnected')
        self._closed = False
        self._enabled = True
        await self._use()

    async def _set_enabled(self, enabled: bool) -> None:
        if not enabled:
            await self._shut('disabled')
        self._enabled = enabled
        self._changed()

    async def _close(self) -> None:
        await self._shut('closed')
        self._closed = True
        self._changed()

    def _reopen(self) -> None:
        """Let a closed client connect again on next use (the host's ``connect()``)."""
        self._closed = False

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            # A line the SDK could not read as JSON-RPC (a banner on stdout, say). Servers
            # that print one and then work are common, so it is only remembered: if the
            # server then never answers initialize, it is likely why, and the error says so.
            if self._session is None:
                self._bad_output = f'it wrote what is not JSON-RPC: {_describe(message)[:300]}'
            return
        root = getattr(message, 'root', None)
        if isinstance(
            root,
            (
                mcp_types.ToolListChangedNotification,
                mcp_types.PromptListChangedNotification,
                mcp_types.ResourceListChangedNotification,
            ),
        ):
            self._changed()

    # -- requests (owner loop) ------------------------------------------------------------

    async def _request(
        self, what: str, send: Callable[[ClientSession], Any], timeout: float | None = None
    ) -> Any:
        """One request to the server.

        It fails at once when the connection goes (lost, or shut by this side), and after
        ``timeout`` seconds without an answer (``DEADLINE_EXCEEDED``).
        """
        timeout = CALL_TIMEOUT_SECONDS if timeout is None else timeout
        session = await self._use()
        stop = self._stop
        assert stop is not None
        request = asyncio.ensure_future(send(session))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {request, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
            if not request.done():
                request.cancel()
                with contextlib.suppress(BaseException):
                    await request
        if request not in done:
            if stopped in done:
                raise self._failure or self._shut_error()
            raise GenkitError(
                status='DEADLINE_EXCEEDED',
                message=f'MCP server {self.server_name!r}: {what} got no answer within {timeout:g} s',
            )
        try:
            return request.result()
        except Exception as error:
            if _connection_lost(error):
                self._lost(_describe(_root_cause(error)))
                raise self._failure from error  # type: ignore[misc]
            raise GenkitError(
                status='INTERNAL',
                message=f'MCP server {self.server_name!r}: {what} failed: {_describe(error)}',
            ) from error

    async def _list_tools(self) -> list[mcp_types.Tool]:
        listed = await self._request('tools/list', lambda s: s.list_tools(), LIST_TIMEOUT_SECONDS)
        tools: list[mcp_types.Tool] = listed.tools
        return tools

    async def _list_prompts(self) -> list[mcp_types.Prompt]:
        capabilities = (await self._use()).get_server_capabilities()
        if capabilities is None or capabilities.prompts is None:
            return []
        listed = await self._request('prompts/list', lambda s: s.list_prompts(), LIST_TIMEOUT_SECONDS)
        prompts: list[mcp_types.Prompt] = listed.prompts
        return prompts

    async def _resources(self) -> list[McpResource]:
        session = await self._use()
        capabilities = session.get_server_capabilities()
        if capabilities is None or capabilities.resources is None:
            return []
        listed = (
            await self._request('resources/list', lambda s: s.list_resources(), LIST_TIMEOUT_SECONDS)
        ).resources
        templates = (
            await self._request(
                'resources/templates/list', lambda s: s.list_resource_templates(), LIST_TIMEOUT_SECONDS
            )
        ).resourceTemplates
        return [
            McpResource(self.server_name, r.name, str(r.uri), None, r.description, r.mimeType, self)
            for r in listed
        ] + [
            McpResource(self.server_name, t.name, None, t.uriTemplate, t.description, t.mimeType, self)
            for t in templates
        ]

    # -- requests (public: any loop) --------------------------------------------------------

    async def list_tools(self) -> list[mcp_types.Tool]:
        """The server's tools as the MCP SDK describes them."""
        tools: list[mcp_types.Tool] = await _mcp_owner.run_on_owner(self._list_tools())
        return tools

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None
    ) -> mcp_types.CallToolResult:
        """Call tool ``name``; the raw MCP result."""
        result: mcp_types.CallToolResult = await _mcp_owner.run_on_owner(
            self._request(
                f'tool {name!r}',
                lambda s: s.call_tool(name, dict(arguments or {})),
            )
        )
        return result

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None = None) -> list[Message]:
        """Render MCP prompt ``name`` as Genkit messages (``assistant`` → ``model``)."""
        result = await _mcp_owner.run_on_owner(
            self._request(f'prompt {name!r}', lambda s: s.get_prompt(name, dict(arguments or {})))
        )
        return [
            Message(role='model' if m.role == 'assistant' else 'user', content=[_to_part(m.content)])
            for m in result.messages
        ]

    async def read_resource(self, uri: str) -> list[Part]:
        """Read resource ``uri`` as Genkit parts (text, or media for blobs)."""
        result = await _mcp_owner.run_on_owner(
            self._request(f'resource {uri!r}', lambda s: s.read_resource(AnyUrl(uri)))
        )
        parts = []
        for item in result.contents:
            if isinstance(item, mcp_types.TextResourceContents):
                parts.append(Part(text=item.text))
            else:
                mime = item.mimeType or 'application/octet-stream'
                parts.append(
                    Part(media=genkit.Media(url=f'data:{mime};base64,{item.blob}', content_type=mime))
                )
        return parts

    async def get_active_tools(self, ai: Any = None) -> list[genkit.Tool]:
        """The server's tools as Genkit tools named ``<server>/<tool>`` (JS ``getActiveTools``).

        Pass them to ``generate(tools=...)``. ``ai`` is accepted for JS's signature.
        """
        tools: list[mcp_types.Tool] = await _mcp_owner.run_on_owner(self._list_tools())
        return [self._tool(tool) for tool in tools]

    async def get_active_prompts(self, ai: Any = None) -> list[Any]:
        """The server's prompts as Genkit ``prompt`` actions named ``<server>/<prompt>``."""
        prompts: list[mcp_types.Prompt] = await _mcp_owner.run_on_owner(self._list_prompts())
        return [self._prompt(prompt) for prompt in prompts]

    async def get_active_resources(self, ai: Any = None) -> list[McpResource]:
        """The server's resources and resource templates (JS ``getActiveResources``)."""
        resources: list[McpResource] = await _mcp_owner.run_on_owner(self._resources())
        return resources

    # -- Genkit actions ----------------------------------------------------------------------

    def _tool(self, tool: mcp_types.Tool) -> genkit.Tool:
        remote_name = tool.name
        if self.raw_tool_responses:

            async def call_raw(arguments: Any) -> Any:
                result = await self.call_tool(remote_name, arguments)
                return result.model_dump(mode='json', by_alias=True, exclude_none=True)

            fn: Any = call_raw
        else:

            async def call(arguments: Any) -> genkit.MultipartToolResponse[Any]:
                return _to_response(
                    self.server_name, remote_name, await self.call_tool(remote_name, arguments)
                )

            fn = call
        return genkit.tool(
            fn,
            name=f'{self.server_name}/{remote_name}',
            description=tool.description or '',
            input_schema=dict(tool.inputSchema or {'type': 'object'}),
        )

    def _prompt(self, prompt: mcp_types.Prompt) -> Any:
        remote_name = prompt.name
        arguments = prompt.arguments or []
        schema = {
            'type': 'object',
            'properties': {
                a.name: {'type': 'string', **({'description': a.description} if a.description else {})}
                for a in arguments
            },
            'required': [a.name for a in arguments if a.required],
        }

        async def render(input: Any) -> dict[str, Any]:
            messages = await self.get_prompt(remote_name, dict(input or {}))
            return {
                'messages': [m.model_dump(mode='json', by_alias=True, exclude_none=True) for m in messages]
            }

        return _compat.prompt_action(f'{self.server_name}/{remote_name}', render, prompt.description, schema)


def _media_part(mime_type: str, data: str | bytes) -> Part:
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode()
    return Part(media=genkit.Media(url=f'data:{mime_type};base64,{encoded}', content_type=mime_type))


def _to_response(
    server: str, tool: str, result: mcp_types.CallToolResult
) -> genkit.MultipartToolResponse[Any]:
    """An MCP tool result as Genkit parts: text becomes the output, images media parts."""
    texts: list[str] = []
    media: list[Part] = []
    for item in result.content:
        if isinstance(item, mcp_types.TextContent):
            texts.append(item.text)
        elif isinstance(item, mcp_types.ImageContent):
            media.append(_media_part(item.mimeType, item.data))
        else:
            texts.append(item.model_dump_json(by_alias=True, exclude_none=True))
    text = '\n'.join(texts)
    if result.isError:
        raise GenkitError(status='INTERNAL', message=f'MCP tool {server}/{tool} failed: {text}')
    return genkit.MultipartToolResponse(output=text, content=media or None)


def _to_part(item: Any) -> Part:
    """One MCP content item as a Genkit part: text, or a media part with a ``data:`` URL."""
    if isinstance(item, mcp_types.TextContent):
        return Part(text=item.text)
    if isinstance(item, mcp_types.ImageContent):
        return _media_part(item.mimeType, item.data)
    return Part(text=item.model_dump_json(by_alias=True, exclude_none=True))


def create_mcp_client(
    name: str,
    server: Mapping[str, Any] | Any,
    *,
    server_name: str | None = None,
    raw_tool_responses: bool = False,
) -> McpClient:
    """A client of one MCP server (JS ``createMcpClient``); connects on first use.

    ``server`` is a JS-style config dict (``{'command', 'args', 'env', 'cwd'}`` or
    ``{'url', 'headers'}``, optionally ``'disabled': True``), a ``StdioServerParameters``
    or a URL. Its tools are named ``<server_name or name>/<tool>``. With
    ``raw_tool_responses=True`` tools return the MCP ``CallToolResult`` as a dict.

    Example:
        >>> # client = create_mcp_client('fs', {'command': 'npx', 'args': ['server-filesystem', '.']})
        >>> # await ai.generate(prompt='...', tools=await client.get_active_tools(ai))

    """
    label = validate_server_name(server_name if server_name is not None else name)
    if not isinstance(raw_tool_responses, bool):
        raise TypeError(f'raw_tool_responses must be a bool, not {type(raw_tool_responses).__name__}')
    return McpClient(label, parse_server_config(label, server), raw_tool_responses=raw_tool_responses)
