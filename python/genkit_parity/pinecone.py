"""Pinecone as a vector store (JS ``genkitx-pinecone``), over its REST data plane.

::

    from genkit_parity.pinecone import define_pinecone_vector_store

    define_pinecone_vector_store(ai, index_id='facts', embedder='my/embedder')  # PINECONE_API_KEY
    await ai.index(indexer='pinecone/facts', documents=docs)
    hits = await ai.retrieve(retriever='pinecone/facts', query='pie',
                             options={'k': 3, 'filter': {'year': {'$gte': 2020}}})

Records use JS's layout (id = md5 of the document JSON; metadata ``docMetadata`` as a JSON
string, the content under ``content_key`` (default ``_content``), ``_contentType``), so JS
and Python apps share an index; each scalar metadata key is copied beside them, so that
``filter`` can select on it. Unlike JS, ``filter`` and ``sparse_vector`` are actually
sent, ``k`` is optional (default 10), and ``with_score=True`` returns Pinecone's score as
``metadata['score']``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from genkit import Document, GenkitError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import rag
from ._http import path_segment, request_json
from ._json import compact_json
from ._vectordocs import checked_vector, doc_from_data, doc_id, embed_documents, option, top_k
from .errors import VectorStoreError

__all__ = [
    'PineconeIndexerOptions',
    'PineconeRetrieverOptions',
    'SparseVector',
    'define_pinecone_vector_store',
    'pinecone_indexer_ref',
    'pinecone_retriever_ref',
]

DEFAULT_K = 10
UPSERT_BATCH = 100
CONTROL_PLANE = 'https://api.pinecone.io'
API_VERSION = '2024-07'
_MISSING_KEY = (
    'Please pass in the API key or set PINECONE_API_KEY environment variable.\n'
    'For more details see https://genkit.dev/docs/plugins/pinecone'
)


class SparseVector(BaseModel):
    """A sparse vector for hybrid search: ``indices`` and ``values`` of equal length."""

    indices: list[int]
    values: list[float]

    @model_validator(mode='after')
    def _same_length(self) -> SparseVector:
        if len(self.indices) != len(self.values):
            raise ValueError('indices and values must be of equal length')
        return self


class PineconeRetrieverOptions(rag.CommonRetrieverOptions):
    """Options of a ``pinecone/<index>`` retriever (JS's, with ``k`` optional)."""

    model_config = ConfigDict(populate_by_name=True)

    k: int | None = Field(default=None, description='Number of documents to retrieve', ge=1, le=1000)
    namespace: str | None = None
    filter: dict[str, Any] | None = None
    sparse_vector: SparseVector | None = Field(default=None, alias='sparseVector')
    with_score: bool | None = Field(default=None, description="Return Pinecone's score as metadata.score")


class PineconeIndexerOptions(BaseModel):
    """Options of a ``pinecone/<index>`` indexer."""

    namespace: str | None = None


def pinecone_retriever_ref(index_id: str, *, display_name: str | None = None) -> rag.RetrieverRef:
    """A ref to ``pinecone/<index>`` (JS ``pineconeRetrieverRef``)."""
    return rag.retriever_ref(
        f'pinecone/{index_id}',
        config_schema=PineconeRetrieverOptions,
        info={'label': display_name or f'Pinecone - {index_id}'},
    )


def pinecone_indexer_ref(index_id: str, *, display_name: str | None = None) -> rag.IndexerRef:
    """A ref to ``pinecone/<index>`` (JS ``pineconeIndexerRef``)."""
    return rag.indexer_ref(
        f'pinecone/{index_id}',
        config_schema=PineconeIndexerOptions,
        info={'label': display_name or f'Pinecone - {index_id}'},
    )


def define_pinecone_vector_store(
    ai: Any,
    *,
    index_id: str,
    embedder: Any,
    api_key: str | None = None,
    content_key: str = '_content',
    host: str | None = None,
    embedder_options: Mapping[str, Any] | None = None,
    control_plane: str = CONTROL_PLANE,
) -> tuple[Any, Any]:
    """Register the retriever and indexer ``pinecone/<index_id>`` (JS ``pinecone([...])``).

    ``api_key`` defaults to ``PINECONE_API_KEY`` (else ``GenkitError`` FAILED_PRECONDITION,
    JS's message). ``host`` is the index's data-plane URL; without it the index is described
    once through ``control_plane`` to find it. Returns ``(retriever, indexer)``.
    """
    path_segment(index_id, 'index_id')  # the control plane's URL names it
    key = api_key or os.environ.get('PINECONE_API_KEY')
    if not key:
        raise GenkitError(status='FAILED_PRECONDITION', message=_MISSING_KEY)
    name = f'pinecone/{index_id}'
    headers = {'Api-Key': key, 'Content-Type': 'application/json', 'X-Pinecone-API-Version': API_VERSION}
    resolved: dict[str, str] = {}

    async def data_plane() -> str:
        if host:
            return host.rstrip('/') if '://' in host else f'https://{host}'
        if 'host' not in resolved:
            described = await request_json(
                'GET', f'{control_plane.rstrip("/")}/indexes/{index_id}', headers=headers, store=name
            )
            found = described.get('host') if isinstance(described, Mapping) else None
            if not isinstance(found, str) or not found:
                raise VectorStoreError(f'{name}: the index description has no host', name, 'INTERNAL')
            resolved['host'] = found if '://' in found else f'https://{found}'
        return resolved['host']

    async def retrieve(query: Document, options: Any) -> list[Document]:
        k = top_k(options, DEFAULT_K, name)
        vector = checked_vector(
            (await embed_documents(ai, embedder, [query], embedder_options, name))[0], name
        )
        body: dict[str, Any] = {'topK': k, 'vector': vector, 'includeValues': False, 'includeMetadata': True}
        query_filter = option(options, 'filter')
        if query_filter is not None:
            body['filter'] = query_filter
        sparse = option(options, 'sparse_vector')
        if sparse is not None:
            body['sparseVector'] = SparseVector.model_validate(sparse).model_dump()
        namespace = option(options, 'namespace')
        if namespace:
            body['namespace'] = namespace
        reply = await request_json(
            'POST', f'{await data_plane()}/query', headers=headers, body=body, store=name
        )
        matches = reply.get('matches', []) if isinstance(reply, Mapping) else []
        with_score = bool(option(options, 'with_score', False))
        documents = []
        for match in matches:
            metadata = match.get('metadata')
            if not metadata:
                continue  # as JS: a match without metadata cannot become a document
            raw = metadata.get('docMetadata')
            parsed = json.loads(raw) if isinstance(raw, str) and raw else None
            document = doc_from_data(
                str(metadata.get(content_key, '')), metadata.get('_contentType') or None, parsed
            )
            if with_score and 'score' in match:
                document.metadata = {**(document.metadata or {}), 'score': float(match['score'])}
            documents.append(document)
        return documents

    async def index(documents: list[Document], options: Any) -> None:
        # Pinecone takes up to 1000 records (2 MB) per upsert: write in batches, each kept
        # even if a later one fails.
        for start in range(0, len(documents), UPSERT_BATCH):
            await upsert(documents[start : start + UPSERT_BATCH], options, start)

    async def upsert(documents: list[Document], options: Any, first: int) -> None:
        embeddings = await embed_documents(ai, embedder, documents, embedder_options, name)
        vectors = []
        for position, (document, values) in enumerate(zip(documents, embeddings, strict=True)):
            checked_vector(values, name, f'the embedding of document {first + position}')
            metadata: dict[str, Any] = {}
            if document.metadata is not None:
                metadata['docMetadata'] = compact_json(document.metadata)
            metadata[content_key] = document.data
            metadata['_contentType'] = document.data_type or ''
            for key, value in (document.metadata or {}).items():
                # Scalar keys copied as well, so that `filter` can select on them (JS has none).
                if key not in metadata and isinstance(value, (str, int, float, bool)):
                    metadata[key] = value
            vectors.append({'id': doc_id(document), 'values': values, 'metadata': metadata})
        body: dict[str, Any] = {'vectors': vectors}
        namespace = option(options, 'namespace')
        if namespace:
            body['namespace'] = namespace
        await request_json(
            'POST', f'{await data_plane()}/vectors/upsert', headers=headers, body=body, store=name
        )

    retriever = rag.define_retriever(ai.registry, name, retrieve, config_schema=PineconeRetrieverOptions)
    indexer = rag.define_indexer(ai.registry, name, index, config_schema=PineconeIndexerOptions)
    return retriever, indexer
