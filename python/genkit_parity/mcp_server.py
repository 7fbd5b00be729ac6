"""The app's Genkit tools and prompts served over MCP (JS ``createMcpServer``).

``create_mcp_server(ai, name=..., version=...)`` gives a server that lists the app's
registered tools (``tools/list``) and runs them (``tools/call``), and lists and renders its
prompts (``prompts/list``, ``prompts/get``). genkit 0.12 has no resources, so none are
served. Serve it over stdio (``await server.start()``, JS's default) or streamable HTTP
(``await server.serve_http(port=...)``, or mount ``server.http_app()`` in an ASGI app).

MCP tool arguments are always an object: a tool whose input is not an object (say
``async def search(q: str)``) is offered as ``{"input": <its schema>}`` and called with
the ``input`` member.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import genkit
from pydantic import BaseModel

try:
    import mcp.types as mcp_types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError('genkit_parity.mcp needs the mcp SDK: pip install "genkit-parity[mcp]"') from error

from . import _compat

__all__ = ['GenkitMcpServer', 'create_mcp_server']

#: The member that carries a non-object tool input.
WRAPPED_INPUT = 'input'


def _object_schema(schema: Any) -> tuple[dict[str, Any], bool]:
    """The MCP input schema of a Genkit tool, and whether its input is wrapped in ``input``."""
    if isinstance(schema, dict) and schema.get('type') == 'object':
        return schema, False
    if not schema:
        return {'type': 'object'}, False
    return {'type': 'object', 'properties': {WRAPPED_INPUT: schema}, 'required': [WRAPPED_INPUT]}, True


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode='json', by_alias=True, exclude_none=True)
    return json.dumps(value, default=str)


def _content(part: Any) -> mcp_types.TextContent | mcp_types.ImageContent | None:
    """A Genkit part as MCP prompt content: text, or an image from a ``data:`` URL."""
    root = getattr(part, 'root', part)
    text = getattr(root, 'text', None)
    if isinstance(text, str):
        return mcp_types.TextContent(type='text', text=text)
    media = getattr(root, 'media', None)
    if media is not None and media.url.startswith('data:') and ';base64,' in media.url:
        header, data = media.url[5:].split(';base64,', 1)
        mime = media.content_type or header
        if mime.startswith('image/'):
            base64.b64decode(data, validate=True)  # a broken data URL fails here, not in the client
            return mcp_types.ImageContent(type='image', data=data, mimeType=mime)
    return None


class GenkitMcpServer:
    """An MCP server over a Genkit app; see :func:`create_mcp_server`."""

    def __init__(self, ai: genkit.Genkit, name: str, version: str) -> None:
        """Use :func:`create_mcp_server` instead."""
        self.ai = ai
        self.name = name
        self.version = version
        self.server: Server[Any, Any] = Server(name, version=version)
        self._wrapped: dict[str, bool] = {}
        self._register_handlers()

    async def _tools(self) -> dict[str, Any]:
        return (await _compat.registered_tools_and_prompts(self.ai.registry))[0]

    async def _prompts(self) -> dict[str, Any]:
        return (await _compat.registered_tools_and_prompts(self.ai.registry))[1]

    def _register_handlers(self) -> None:
        server = self.server

        @server.list_tools()  # type: ignore[no-untyped-call,untyped-decorator]
        async def list_tools() -> list[mcp_types.Tool]:
            listed = []
            for name, action in sorted((await self._tools()).items()):
                schema, wrapped = _object_schema(action.input_schema)
                self._wrapped[name] = wrapped
                listed.append(
                    mcp_types.Tool(name=name, description=action.description or '', inputSchema=schema)
                )
            return listed

        @server.call_tool()  # type: ignore[untyped-decorator]
        async def call_tool(name: str, arguments: dict[str, Any]) -> list[mcp_types.TextContent]:
            action = (await self._tools()).get(name)
            if action is None:
                raise ValueError(f'unknown tool {name!r}')
            if name not in self._wrapped:
                self._wrapped[name] = _object_schema(action.input_schema)[1]
            tool_input = arguments.get(WRAPPED_INPUT) if self._wrapped[name] else arguments
            result = (await action.run(tool_input)).response
            output = (
                getattr(result, 'output', result)
                if isinstance(result, genkit.MultipartToolResponse)
                else result
            )
            return [mcp_types.TextContent(type='text', text=_as_text(output))]

        @server.list_prompts()  # type: ignore[no-untyped-call,untyped-decorator]
        async def list_prompts() -> list[mcp_types.Prompt]:
            listed = []
            for name, action in sorted((await self._prompts()).items()):
                schema = action.input_schema if isinstance(action.input_schema, dict) else {}
                required = set(schema.get('required') or [])
                arguments = [
                    mcp_types.PromptArgument(
                        name=argument,
                        description=(spec or {}).get('description') if isinstance(spec, dict) else None,
                        required=argument in required,
                    )
                    for argument, spec in (schema.get('properties') or {}).items()
                ]
                listed.append(
                    mcp_types.Prompt(name=name, description=action.description, arguments=arguments)
                )
            return listed

        @server.get_prompt()  # type: ignore[no-untyped-call,untyped-decorator]
        async def get_prompt(name: str, arguments: dict[str, str] | None) -> mcp_types.GetPromptResult:
            action = (await self._prompts()).get(name)
            if action is None:
                raise ValueError(f'unknown prompt {name!r}')
            rendered = (await action.run(dict(arguments or {}))).response
            messages = []
            for message in rendered.messages or []:
                # MCP has user and assistant only: model -> assistant, system and user -> user.
                role: Any = 'assistant' if message.role == 'model' else 'user'
                for part in message.content:
                    content = _content(part)
                    if content is not None:
                        messages.append(mcp_types.PromptMessage(role=role, content=content))
            return mcp_types.GetPromptResult(description=action.description, messages=messages)

    # -- transports ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve over stdio until stdin closes (JS ``server.start()`` default transport)."""
        async with stdio_server() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())

    def http_app(self, path: str = '/mcp') -> Any:
        """A Starlette ASGI app serving streamable HTTP at ``path`` (run it with any ASGI server)."""
        from starlette.applications import Starlette
        from starlette.routing import Mount

        manager = StreamableHTTPSessionManager(app=self.server)

        @contextlib.asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[None]:
            async with manager.run():
                yield

        return Starlette(routes=[Mount(path, app=manager.handle_request)], lifespan=lifespan)

    async def serve_http(self, host: str = '127.0.0.1', port: int = 3000, path: str = '/mcp') -> None:
        """Serve streamable HTTP at ``http://host:port/path`` (uvicorn) until cancelled."""
        import uvicorn

        config = uvicorn.Config(self.http_app(path), host=host, port=port, log_level='warning', lifespan='on')
        await uvicorn.Server(config).serve()


def create_mcp_server(ai: genkit.Genkit, *, name: str, version: str = '1.0.0') -> GenkitMcpServer:
    """An MCP server offering ``ai``'s tools and prompts (JS ``createMcpServer(ai, {name, version})``).

    Example:
        >>> # server = create_mcp_server(ai, name='my-app', version='1.0.0')
        >>> # asyncio.run(server.start())          # stdio
        >>> # asyncio.run(server.serve_http(port=3000))  # streamable HTTP at /mcp

    """
    if not isinstance(name, str) or not name:
        raise ValueError(f'name must be a non-empty str, got {name!r}')
    if not isinstance(version, str) or not version:
        raise ValueError(f'version must be a non-empty str, got {version!r}')
    return GenkitMcpServer(ai, name, version)
