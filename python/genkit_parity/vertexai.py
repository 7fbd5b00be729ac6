"""Vertex AI rerankers (JS ``vertexRerankers`` from ``@genkit-ai/vertexai/rerankers``).

::

    from genkit_parity.vertexai import vertex_rerankers, vertex_reranker_ref

    vertex_rerankers(ai, project_id='my-proj')          # google-auth default credentials
    ranked = await ai.rerank(reranker=vertex_reranker_ref(), query='which?', documents=docs,
                             options={'topN': 2})

Each model is a reranker action ``vertex-rerankers/<model>`` with JS's config schema
(``topN``, ``ignoreRecordDetailsInResponse``, ``location``). The request (URL, headers, body)
is byte-for-byte the JS plugin's, scores come back as ``metadata['score']`` in the API's
order. Unlike JS, a per-call ``location`` selects the endpoint (JS puts it in the body,
where the API ignores it).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from genkit import Document, GenkitError

from . import rag
from ._http import path_segment, request_json
from .errors import VectorStoreError

__all__ = [
    'DEFAULT_MODEL_NAME',
    'KNOWN_MODELS',
    'RERANKER_CONFIG_SCHEMA',
    'vertex_reranker_ref',
    'vertex_rerankers',
]

PLUGIN = 'vertex-rerankers'
DEFAULT_MODEL_NAME = 'semantic-ranker-default@latest'
KNOWN_MODELS = (
    DEFAULT_MODEL_NAME,
    'semantic-ranker-default-004',
    'semantic-ranker-fast-004',
    'semantic-ranker-default-003',
    'semantic-ranker-default-002',
)
DEFAULT_ENDPOINT = 'https://discoveryengine.googleapis.com'
_RANK_PATH = 'rankingConfigs/default_ranking_config:rank'
_SCOPE = 'https://www.googleapis.com/auth/cloud-platform'

#: JS's ``VertexRerankerOptionsSchema`` (zod ``.passthrough()``), as its Dev UI lists it.
RERANKER_CONFIG_SCHEMA: dict[str, Any] = {
    'type': 'object',
    'properties': {
        'topN': {'type': 'number', 'description': 'Number of top documents to rerank'},
        'ignoreRecordDetailsInResponse': {
            'type': 'boolean',
            'description': (
                'If true, the response will contain only record ID and score. By default, it is false, '
                'the response will contain record details.'
            ),
        },
        'location': {'type': 'string', 'description': 'Google Cloud location, e.g., "us-central1"'},
    },
    'additionalProperties': True,
}

#: A token provider: returns (or resolves to) an OAuth2 access token.
TokenProvider = Callable[[], 'str | Awaitable[str]']


def vertex_reranker_ref(model: str = DEFAULT_MODEL_NAME) -> rag.RerankerRef:
    """A ref to ``vertex-rerankers/<model>`` (JS ``vertexRerankers.reranker(name)``)."""
    return rag.reranker_ref(
        f'{PLUGIN}/{model}', config_schema=RERANKER_CONFIG_SCHEMA, info={'supports': {'media': False}}
    )


class _Tokens:
    """Access tokens from a token provider callable or google-auth credentials."""

    def __init__(self, credentials: Any) -> None:
        if credentials is not None and not (callable(credentials) or _is_google_credentials(credentials)):
            raise TypeError(
                'credentials must be a callable returning an access token or google-auth credentials, '
                f'not {type(credentials).__name__}'
            )
        self._credentials = credentials
        self._lock: asyncio.Lock | None = None

    async def token(self) -> str:
        source = self._credentials
        if source is None:
            source = self._credentials = _default_credentials()
        if _is_google_credentials(source):
            return await self._google_token(source)
        made = source()
        if inspect.isawaitable(made):
            made = await made
        if not isinstance(made, str) or not made:
            raise TypeError(f'the credentials token provider must return a non-empty str, not {made!r}')
        return made

    async def _google_token(self, credentials: Any) -> str:
        if not getattr(credentials, 'valid', False) or not credentials.token:
            # google-auth refreshes with a blocking HTTP call: keep it off the event loop.
            from google.auth.transport.requests import Request  # type: ignore[import-untyped,import-not-found,unused-ignore]

            await asyncio.to_thread(credentials.refresh, Request())
        return str(credentials.token)


def _is_google_credentials(source: Any) -> bool:
    return hasattr(source, 'refresh') and hasattr(source, 'token')


def _default_credentials() -> Any:
    try:
        import google.auth  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise GenkitError(
            status='FAILED_PRECONDITION',
            message=(
                'vertex_rerankers needs credentials: install google-auth (pip install google-auth) for '
                'application default credentials, or pass credentials=<a callable returning an access token>'
            ),
        ) from None
    credentials, _project = google.auth.default(scopes=[_SCOPE])
    return credentials


def _text(document: Document) -> str:
    return document.text or ''


def _options_dict(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if isinstance(options, Mapping):
        return dict(options)
    raise GenkitError(
        status='INVALID_ARGUMENT', message=f'options must be an object, not {type(options).__name__}'
    )


def _ranked(documents: Sequence[Document], reply: Any, name: str) -> list[Document]:
    records = reply.get('records') if isinstance(reply, Mapping) else None
    if not isinstance(records, list):
        raise VectorStoreError(
            f'{name}: the ranking API answered without records: {reply!r}', name, 'INTERNAL'
        )
    ranked = []
    for record in records:
        try:
            # The ids sent are the documents' positions as decimal text: nothing else names one
            # (not "-1", which Python would read from the end, nor " 1 " or true).
            record_id = record['id']
            if not isinstance(record_id, str) or not record_id.isascii() or not record_id.isdigit():
                raise ValueError(record_id)
            source = documents[int(record_id)]
            score = float(record['score'])
        except (KeyError, TypeError, ValueError, IndexError):
            raise VectorStoreError(
                f'{name}: the ranking API returned a bad record {record!r}', name, 'INTERNAL'
            ) from None
        ranked.append(Document(content=source.content, metadata={**(source.metadata or {}), 'score': score}))
    return ranked


def vertex_rerankers(
    ai: Any,
    *,
    project_id: str,
    location: str = 'global',
    models: Sequence[str] | None = None,
    credentials: Any = None,
    endpoint: str | None = None,
) -> list[Any]:
    """Register the Vertex AI rerankers ``vertex-rerankers/<model>`` on ``ai`` (JS ``vertexRerankers``).

    ``models`` defaults to JS's five (``semantic-ranker-default@latest`` first; any other
    ``semantic-ranker-*`` name can be listed). ``credentials`` is a token provider (a
    callable returning an access token, sync or async) or google-auth credentials; by
    default google-auth's application default credentials (``pip install google-auth``).
    ``endpoint`` replaces ``https://discoveryengine.googleapis.com`` (a proxy, a test server).
    Returns the reranker actions.
    """
    path_segment(project_id, 'project_id')
    path_segment(location, 'location')
    if isinstance(models, str):
        raise TypeError(f'models must be a list of model names, not the str {models!r}')
    names = list(KNOWN_MODELS if models is None else models)
    if not names or not all(isinstance(model, str) and model for model in names):
        raise TypeError('models must be a non-empty list of model names')
    base = (endpoint or DEFAULT_ENDPOINT).rstrip('/')
    tokens = _Tokens(credentials)

    def define(model: str) -> Any:
        name = f'{PLUGIN}/{model}'

        async def rerank(query: Document, documents: list[Document], options: Any) -> list[Document]:
            extra = _options_dict(options)
            # Fix of JS's quirk: a per-call location picks the URL and is not sent in the body.
            where = extra.pop('location', None) or location
            try:
                path_segment(where, 'location')
            except (TypeError, ValueError) as error:
                raise GenkitError(status='INVALID_ARGUMENT', message=f'{name}: {error}') from None
            url = f'{base}/v1/projects/{project_id}/locations/{where}/{_RANK_PATH}'
            body = {
                'model': model,
                'query': _text(query),
                'records': [
                    {'id': str(position), 'content': _text(doc)} for position, doc in enumerate(documents)
                ],
                **extra,
            }
            headers = {
                'Authorization': f'Bearer {await tokens.token()}',
                'x-goog-user-project': project_id,
                'Content-Type': 'application/json',
            }
            reply = await request_json('POST', url, headers=headers, body=body, store=name)
            return _ranked(documents, reply, name)

        return rag.define_reranker(ai.registry, name, rerank, config_schema=RERANKER_CONFIG_SCHEMA)

    return [define(model) for model in names]
