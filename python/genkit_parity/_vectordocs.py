"""What the vector-store plugins (postgres, chroma, pinecone) and the Vertex reranker share.

JS's Chroma and Pinecone plugins (and dev-local) key a document by the md5 of its compact
``JSON.stringify`` text, store its metadata as a JSON *string* and rebuild it with
``Document.fromData``; the helpers here do the same with JS's exact JSON text, so ids agree
with a JS app writing to the same collection.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from genkit import Document, GenkitError
from pydantic import BaseModel

from .errors import VectorStoreError
from .rag import document_json

__all__ = [
    'doc_from_data',
    'doc_id',
    'embed_documents',
    'http_status',
    'js_json',
    'option',
    'top_k',
]


def _js_number(value: float) -> str:
    """A float as JS's ``JSON.stringify`` writes it (``3`` not ``3.0``, ``1e-7`` not ``1e-07``)."""
    if not math.isfinite(value):
        return 'null'
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if 'e' not in text:
        return text
    mantissa, exponent_text = text.split('e')
    exponent = int(exponent_text)
    if -7 < exponent < 0:
        # JS writes 1e-6 <= |x| < 1e-4 in plain decimals; Python's repr already uses exponents.
        sign = '-' if mantissa.startswith('-') else ''
        digits = mantissa.lstrip('-').replace('.', '')
        return f'{sign}0.{"0" * (-exponent - 1)}{digits}'
    return f'{mantissa}e{"-" if exponent < 0 else "+"}{abs(exponent)}'


def _js_text(value: Any, out: list[str]) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode='json', by_alias=True, exclude_none=True)
    if value is None or value is True or value is False:
        out.append(json.dumps(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_js_number(value))
    elif isinstance(value, Mapping):
        out.append('{')
        first = True
        for key, item in value.items():
            if not first:
                out.append(',')
            first = False
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(':')
            _js_text(item, out)
        out.append('}')
    elif isinstance(value, (list, tuple)):
        out.append('[')
        for position, item in enumerate(value):
            if position:
                out.append(',')
            _js_text(item, out)
        out.append(']')
    else:
        raise TypeError(f'{type(value).__name__} is not JSON-serializable')


def js_json(value: Any) -> str:
    """``value`` as compact JSON text, byte-for-byte what JS's ``JSON.stringify`` writes."""
    out: list[str] = []
    _js_text(value, out)
    return ''.join(out)


def doc_id(document: Document) -> str:
    """JS's document id: the md5 of the document's compact JSON (``{"content":[...],"metadata":{...}}``)."""
    return hashlib.md5(js_json(document_json(document)).encode(), usedforsecurity=False).hexdigest()


def doc_from_data(data: str, data_type: str | None, metadata: dict[str, Any] | None) -> Document:
    """JS ``Document.fromData``: text for ``'text'`` (or no type), else a media part."""
    if not data_type or data_type == 'text':
        return Document.from_text(data, metadata)
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
