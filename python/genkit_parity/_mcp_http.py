"""The HTTP client of a streamable-HTTP MCP connection, watching for a server that vanished.

When the server dies under a pending request, the MCP SDK only logs that its response
stream ended, and the request waits for an answer that cannot come. This client's
transport reports a failed connection or a response stream cut short, so the MCP client
fails the connection's pending requests at once (and says why).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

import httpx

__all__ = ['watched_http_client']

#: The MCP SDK's own defaults: 30 s to connect or write, 300 s between reads of a stream.
_TIMEOUT = httpx.Timeout(30.0, read=300.0)


def watched_http_client(
    headers: Mapping[str, str], on_broken: Callable[[BaseException], None]
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the SDK that calls ``on_broken`` when the server vanishes.

    A read timeout is not a vanished server (a quiet stream is normal): it is not reported.
    """
    return httpx.AsyncClient(
        headers=dict(headers) or None, timeout=_TIMEOUT, transport=_WatchedTransport(on_broken)
    )


class _WatchedTransport(httpx.AsyncBaseTransport):
    def __init__(self, on_broken: Callable[[BaseException], None]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._on_broken = on_broken

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TimeoutException:
            raise
        except httpx.TransportError as error:
            self._on_broken(error)
            raise
        response.stream = _WatchedStream(response.stream, self._on_broken)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _WatchedStream(httpx.AsyncByteStream):
    def __init__(
        self, inner: httpx.AsyncByteStream | httpx.SyncByteStream, on_broken: Callable[[BaseException], None]
    ) -> None:
        assert isinstance(inner, httpx.AsyncByteStream)
        self._inner = inner
        self._on_broken = on_broken

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.TimeoutException:
            raise
        except httpx.TransportError as error:  # the connection dropped mid-response
            self._on_broken(error)
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()
