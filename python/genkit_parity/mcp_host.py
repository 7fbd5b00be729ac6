"""An MCP host (JS ``createMcpHost``/``defineMcpHost``): several servers behind one provider.

Each server's tools become Genkit tools named ``<server>/<tool>`` behind a dynamic action
provider named after the host, so ``generate(tools=['<host>:tool/*'])`` offers them all;
its prompts become ``prompt`` actions. Servers connect lazily, on the first listing or
call, on the process's MCP owner loop, so the host works from any loop or thread
(including genkit's reflection server under ``genkit start``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import genkit
from genkit import GenkitError, Message, Part

from . import _mcp_owner
from .dap import DynamicActionProvider, define_dynamic_action_provider
from .mcp_client import McpClient, McpResource
from .mcp_config import McpServerConfig, parse_server_config, validate_server_name

__all__ = ['McpHost', 'McpHostClosedError', 'define_mcp_host']

logger = logging.getLogger('genkit_parity.mcp')


class McpHostClosedError(GenkitError):
    """The host was closed; its tools stay unavailable until ``await host.connect()``."""

    def __init__(self, host: str) -> None:
        super().__init__(
            status='FAILED_PRECONDITION',
            message=f'MCP host {host!r} is closed; call await host.connect() to use its servers again',
        )
        self.host = host


class McpHost:
    """Connections to MCP servers, and the dynamic action provider that exposes their tools and prompts."""

    def __init__(
        self, ai: genkit.Genkit, name: str, servers: Mapping[str, Any], *, raw_tool_responses: bool = False
    ) -> None:
        """Use :func:`define_mcp_host` instead."""
        if not isinstance(servers, Mapping):
            raise TypeError(f'servers must be a dict of server name -> config, not {type(servers).__name__}')
        if not isinstance(raw_tool_responses, bool):
            raise TypeError(f'raw_tool_responses must be a bool, not {type(raw_tool_responses).__name__}')
        configs = {validate_server_name(s): parse_server_config(s, c) for s, c in servers.items()}
        self.name = name
        self.raw_tool_responses = raw_tool_responses
        self._closed = False
        self._warned: set[int] = set()
        self.provider: DynamicActionProvider = define_dynamic_action_provider(
            ai.registry, name, self._provide, description=f'MCP host {name}'
        )
        self._clients = {server: self._client(server, config) for server, config in configs.items()}

    def _client(self, server: str, config: McpServerConfig) -> McpClient:
        return McpClient(
            server,
            config,
            raw_tool_responses=self.raw_tool_responses,
            hint_owner='host',
            on_change=self.provider.invalidate_cache,
        )

    # -- state ----------------------------------------------------------------------------

    @property
    def servers(self) -> dict[str, str]:
        """Each server's status: ``connected``, ``disconnected``, ``disabled``, ``error`` or ``closed``."""
        return {server: client.status for server, client in self._clients.items()}

    def client(self, server: str) -> McpClient:
        """The client of one server."""
        try:
            return self._clients[server]
        except KeyError:
            raise ValueError(f'unknown MCP server {server!r}; known: {sorted(self._clients)}') from None

    # -- lifecycle ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect every enabled server now (they also connect on first use); raises the first failure."""
        self._closed = False
        for client in self._clients.values():
            client._reopen()
        enabled = [c for c in self._clients.values() if c.enabled]
        results = await asyncio.gather(*(c.ready() for c in enabled), return_exceptions=True)
        self.provider.invalidate_cache()
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def reconnect(self, server: str) -> None:
        """Drop and re-open one server's connection (and enable it)."""
        await self.client(server).restart()

    async def enable(self, server: str) -> None:
        """Enable a server (JS ``host.enable``); it connects on next use."""
        await self.client(server).enable()

    async def disable(self, server: str) -> None:
        """Disconnect a server and hide its tools until :meth:`enable` (JS ``host.disable``)."""
        await self.client(server).disable()

    async def add_server(self, server: str, config: Any) -> None:
        """Add (or replace) a server at run time (JS ``host.connect(name, config)``)."""
        parsed = parse_server_config(validate_server_name(server), config)
        old = self._clients.get(server)
        if old is not None:
            await old.close()
        self._clients[server] = self._client(server, parsed)
        self.provider.invalidate_cache()

    async def remove_server(self, server: str) -> None:
        """Close a server's connection and forget it (JS ``host.disconnect(name)``)."""
        client = self.client(server)
        del self._clients[server]
        await client.close()
        self.provider.invalidate_cache()

    async def close(self) -> None:
        """Close every connection (stdio servers are stopped); ``connect()`` opens them again."""
        self._closed = True
        await asyncio.gather(*(c.close() for c in self._clients.values()))
        self.provider.invalidate_cache()

    async def __aenter__(self) -> McpHost:
        """``async with define_mcp_host(...) as host``: connect, and close on exit."""
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Close every connection."""
        await self.close()

    # -- what the servers offer -------------------------------------------------------------

    def _active(self) -> list[McpClient]:
        if self._closed:
            raise McpHostClosedError(self.name)
        return [c for c in self._clients.values() if c.enabled]

    async def _gather(self, method: str) -> list[Any]:
        # Every enabled server's offer, concurrently. One that cannot connect is skipped
        # (logged once; its error stays on host.client(server).error); if none answers, the
        # first failure is raised so a lone broken server is not a silent empty list.
        clients = self._active()
        results = await asyncio.gather(*(getattr(c, method)() for c in clients), return_exceptions=True)
        offered: list[Any] = []
        failures: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                failures.append(result)
                if id(result) not in self._warned:
                    self._warned.add(id(result))
                    logger.warning('MCP host %r: %s', self.name, result)
            else:
                offered.extend(result)
        if failures and len(failures) == len(clients):
            raise failures[0]
        return offered

    async def _provide(self) -> dict[str, list[Any]]:
        # The provider function, on the owner loop: tools and prompts of every enabled server.
        tools, prompts = await _mcp_owner.run_on_owner(self._offer())
        return {'tool': tools, 'prompt': prompts}

    async def _offer(self) -> tuple[list[Any], list[Any]]:
        tools, prompts = await asyncio.gather(
            self._gather('get_active_tools'), self._gather('get_active_prompts')
        )
        return tools, prompts

    async def get_active_tools(self, ai: Any = None) -> list[genkit.Tool]:
        """Every enabled server's tools as Genkit tools named ``<server>/<tool>`` (JS ``getActiveTools``)."""
        return await self._gather('get_active_tools')

    async def get_active_prompts(self, ai: Any = None) -> list[Any]:
        """Every enabled server's prompts as Genkit ``prompt`` actions (JS ``getActivePrompts``)."""
        return await self._gather('get_active_prompts')

    async def get_active_resources(self, ai: Any = None) -> list[McpResource]:
        """Every enabled server's resources and templates (JS ``getActiveResources``)."""
        return await self._gather('get_active_resources')

    async def get_prompt(
        self, server: str, name: str, arguments: Mapping[str, str] | None = None
    ) -> list[Message]:
        """Render an MCP prompt of ``server`` as Genkit messages (``assistant`` → ``model``)."""
        self._active()
        return await self.client(server).get_prompt(name, arguments)

    async def read_resource(self, server: str, uri: str) -> list[Part]:
        """Read an MCP resource of ``server`` as Genkit parts (text, or media for blobs)."""
        self._active()
        return await self.client(server).read_resource(uri)


def define_mcp_host(
    ai: genkit.Genkit, name: str, servers: Mapping[str, Any], *, raw_tool_responses: bool = False
) -> McpHost:
    """An MCP host named ``name`` over ``servers`` (JS ``defineMcpHost`` with ``mcpServers``).

    Each server is a JS-style config dict — ``{'command': ..., 'args': [...], 'env': {...},
    'cwd': ...}`` (stdio) or ``{'url': ..., 'headers': {...}}`` (streamable HTTP), either
    with ``'disabled': True`` to start disabled — or a ``StdioServerParameters``, or a URL.
    Servers connect on first use (or ``await host.connect()`` / ``async with host``); their
    tools are ``'<name>:tool/<server>/<tool>'`` in ``generate`` (``'<name>:tool/*'`` for all).

    Raises:
        TypeError: a config of the wrong type, or an unknown key (naming server and key).
        ValueError: a bad server name or URL.

    Example:
        >>> # fs = {'command': 'npx', 'args': ['-y', '@modelcontextprotocol/server-filesystem', '.']}
        >>> # host = define_mcp_host(ai, 'mcp', {'fs': fs})
        >>> # await ai.generate(prompt='...', tools=['mcp:tool/*'])

    """
    return McpHost(ai, name, servers, raw_tool_responses=raw_tool_responses)
