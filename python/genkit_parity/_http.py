"""JSON over HTTP for the cloud plugins (Vertex AI reranker, Pinecone), over ``httpx``.

Bodies are sent as JS's ``JSON.stringify`` text, so a request is byte-for-byte what the JS
plugin sends. Failures become :class:`VectorStoreError` naming the store, with the Genkit
status of the HTTP code (connection failures: ``UNAVAILABLE``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from ._vectordocs import http_status, js_json
from .errors import VectorStoreError

__all__ = ['path_segment', 'request_json']

#: Seconds to wait for a cloud API before the call fails as DEADLINE_EXCEEDED.
TIMEOUT = 60.0


# One plain path segment: no "/", "?", "#", "%" or leading dot, so that no name given by a
# caller can point a request (and the credentials it carries) at another path.
_SEGMENT = re.compile(r'[A-Za-z0-9][A-Za-z0-9._:-]*')


def path_segment(value: object, what: str) -> str:
    """``value`` checked to be one plain URL path segment (letters, digits, ``.``, ``_``, ``:``, ``-``).

    Raises ``TypeError`` for a non-str or empty one and ``ValueError`` naming ``what`` for anything else.
    """
    if not isinstance(value, str) or not value:
        raise TypeError(f'{what} must be a non-empty str, not {value!r}')
    if not _SEGMENT.fullmatch(value):
        raise ValueError(
            f'{what} must start with a letter or digit and hold only letters, digits, ".", "_", ":" '
            f'and "-" (it goes into the request URL), not {value!r}'
        )
    return value


def _error_text(response: httpx.Response) -> str:
    text = response.text
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, Mapping):
        error = data.get('error')
        if isinstance(error, Mapping) and isinstance(error.get('message'), str) and error['message']:
            return str(error['message'])
        if isinstance(data.get('message'), str) and data['message']:
            return str(data['message'])
    return text


async def request_json(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: Any = None,
    store: str,
    error_prefix: str | None = None,
) -> Any:
    """Send ``body`` as JS-exact JSON and return the decoded JSON reply (None for an empty one).

    ``error_prefix`` (default ``'Failed to fetch from <url>: Error fetching from <url>: '``,
    JS's wording) starts the message of an HTTP error, followed by ``[<code> <reason>] <text>``.
    """
    try:
        content = None if body is None else js_json(body).encode()
    except (TypeError, ValueError) as error:
        raise VectorStoreError(
            f'{store}: the request cannot be sent as JSON: {error} (NaN and infinity have no JSON form)',
            store,
            'INVALID_ARGUMENT',
        ) from None
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.request(method, url, headers=dict(headers), content=content)
    except httpx.TimeoutException as error:
        raise VectorStoreError(
            f'{store}: {url} did not answer in {TIMEOUT:g} s ({error})', store, 'DEADLINE_EXCEEDED'
        ) from None
    except httpx.HTTPError as error:
        raise VectorStoreError(
            f'{store}: cannot reach {url}: {error or type(error).__name__}', store, 'UNAVAILABLE'
        ) from None
    if response.is_error:
        prefix = (
            error_prefix
            if error_prefix is not None
            else f'Failed to fetch from {url}: Error fetching from {url}: '
        )
        message = f'{prefix}[{response.status_code} {response.reason_phrase}] {_error_text(response)}'
        raise VectorStoreError(message, store, http_status(response.status_code))
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise VectorStoreError(
            f'{store}: {url} answered with invalid JSON: {response.text[:200]!r}', store, 'INTERNAL'
        ) from None
