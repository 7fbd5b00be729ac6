"""An MCP host: tools and prompts of MCP servers exposed to Genkit through a dynamic action provider.

Connects to MCP servers over stdio or streamable HTTP with the official ``mcp`` SDK (1.x;
install ``genkit-parity[mcp]``). Each server's tools become Genkit tools named
``<server>/<tool>`` behind a provider named after the host, so
``generate(tools=['<host>:tool/*'])`` offers them all; its prompts become ``prompt``
actions rendering to Genkit messages, and its resources are read as Genkit parts. A
server's ``tools/list_changed`` notification refreshes the listing; a server that dies
gives a clear error on the next call, and ``await host.reconnect(server)`` brings it back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import genkit
from genkit import GenkitError, Message, Part
from pydantic import AnyUrl

try:
    import mcp.types as mcp_types
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError('genkit_parity.mcp needs the mcp SDK: pip install "genkit-parity[mcp]"') from error

from . import _compat
from .dap import DynamicActionProvider, define_dynamic_action_provider

__all__ = ['McpHost', 'McpServerUnavailableError', 'StdioServerParameters', 'define_mcp_host']

#: How long one tool call may wait for its server.
CALL_TIMEOUT = datetime.timedelta(seconds=60)


class McpServerUnavailableError(GenkitError):
    """An MCP server is not connected (it died, or never started). Status ``UNAVAILABLE``."""

    def __init__(self, server: str, detail: str) -> None:
        super().__init__(
            status='UNAVAILABLE',
            message=f'MCP server {server!r} is not available ({detail}); call host.reconnect({server!r})',
        )
        self.server = server


@dataclass
class _Connection:
    name: str
    target: StdioServerParameters | str
    session: ClientSession | None = None
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    failure: str | None = None


class McpHost:
    """Connections to MCP servers, and the dynamic action provider that exposes their tools and prompts."""

    def __init__(
        self, ai: genkit.Genkit, name: str, servers: Mapping[str, StdioServerParameters | str]
    ) -> None:
        """Use :func:`define_mcp_host` instead."""
        for server, target in servers.items():
            if not isinstance(server, str) or not server or '/' in server:
                raise ValueError(f'server names must be non-empty str without "/", got {server!r}')
            if not isinstance(target, (StdioServerParameters, str)):
                raise TypeError(
                    f'server {server!r} must be a StdioServerParameters or a streamable-HTTP URL, '
                    f'not {type(target).__name__}'
                )
        self.name = name
        self._connections = {server: _Connection(server, target) for server, target in servers.items()}
        self.provider: DynamicActionProvider = define_dynamic_action_provider(
            ai.registry, name, self._provide, description=f'MCP host {name}'
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect every server that is not connected (raises the first failure)."""
        await asyncio.gather(*(self._start(c) for c in self._connections.values() if c.session is None))

    async def reconnect(self, server: str) -> None:
        """Drop and re-open one server's connection."""
        connection = self._connection(server)
        await self._shut(connection)
        await self._start(connection)

    async def close(self) -> None:
        """Close every connection (stdio servers are stopped)."""
        await asyncio.gather(*(self._shut(c) for c in self._connections.values()))

    async def __aenter__(self) -> McpHost:
        """``async with define_mcp_host(...) as host``: connect, and close on exit."""
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Close every connection."""
        await self.close()

    def _connection(self, server: str) -> _Connection:
        try:
            return self._connections[server]
        except KeyError:
            raise ValueError(f'unknown MCP server {server!r}; known: {sorted(self._connections)}') from None

    async def _start(self, connection: _Connection) -> None:
        connection.stop = asyncio.Event()
        connection.failure = None
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The SDK's contexts must be entered and exited in one task: the connection's own.
        connection.task = asyncio.ensure_future(self._serve(connection, ready))
        await ready
        self.provider.invalidate_cache()

    async def _shut(self, connection: _Connection) -> None:
        connection.stop.set()
        if connection.task is not None:
            with contextlib.suppress(Exception):
                await connection.task
        connection.task = None
        self.provider.invalidate_cache()

    async def _serve(self, connection: _Connection, ready: asyncio.Future[None]) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                if isinstance(connection.target, str):
                    read, write, _session_id = await stack.enter_async_context(
                        streamable_http_client(connection.target)
                    )
                else:
                    read, write = await stack.enter_async_context(stdio_client(connection.target))
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._on_message)
                )
                await session.initialize()
                connection.session = session
                ready.set_result(None)
                await connection.stop.wait()
        except BaseException as error:
            connection.failure = f'{type(error).__name__}: {error}'
            if not ready.done():
                ready.set_exception(McpServerUnavailableError(connection.name, connection.failure))
        finally:
            connection.session = None

    async def _on_message(self, message: Any) -> None:
        root = getattr(message, 'root', None)
        if isinstance(root, mcp_types.ToolListChangedNotification):
            self.provider.invalidate_cache()

    # -- tools ----------------------------------------------------------------------------

    async def _provide(self) -> dict[str, list[Any]]:
        # The provider function: every connected server's tools and prompts. A server that
        # fails to list is skipped (its failure is kept for the error its calls will raise).
        tools: list[Any] = []
        prompts: list[Any] = []
        for connection in self._connections.values():
            session = connection.session
            if session is None:
                continue
            try:
                listed = await session.list_tools()
                tools.extend(self._tool(connection, tool) for tool in listed.tools)
                capabilities = session.get_server_capabilities()
                if capabilities is not None and capabilities.prompts is not None:
                    listed_prompts = await session.list_prompts()
                    prompts.extend(self._prompt(connection, prompt) for prompt in listed_prompts.prompts)
            except Exception as error:
                connection.failure = f'{type(error).__name__}: {error}'
        return {'tool': tools, 'prompt': prompts}

    def _session(self, server: str) -> ClientSession:
        connection = self._connection(server)
        if connection.session is None:
            raise McpServerUnavailableError(server, connection.failure or 'not connected')
        return connection.session

    async def get_prompt(
        self, server: str, name: str, arguments: Mapping[str, str] | None = None
    ) -> list[Message]:
        """Render an MCP prompt of ``server`` as Genkit messages (``assistant`` → ``model``)."""
        session = self._session(server)
        try:
            result = await session.get_prompt(name, dict(arguments or {}))
        except Exception as error:
            raise McpServerUnavailableError(server, f'{type(error).__name__}: {error}') from error
        return [
            Message(role='model' if m.role == 'assistant' else 'user', content=[_to_part(m.content)])
            for m in result.messages
        ]

    async def read_resource(self, server: str, uri: str) -> list[Part]:
        """Read an MCP resource of ``server`` as Genkit parts (text, or media for blobs)."""
        session = self._session(server)
        try:
            result = await session.read_resource(AnyUrl(uri))
        except Exception as error:
            raise McpServerUnavailableError(server, f'{type(error).__name__}: {error}') from error
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

    def _prompt(self, connection: _Connection, prompt: mcp_types.Prompt) -> Any:
        server, remote_name = connection.name, prompt.name
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
            messages = await self.get_prompt(server, remote_name, dict(input or {}))
            return {
                'messages': [m.model_dump(mode='json', by_alias=True, exclude_none=True) for m in messages]
            }

        return _compat.prompt_action(f'{server}/{remote_name}', render, prompt.description, schema)

    def _tool(self, connection: _Connection, tool: mcp_types.Tool) -> genkit.Tool:
        server, remote_name = connection.name, tool.name

        async def call(arguments: Any) -> genkit.MultipartToolResponse[Any]:
            session = connection.session
            if session is None:
                raise McpServerUnavailableError(server, connection.failure or 'not connected')
            try:
                result = await session.call_tool(
                    remote_name, dict(arguments or {}), read_timeout_seconds=CALL_TIMEOUT
                )
            except Exception as error:
                connection.failure = f'{type(error).__name__}: {error}'
                raise McpServerUnavailableError(server, connection.failure) from error
            return _to_response(server, remote_name, result)

        return genkit.tool(
            call,
            name=f'{server}/{remote_name}',
            description=tool.description or '',
            input_schema=dict(tool.inputSchema or {'type': 'object'}),
        )


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
            data = item.data if isinstance(item.data, str) else base64.b64encode(item.data).decode()
            media.append(
                Part(
                    media=genkit.Media(url=f'data:{item.mimeType};base64,{data}', content_type=item.mimeType)
                )
            )
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
        data = item.data if isinstance(item.data, str) else base64.b64encode(item.data).decode()
        return Part(media=genkit.Media(url=f'data:{item.mimeType};base64,{data}', content_type=item.mimeType))
    return Part(text=item.model_dump_json(by_alias=True, exclude_none=True))


def define_mcp_host(
    ai: genkit.Genkit, name: str, servers: Mapping[str, StdioServerParameters | str]
) -> McpHost:
    """An MCP host named ``name`` over ``servers`` (name → stdio parameters or an HTTP URL).

    Connect with ``await host.connect()`` (or ``async with``); its tools are then
    ``'<name>:tool/<server>/<tool>'`` in ``generate`` (``'<name>:tool/*'`` for all).

    Example:
        >>> # host = define_mcp_host(ai, 'mcp', {'fs': StdioServerParameters(command='fs-server')})
        >>> # async with host: await ai.generate(prompt='...', tools=['mcp:tool/*'])

    """
    return McpHost(ai, name, servers)
