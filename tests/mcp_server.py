"""A real MCP server (FastMCP, from the mcp SDK) for the MCP host tests.

Run as ``python tests/mcp_server.py stdio`` or ``python tests/mcp_server.py http <port>``.
``MCP_TEST_SLOW_LIST=1`` makes it never answer tools/list; ``python tests/mcp_server.py
garbage`` writes a banner to stdout (where only JSON-RPC may go) and never answers, and
``banner`` writes one and then serves stdio as usual.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time

from mcp.server.fastmcp import Context, FastMCP, Image

# A 1x1 PNG.
PIXEL = base64.b64decode(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='
)

port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
server = FastMCP('test-server', host='127.0.0.1', port=port, log_level='WARNING')


@server.tool(description='Adds two numbers')
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool(description='Returns a tiny image')
def pixel() -> Image:
    return Image(data=PIXEL, format='png')


@server.tool(description='Adds the tool "fresh" and announces it')
async def grow(ctx: Context) -> str:
    server.add_tool(lambda: 'so fresh', name='fresh', description='Added at run time')
    await ctx.session.send_tool_list_changed()
    return 'grown'


@server.prompt(description='Greets someone')
def greet(name: str) -> str:
    return f'Please greet {name} warmly.'


@server.resource('note://hello', description='A short note')
def hello_note() -> str:
    return 'hi there'


@server.tool(description='The x-token request header (HTTP) or the TOKEN variable (stdio)')
def whoami(ctx: Context) -> str:
    request = getattr(ctx.request_context, 'request', None)
    if request is not None:
        return request.headers.get('x-token', '')
    return os.environ.get('TOKEN', '')


@server.tool(description='Kills this server')
def crash() -> str:
    os._exit(3)


@server.tool(description='Never answers')
async def wait() -> str:
    await asyncio.sleep(3600)
    return 'late'


if os.environ.get('MCP_TEST_SLOW_LIST'):

    @server._mcp_server.list_tools()  # replaces FastMCP's own handler
    async def never_list() -> list[object]:
        await asyncio.sleep(3600)
        return []


if __name__ == '__main__':
    if sys.argv[1] in ('garbage', 'banner'):
        print('Starting the server on stdio...', flush=True)
    if sys.argv[1] == 'garbage':
        time.sleep(3600)
    server.run(transport='stdio' if sys.argv[1] in ('stdio', 'banner') else 'streamable-http')
