"""Chroma as a vector store (JS ``genkitx-chromadb``), over the Python ``chromadb`` package.

Install the extra: ``pip install 'genkit-parity[chroma]'``. ::

    import chromadb
    from genkit_parity.chroma import define_chroma_vector_store

    client = chromadb.PersistentClient(path='chroma-data')
    define_chroma_vector_store(ai, collection_name='facts', embedder='my/embedder', client=client,
                               create_collection_if_missing=True)
    await ai.index(indexer='chroma/facts', documents=docs)
    hits = await ai.retrieve(retriever='chroma/facts', query='pie', options={'k': 3, 'where': {'year': 2024}})

Documents are stored as JS stores them (id = md5 of the document JSON, ``docMetadata`` as a
JSON string, ``dataType``), plus each scalar metadata key as a Chroma metadata key so that
``where`` can filter on it (JS keeps only ``docMetadata``). Unlike JS, a query returning two
or more results works (JS reads their metadata at the wrong depth), and
``options={'include': ['distances']}`` (or ``with_score=True``) returns each distance as
``metadata['score']``. ``chromadb`` is synchronous: every call runs in a worker thread, never
on the event loop, even embedded (chromadb's own async server runs its embedded calls in
worker threads too, and a query's time is not bounded: the first one loads the index, a
``where`` filter may scan). Queries take the lean hop of ``_offload``; writes ``to_thread``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from genkit import Document, GenkitError
from pydantic import ConfigDict, Field

from . import rag
from ._json import compact_json
from ._offload import run_in_worker
from ._vectordocs import checked_vector, doc_from_data, doc_id, embed_documents, option, top_k
from .errors import InvalidVectorError, VectorStoreError

__all__ = [
    'ChromaRetrieverOptions',
    'chroma_indexer_ref',
    'chroma_retriever_ref',
    'create_chroma_collection',
    'define_chroma_vector_store',
    'delete_chroma_collection',
]

DEFAULT_K = 10  # Chroma's own default n_results, which JS leaves in place
BATCH_SIZE = 1000
_RESERVED = ('docMetadata', 'dataType')
T = TypeVar('T')


class ChromaRetrieverOptions(rag.CommonRetrieverOptions):
    """Options of a ``chroma/<collection>`` retriever (JS ``ChromaRetrieverOptionsSchema``)."""

    model_config = ConfigDict(extra='allow', populate_by_name=True)

    k: int | None = Field(default=None, description='Number of documents to retrieve', ge=1, le=10000)
    include: list[Literal['documents', 'embeddings', 'metadatas', 'distances']] | None = None
    where: dict[str, Any] | None = None
    where_document: dict[str, Any] | None = Field(default=None, alias='whereDocument')
    with_score: bool | None = Field(default=None, description='Return each distance as metadata.score')


def _chromadb() -> Any:
    try:
        import chromadb
    except ImportError:
        raise ImportError("the Chroma plugin needs chromadb: pip install 'genkit-parity[chroma]'") from None
    return chromadb


def _client(client: Any, client_params: Mapping[str, Any] | None) -> Any:
    if client is not None:
        return client
    chromadb = _chromadb()
    params = dict(client_params or {})
    params.setdefault('settings', chromadb.Settings(anonymized_telemetry=False))
    return chromadb.HttpClient(**params)


def _store_error(error: Exception, store: str) -> Exception:
    """A chromadb/httpx failure as VectorStoreError with a status the caller can act on."""
    if isinstance(error, (GenkitError, TypeError)):
        return error
    chromadb = _chromadb()
    errors = chromadb.errors
    text = f'{store}: {type(error).__name__}: {error}'
    if isinstance(error, errors.NotFoundError) or 'does not exist' in str(error):
        return VectorStoreError(text, store, 'NOT_FOUND')
    if isinstance(
        error, (errors.InvalidArgumentError, errors.InvalidDimensionException)
    ) or 'dimension' in str(error):
        return VectorStoreError(text, store, 'INVALID_ARGUMENT')
    if isinstance(
        error, (errors.UniqueConstraintError, errors.IDAlreadyExistsError)
    ) or 'already exists' in str(error):
        return VectorStoreError(text, store, 'ALREADY_EXISTS')
    import httpx

    if isinstance(error, (httpx.TransportError, ConnectionError)) or 'Could not connect' in str(error):
        return VectorStoreError(text, store, 'UNAVAILABLE')
    answered = _http_status_error(error)
    if answered is not None:
        # chromadb re-raises some HTTP errors as an empty ValueError: name the reply too.
        code = answered.response.status_code
        status = _HTTP_STATUS.get(code, 'UNAVAILABLE' if code >= 500 else 'FAILED_PRECONDITION')
        hint = ' (is a Chroma server with the v2 API listening there?)' if code == 404 else ''
        said = f': {type(error).__name__}: {error}' if str(error) else ''
        return VectorStoreError(
            f'{store}: {answered.request.method} {answered.request.url} answered HTTP {code}{hint}{said}',
            store,
            status,
        )
    if isinstance(error, ValueError):
        return VectorStoreError(text, store, 'INVALID_ARGUMENT')
    return VectorStoreError(text, store, 'INTERNAL')


#: Genkit statuses of the HTTP errors a Chroma server answers with (others: 5xx UNAVAILABLE,
#: 4xx FAILED_PRECONDITION).
_HTTP_STATUS = {
    400: 'INVALID_ARGUMENT',
    401: 'UNAUTHENTICATED',
    403: 'PERMISSION_DENIED',
    422: 'INVALID_ARGUMENT',
    429: 'RESOURCE_EXHAUSTED',
}


def _http_status_error(error: BaseException) -> Any:
    """The ``httpx.HTTPStatusError`` that ``error`` was raised from or while handling, if any."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx.HTTPStatusError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _matrix(embeddings: list[list[float]], store: str, positions: list[int]) -> Any:
    """The embeddings as one float32 matrix (chromadb would convert them list by list).

    Ragged ones stay lists, for chromadb to report. chromadb stores NaN and infinity (and
    float32 turns 1e39 into infinity): refused here, naming the document (row ``i`` is the
    call's document ``positions[i]``).
    """
    import numpy as np  # a dependency of chromadb

    try:
        matrix = np.asarray(embeddings, dtype=np.float32)
    except ValueError:
        return embeddings
    if matrix.ndim == 2 and not np.isfinite(matrix).all():
        row = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
        raise InvalidVectorError(
            f'{store}: the embedding of document {positions[row]} contains NaN or infinity '
            '(as float32, the values Chroma stores)',
            store,
        )
    return matrix


def _collection_gone(error: Exception) -> bool:
    errors = _chromadb().errors
    return isinstance(error, errors.NotFoundError) or 'does not exist' in str(error)


async def _in_thread(store: str, work: Callable[[], T], *, read: bool = False) -> T:
    """``work()`` off the event loop, its failure mapped; a read takes the lean hop of ``_offload``.

    Writes stay on ``asyncio.to_thread``, whose executor ``asyncio.run`` waits for at exit.
    """
    try:
        return await (run_in_worker(work) if read else asyncio.to_thread(work))
    except Exception as error:  # chromadb raises many unrelated types; each is mapped
        raise _store_error(error, store) from error


def _chroma_metadata(document: Document) -> dict[str, Any]:
    metadata = document.metadata or {}
    stored: dict[str, Any] = {'dataType': document.data_type or ''}
    if document.metadata is not None:
        stored['docMetadata'] = compact_json(metadata)
    for key, value in metadata.items():
        # Scalars only: what Chroma metadata can hold and `where` can filter on.
        if key not in _RESERVED and isinstance(value, (str, int, float, bool)):
            stored[key] = value
    return stored


def _doc_metadata(metadatas: list[Any]) -> list[Any]:
    """Each row's ``docMetadata`` JSON parsed (None where a row has none).

    The rows' JSON texts are parsed as one JSON array: one ``json.loads`` a query instead
    of one a row. Text that does not give exactly one value a row is parsed row by row
    (and fails as that row would).
    """
    raws = [metadata.get('docMetadata') if metadata else None for metadata in metadatas]
    texts = [raw for raw in raws if isinstance(raw, str) and raw]
    if not texts:
        return [None] * len(raws)
    try:
        parsed = json.loads(f'[{",".join(texts)}]')
    except ValueError:
        parsed = None
    if not isinstance(parsed, list) or len(parsed) != len(texts):
        parsed = [json.loads(text) for text in texts]
    values = iter(parsed)
    return [next(values) if isinstance(raw, str) and raw else None for raw in raws]


def _documents(texts: list[Any], metadatas: list[Any], distances: list[Any] | None) -> list[Document]:
    """Documents from a query's rows (JS ``Document.fromData`` of each), with ``score`` when asked."""
    documents = []
    scores = iter(distances) if distances is not None else None
    for text, metadata, parsed in zip(texts, metadatas, _doc_metadata(metadatas), strict=True):
        if scores is not None and (parsed is None or type(parsed) is dict):  # else refused below
            parsed = {**(parsed or {}), 'score': float(next(scores))}
        data_type = metadata.get('dataType') if metadata else None
        documents.append(doc_from_data(text or '', data_type if isinstance(data_type, str) else None, parsed))
    return documents


def chroma_retriever_ref(collection_name: str, *, display_name: str | None = None) -> rag.RetrieverRef:
    """A ref to ``chroma/<collection>`` (JS ``chromaRetrieverRef``)."""
    return rag.retriever_ref(
        f'chroma/{collection_name}',
        config_schema=ChromaRetrieverOptions,
        info={'label': display_name or f'Chroma DB - {collection_name}'},
    )


def chroma_indexer_ref(collection_name: str, *, display_name: str | None = None) -> rag.IndexerRef:
    """A ref to ``chroma/<collection>`` (JS ``chromaIndexerRef``)."""
    return rag.indexer_ref(
        f'chroma/{collection_name}', info={'label': display_name or f'Chroma DB - {collection_name}'}
    )


def define_chroma_vector_store(
    ai: Any,
    *,
    collection_name: str,
    embedder: Any,
    client: Any = None,
    client_params: Mapping[str, Any] | None = None,
    create_collection_if_missing: bool = False,
    collection_metadata: Mapping[str, Any] | None = None,
    embedder_options: Mapping[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Register the retriever and indexer ``chroma/<collection>`` (JS ``chroma([...])``).

    ``client`` is a chromadb client (``PersistentClient``, ``HttpClient``, ...); otherwise
    ``client_params`` are passed to ``chromadb.HttpClient`` (telemetry off). With
    ``create_collection_if_missing`` the collection is created on first use (with
    ``collection_metadata``, e.g. ``{'hnsw:space': 'cosine'}``). Returns
    ``(retriever, indexer)``.
    """
    if not isinstance(collection_name, str) or not collection_name:
        raise TypeError('collection_name must be a non-empty str')
    if client is not None and client_params is not None:
        raise TypeError('pass client or client_params, not both')
    name = f'chroma/{collection_name}'
    state: dict[str, Any] = {}

    def fetch_collection() -> Any:
        if 'client' not in state:
            state['client'] = _client(client, client_params)
        chroma = state['client']
        if create_collection_if_missing:
            return chroma.get_or_create_collection(
                collection_name, metadata=dict(collection_metadata) if collection_metadata else None
            )
        return chroma.get_collection(collection_name)

    def on_collection(work: Callable[[Any], T]) -> T:
        """Run ``work`` on the collection, looked up once and kept (JS looks it up on every call).

        If the kept collection is gone (deleted, or deleted and created again under the same
        name), it is looked up again and ``work`` (a query or an upsert) runs once more.
        """
        kept = state.get('collection')
        if kept is None:
            kept = state['collection'] = fetch_collection()
            return work(kept)
        try:
            return work(kept)
        except Exception as error:
            if not _collection_gone(error):
                raise
            state.pop('collection', None)
            fresh = state['collection'] = fetch_collection()
            return work(fresh)

    async def retrieve(query: Document, options: Any) -> list[Document]:
        k = top_k(options, DEFAULT_K, name, maximum=10000)
        embedding = checked_vector(
            (await embed_documents(ai, embedder, [query], embedder_options, name))[0], name
        )
        include = list(option(options, 'include', []) or [])
        with_score = bool(option(options, 'with_score', False)) or 'distances' in include
        wanted = sorted({*include, 'documents', 'metadatas', *(['distances'] if with_score else [])})
        where = option(options, 'where')
        where_document = option(options, 'where_document') or option(options, 'whereDocument')

        def run() -> Any:
            return on_collection(
                lambda collection: collection.query(
                    query_embeddings=[embedding],
                    n_results=k,
                    where=where,
                    where_document=where_document,
                    include=wanted,
                )
            )

        result = await _in_thread(name, run, read=True)
        texts = (result.get('documents') or [[]])[0]
        metadatas = (result.get('metadatas') or [[]])[0] or [None] * len(texts)
        # JS bug fixed: metadata of result i is metadatas[0][i] (JS read metadatas[i][0]).
        distances = (result.get('distances') or [[]])[0] if with_score else None
        return _documents(texts, metadatas, distances)

    async def index(documents: list[Document], options: Any) -> None:
        # In batches: Chroma caps one write (``max_batch_size``), and a failure keeps every
        # batch written before it.
        for start in range(0, len(documents), BATCH_SIZE):
            batch = documents[start : start + BATCH_SIZE]
            vectors = await embed_documents(ai, embedder, batch, embedder_options, name)
            # A document given twice is stored once, as the other stores do (Chroma refuses a
            # write naming one id twice, failing the whole batch).
            first: dict[str, int] = {}
            for position, document in enumerate(batch):
                first.setdefault(doc_id(document), position)
            ids = list(first)
            kept = [batch[position] for position in first.values()]
            embeddings = _matrix(
                [vectors[position] for position in first.values()],
                name,
                [start + position for position in first.values()],
            )
            texts = [document.data for document in kept]
            metadatas = [_chroma_metadata(document) for document in kept]

            def run(
                ids: Any = ids, embeddings: Any = embeddings, texts: Any = texts, metadatas: Any = metadatas
            ) -> None:
                # upsert, not add: Chroma silently ignores an `add` of an existing id.
                on_collection(
                    lambda collection: collection.upsert(
                        ids=ids, embeddings=embeddings, documents=texts, metadatas=metadatas
                    )
                )

            await _in_thread(name, run)

    retriever = rag.define_retriever(ai.registry, name, retrieve, config_schema=ChromaRetrieverOptions)
    indexer = rag.define_indexer(ai.registry, name, index)
    return retriever, indexer


async def create_chroma_collection(
    *,
    name: str,
    client: Any = None,
    client_params: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Create a Chroma collection (JS ``createChromaCollection``); returns it."""
    made = dict(metadata) if metadata else None
    return await _in_thread(
        f'chroma/{name}', lambda: _client(client, client_params).create_collection(name, metadata=made)
    )


async def delete_chroma_collection(
    *, name: str, client: Any = None, client_params: Mapping[str, Any] | None = None
) -> None:
    """Delete a Chroma collection (JS ``deleteChromaCollection``)."""
    await _in_thread(f'chroma/{name}', lambda: _client(client, client_params).delete_collection(name))
