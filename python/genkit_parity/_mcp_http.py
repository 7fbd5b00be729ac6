"""The HTTP client of a streamable-HTTP MCP connection, watching for a server that vanished.

When the server dies under a pending request, the MCP SDK only logs that the request's
response stream ended, and the request waits for an answer that cannot come. This client
reports a POST's response stream (the one that carries a request's answer) cut short, so
the MCP client fails the connection's pending requests at once and says why. The
long-lived GET stream is left alone: the SDK reconnects it by itself (a load balancer may
cut it when idle). A connection the server refuses already fails the SDK's connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

import httpx
from mcp.shared._httpx_utils import create_mcp_http_client

__all__ = ['watched_http_client']


def watched_http_client(
    headers: Mapping[str, str], on_broken: Callable[[BaseException], None]
) -> httpx.AsyncClient:
    """The SDK's own client (its timeouts, the environment's proxies), plus the watch.

    ``on_broken`` is called with the error when a POST's response stream breaks; a read
    timeout is not a vanished server and is not reported.
    """

    async def watch(response: httpx.Response) -> None:
        if response.request.method == 'POST' and isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _WatchedStream(response.stream, on_broken)

    client = create_mcp_http_client(headers=dict(headers) or None)
    client.event_hooks['response'].append(watch)
    return client


class _WatchedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, on_broken: Callable[[BaseException], None]) -> None:
        self._inner = inner
        self._on_broken = on_broken

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.TimeoutException:
            raise
        except httpx.TransportError as error:  # the connection dropped mid-answer
            self._on_broken(error)
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()
