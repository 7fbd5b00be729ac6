"""MCP server configurations: JS's ``mcpServers`` dicts, or the ``mcp`` SDK's own objects.

JS's ``createMcpHost({mcpServers})`` takes, per server, ``{command, args, env, cwd}`` for a
stdio server or ``{url, headers}`` for streamable HTTP, each with an optional
``disabled: true``. The same dicts work here; so do ``StdioServerParameters`` and a plain
URL string. Anything else is a ``TypeError`` naming the server and the offending key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp import StdioServerParameters

__all__ = ['McpServerConfig', 'parse_server_config', 'validate_server_name']

_STDIO_KEYS = frozenset({'command', 'args', 'env', 'cwd'})
_HTTP_KEYS = frozenset({'url', 'headers'})
_COMMON_KEYS = frozenset({'disabled'})


@dataclass(frozen=True)
class McpServerConfig:
    """One server's transport: stdio parameters or a streamable-HTTP URL with headers."""

    stdio: StdioServerParameters | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    disabled: bool = False

    def describe(self) -> str:
        """``command args...`` or the URL, for error messages."""
        if self.stdio is not None:
            return ' '.join([self.stdio.command, *self.stdio.args])
        return str(self.url)


def validate_server_name(server: object) -> str:
    """A server name: a non-empty str without ``/`` (tools are named ``<server>/<tool>``)."""
    if not isinstance(server, str) or not server or '/' in server:
        raise ValueError(f'server names must be non-empty str without "/", got {server!r}')
    return server


def _str_map(server: str, key: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f'MCP server {server!r}: {key!r} must be a dict of str to str')
    return dict(value)


def parse_server_config(server: str, value: object) -> McpServerConfig:
    """Read one entry of ``servers`` (JS ``mcpServers``) into a :class:`McpServerConfig`."""
    if isinstance(value, McpServerConfig):
        return value
    if isinstance(value, StdioServerParameters):
        return McpServerConfig(stdio=value)
    if isinstance(value, str):
        return McpServerConfig(url=_check_url(server, value))
    if not isinstance(value, Mapping):
        raise TypeError(
            f'MCP server {server!r} must be a config dict ({{"command": ...}} or {{"url": ...}}), '
            f'StdioServerParameters or a streamable-HTTP URL, not {type(value).__name__}'
        )
    config: dict[str, Any] = dict(value)
    for key in config:
        if key not in _STDIO_KEYS | _HTTP_KEYS | _COMMON_KEYS:
            hint = ' (custom transports are not supported)' if key == 'transport' else ''
            raise TypeError(
                f'MCP server {server!r}: unknown config key {key!r}{hint}; expected command/args/env/cwd '
                f'(stdio), url/headers (streamable HTTP) or disabled'
            )
    disabled = config.get('disabled', False)
    if not isinstance(disabled, bool):
        raise TypeError(f'MCP server {server!r}: "disabled" must be a bool, not {type(disabled).__name__}')
    stdio_keys = _STDIO_KEYS & config.keys()
    http_keys = _HTTP_KEYS & config.keys()
    if stdio_keys and http_keys:
        raise TypeError(
            f'MCP server {server!r}: give either command (stdio) or url (streamable HTTP), '
            f'not both ({sorted(stdio_keys | http_keys)})'
        )
    if http_keys:
        if 'url' not in config:
            raise TypeError(f'MCP server {server!r}: "headers" needs a "url"')
        url = config['url']
        if not isinstance(url, str):
            raise TypeError(f'MCP server {server!r}: "url" must be a str, not {type(url).__name__}')
        headers = _str_map(server, 'headers', config.get('headers', {}))
        return McpServerConfig(url=_check_url(server, url), headers=headers, disabled=disabled)
    command = config.get('command')
    if not isinstance(command, str) or not command:
        raise TypeError(f'MCP server {server!r}: needs "command" (stdio) or "url" (streamable HTTP)')
    args = config.get('args', [])
    if isinstance(args, (str, bytes)) or not isinstance(args, (list, tuple)):
        raise TypeError(f'MCP server {server!r}: "args" must be a list of str')
    if not all(isinstance(a, str) for a in args):
        raise TypeError(f'MCP server {server!r}: "args" must be a list of str')
    env = _str_map(server, 'env', config['env']) if config.get('env') is not None else None
    cwd = config.get('cwd')
    if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
        raise TypeError(f'MCP server {server!r}: "cwd" must be a path, not {type(cwd).__name__}')
    return McpServerConfig(
        stdio=StdioServerParameters(
            command=command, args=list(args), env=env, cwd=None if cwd is None else os.fspath(cwd)
        ),
        disabled=disabled,
    )


def _check_url(server: str, url: str) -> str:
    if not url.startswith(('http://', 'https://')):
        raise ValueError(f'MCP server {server!r}: url must be http:// or https://, got {url!r}')
    return url
