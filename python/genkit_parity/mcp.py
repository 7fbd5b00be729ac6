"""MCP for Genkit, as JS's ``@genkit-ai/mcp`` has it (install ``genkit-parity[mcp]``).

- :func:`define_mcp_host`: several MCP servers (stdio or streamable HTTP, JS-style config
  dicts) whose tools and prompts Genkit sees through a dynamic action provider.
- :func:`create_mcp_client`: one server's tools, prompts and resources.
- :func:`create_mcp_server`: this app's Genkit tools and prompts served over MCP.

Connections live on one owner loop per process, so all of it works from any event loop
or thread, including genkit's reflection server under ``genkit start``.
"""

from __future__ import annotations

from mcp import StdioServerParameters

from .mcp_client import (
    McpClient,
    McpResource,
    McpServerStartError,
    McpServerUnavailableError,
    create_mcp_client,
)
from .mcp_config import McpServerConfig
from .mcp_host import McpHost, McpHostClosedError, define_mcp_host
from .mcp_server import GenkitMcpServer, create_mcp_server

__all__ = [
    'GenkitMcpServer',
    'McpClient',
    'McpHost',
    'McpHostClosedError',
    'McpResource',
    'McpServerConfig',
    'McpServerStartError',
    'McpServerUnavailableError',
    'StdioServerParameters',
    'create_mcp_client',
    'create_mcp_server',
    'define_mcp_host',
]
