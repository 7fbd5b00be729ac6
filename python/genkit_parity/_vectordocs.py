"""What the vector-store plugins (postgres, chroma, pinecone) and the Vertex reranker share.

JS's Chroma and Pinecone plugins (and dev-local) key a document by the md5 of its compact
``JSON.stringify`` text, store its metadata as a JSON *string* and rebuild it with
``Document.fromData``; the helpers here do the same with JS's exact JSON text, so ids agree
with a JS app writing to the same collection.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from genkit import Document, GenkitError
from pydantic import BaseModel

from ._native import js_document_id, js_json_text
from ._textdoc import text_document
from .errors import InvalidVectorError, VectorStoreError
from .rag import document_json

__all__ = [
    'checked_vector',
    'doc_from_data',
    'doc_id',
    'embed_documents',
    'http_status',
    'js_json',
    'option',
    'top_k',
]


def js_json(value: Any) -> str:
    """``value`` as compact JSON text, byte-for-byte what JS's ``JSON.stringify`` writes."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode='json', by_alias=True, exclude_none=True)
    return js_json_text(json.dumps(value, ensure_ascii=False, allow_nan=False))


def doc_id(document: Document) -> str:
    """JS's document id: the md5 of the document's compact JSON (``{"content":[...],"metadata":{...}}``).

    The same Rust code computes the local store's ids, so every store agrees with JS.
    """
    try:
        text = _json_text(document_json(document))
    except ValueError as error:
        raise GenkitError(
            status='INVALID_ARGUMENT',
            message=f'a document cannot be stored: its metadata holds NaN or infinity, which JSON '
            f'has no form for ({error})',
        ) from None
    return js_document_id(text)


# One encoder for every id: json.dumps with non-default arguments builds a new one per call.
_json_text = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def checked_vector(vector: Sequence[float], store: str, what: str = 'the query embedding') -> Sequence[float]:
    """``vector`` itself if it has values, all finite; else ``InvalidVectorError`` naming ``what``.

    Engines take NaN without complaint and answer with scores of NaN in no order.
    """
    if len(vector) == 0:
        raise InvalidVectorError(f'{store}: {what} is empty', store)
    if not all(map(math.isfinite, vector)):
        raise InvalidVectorError(f'{store}: {what} contains NaN or infinity', store)
    return vector


def doc_from_data(data: str, data_type: str | None, metadata: dict[str, Any] | None) -> Document:
    """JS ``Document.fromData``: text for ``'text'`` (or no type), else a media part.

    ``metadata`` is taken over, not copied: callers pass a dict fresh from ``json.loads``.
    """
    if not data_type or data_type == 'text':
        if isinstance(data, str) and (metadata is None or type(metadata) is dict):
            return text_document(data, metadata)  # what validation gives, without validating
        # Validated from plain data: Document.from_text would deep-copy the part it builds.
        made: Document = Document.model_validate({'content': [{'text': data}], 'metadata': metadata})
        return made
    return Document.from_media(data, data_type, metadata)


async def embed_documents(
    ai: Any, embedder: Any, documents: Sequence[Document], options: Mapping[str, Any] | None, store: str
) -> list[list[float]]:
    """One embedding per document, in one ``embed_many`` call; errors name the store."""
    if not documents:
        return []
    embeddings = await ai.embed_many(
        embedder=embedder, content=list(documents), options=dict(options) if options else None
    )
    if len(embeddings) != len(documents):
        raise VectorStoreError(
            f'{store}: the embedder returned {len(embeddings)} embeddings for {len(documents)} documents',
            store,
            'INTERNAL',
        )
    return [list(embedding.embedding) for embedding in embeddings]


def option(options: Any, name: str, default: Any = None) -> Any:
    """One option from a validated options object (a pydantic model, a dict or None)."""
    if options is None:
        return default
    if isinstance(options, Mapping):
        value = options.get(name, default)
    else:
        value = getattr(options, name, default)
        if value is None and isinstance(options, BaseModel) and options.model_extra:
            value = options.model_extra.get(name, default)
    return default if value is None else value


def top_k(options: Any, default: int, store: str, *, maximum: int = 1000) -> int:
    """The ``k`` option checked (an int in 1..maximum), ``default`` when absent."""
    k = option(options, 'k', default)
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= maximum:
        raise GenkitError(
            status='INVALID_ARGUMENT', message=f'{store}: k must be an integer from 1 to {maximum}, got {k!r}'
        )
    return k


_HTTP_STATUS = {
    400: 'INVALID_ARGUMENT',
    401: 'UNAUTHENTICATED',
    403: 'PERMISSION_DENIED',
    404: 'NOT_FOUND',
    409: 'ALREADY_EXISTS',
    412: 'FAILED_PRECONDITION',
    429: 'RESOURCE_EXHAUSTED',
    499: 'CANCELLED',
    501: 'UNIMPLEMENTED',
    503: 'UNAVAILABLE',
    504: 'DEADLINE_EXCEEDED',
}


def http_status(code: int) -> str:
    """The Genkit status of an HTTP error code (5xx not listed: ``UNAVAILABLE``, a retryable failure)."""
    if code in _HTTP_STATUS:
        return _HTTP_STATUS[code]
    return 'UNAVAILABLE' if code >= 500 else 'UNKNOWN'
