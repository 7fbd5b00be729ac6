"""The local vector store: JS's ``devLocalVectorstore`` for Python Genkit, on a Rust core.

``define_dev_local_vector_store(ai, name='facts', embedder='...')`` registers a retriever
and an indexer named ``devLocalVectorstore/facts`` with JS's metadata. Semantics are JS's
(rag.md §2.1): a document's id is the md5 of its ``JSON.stringify`` text, the first write
of a document wins (re-indexing it adds nothing), every embedding of a multi-embedding
document is a row whose document carries ``metadata.embedMetadata``, results are ranked
by cosine similarity with ties in indexing order, and ``k`` defaults to 3.

What differs from JS, on purpose:

- Storage is an append-only, checksummed log under ``directory`` (default
  ``.genkit-parity/vectors``), fsynced before ``index`` returns and read once per process
  (JS rewrites a whole JSON file on every index call and re-reads it on every retrieve).
  Several processes may index and retrieve on one directory at once.
- ``index`` embeds all its documents with one ``embed_many`` call (JS makes one ``embed``
  call per document). When the embedder returns more embeddings than documents, it falls
  back to JS's one call per document, so every embedding still becomes a row.
- Retriever options: ``k`` (also 0.5.1's ``limit``), ``include_score`` (each document gets
  ``metadata.score``, its cosine), ``where`` (metadata equality: every key must match) and
  ``approximate`` (for large stores: one-bit codes of the rows are scanned and the nearest
  candidates scored exactly; the scores returned are exact cosines).
- A zero, NaN or mismatched-dimension embedding or query raises ``InvalidVectorError``
  (JS returns NaN scores or throws a bare error); a damaged file raises
  ``CorruptVectorStoreError`` naming the file, never silently rebuilt.

``import_js_index`` / ``export_js_index`` move an index from and to a JS
``__db_<name>.json`` file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from genkit import Document, GenkitError
from pydantic_core import PydanticSerializationError

from . import _runtime
from ._json import compact_json
from ._native import LocalVectorIndex
from .rag import (
    IndexerRef,
    RetrieverRef,
    document_json,
    document_list,
    documents_json_array,
    indexer_ref,
    request_documents_json,
    retriever_ref,
)

__all__ = [
    'DEFAULT_DIRECTORY',
    'DevLocalVectorStore',
    'LocalVectorIndex',
    'define_dev_local_vector_store',
    'dev_local_indexer_ref',
    'dev_local_retriever_ref',
    'export_js_index',
    'import_js_index',
]

#: Where indexes live unless ``directory`` is given (relative to the working directory).
DEFAULT_DIRECTORY = Path('.genkit-parity') / 'vectors'

#: JS's registered retriever options schema (``CommonRetrieverOptionsSchema``), verbatim.
RETRIEVER_OPTIONS_SCHEMA: dict[str, Any] = {
    'type': 'object',
    'properties': {'k': {'type': 'number', 'description': 'Number of documents to retrieve'}},
    'additionalProperties': True,
    '$schema': 'http://json-schema.org/draft-07/schema#',
}

_DEFAULT_K = 3
#: Stores with fewer stored floats than this are searched on the event loop's thread (a
#: scan takes microseconds); larger ones on the core's worker pool.
_INLINE_FLOATS = 1 << 18


def _documents_json(documents: list[Document]) -> str | None:
    """``documents`` as one JSON array (see :func:`documents_json_array`).

    ``None`` when a value in them needs genkit's per-document fallback encoding.
    """
    try:
        return documents_json_array(documents)
    except PydanticSerializationError:
        return None


def _action_name(name: str) -> str:
    return f'devLocalVectorstore/{name}'


def dev_local_retriever_ref(name: str) -> RetrieverRef:
    """JS ``devLocalRetrieverRef(name)``: the retriever ``devLocalVectorstore/<name>``."""
    return retriever_ref(
        _action_name(name),
        config_schema=RETRIEVER_OPTIONS_SCHEMA,
        info={'label': f'Local file-based Retriever - {name}'},
    )


def dev_local_indexer_ref(name: str) -> IndexerRef:
    """JS ``devLocalIndexerRef(name)``: the indexer ``devLocalVectorstore/<name>``."""
    return indexer_ref(_action_name(name), info={'label': f'Local file-based Indexer - {name}'})


def _invalid(message: str) -> GenkitError:
    return GenkitError(status='INVALID_ARGUMENT', message=message)


def _options(options: Any) -> Mapping[str, Any]:
    if options is None:
        return {}
    if hasattr(options, 'model_dump'):
        options = options.model_dump(by_alias=True, exclude_none=True)
    if not isinstance(options, Mapping):
        raise _invalid(f'retriever options must be an object, not {type(options).__name__}')
    return options


_LARGEST_K = 2**48


def _k(options: Mapping[str, Any]) -> int:
    k = options.get('k')
    if k is None:
        k = options.get('limit')
    if k is None:
        return _DEFAULT_K
    if (
        isinstance(k, bool)
        or not isinstance(k, (int, float))
        or (isinstance(k, float) and not k.is_integer())
        or k < 0
    ):
        raise _invalid(f'options.k must be a non-negative integer, not {k!r}')
    # Past any index's size, a larger k changes nothing (the core's u64 cannot take 1e30).
    return min(int(k), _LARGEST_K)


def _where_json(options: Mapping[str, Any]) -> str | None:
    where = options.get('where')
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise _invalid(
            f'options.where must be an object of metadata key -> value, not {type(where).__name__}'
        )
    try:
        return json.dumps(where, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:  # NaN matches nothing; an object has no JSON form
        raise _invalid(f'options.where must hold JSON values only: {error}') from None


class DevLocalVectorStore:
    """One local index wired to an embedder: what the retriever and indexer call.

    Usable directly too (``await store.index(docs)``, ``await store.retrieve('query')``);
    ``store.core`` is the :class:`LocalVectorIndex`.
    """

    def __init__(
        self,
        ai: Any,
        *,
        name: str,
        embedder: Any,
        embedder_options: Mapping[str, Any] | None = None,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        self.ai = ai
        self.name = name
        self.embedder = embedder
        self.embedder_options: dict[str, Any] | None = dict(embedder_options) if embedder_options else None
        self.directory = Path(directory) if directory is not None else DEFAULT_DIRECTORY
        self.core = LocalVectorIndex(self.directory, name)

    async def _embed_documents(self, documents: list[Document]) -> tuple[list[Document], list[Any]]:
        """The rows' documents and embeddings, from one batch call or JS's per-document calls.

        After one batch call, row ``i`` is document ``i`` and the list returned is
        ``documents`` itself.
        """
        # genkit rebuilds the documents it is handed either way; dicts would cost a dump
        # here first.
        content: Any = documents
        embeddings = await self.ai.embed_many(
            embedder=self.embedder, content=content, options=self.embedder_options
        )
        if len(embeddings) == len(documents):
            return documents, list(embeddings)
        # An embedder that returns several embeddings per document: ask per document, so
        # each embedding is attributed to its own document (as JS does).
        row_documents: list[Document] = []
        row_embeddings: list[Any] = []
        for document in documents:
            for embedding in await self.ai.embed(
                embedder=self.embedder, content=document, options=self.embedder_options
            ):
                row_documents.append(document)
                row_embeddings.append(embedding)
        return row_documents, row_embeddings

    async def index(self, documents: Sequence[Document]) -> int:
        """Embed and store ``documents``; returns how many were new."""
        return await self._index(document_list(documents, TypeError), None)

    async def _index(self, documents: list[Document], documents_json: str | None) -> int:
        """:meth:`index`; ``documents_json`` is their JSON array when the caller has it."""
        if not documents:
            return 0
        row_documents, embeddings = await self._embed_documents(documents)
        vectors = [embedding.embedding for embedding in embeddings]
        metas = [getattr(embedding, 'metadata', None) for embedding in embeddings]
        if row_documents is documents and metas.count(None) == len(metas):
            # Row i is document i: the documents cross as one JSON array (any JSON text of
            # them will do: the core re-encodes each as JS does before hashing).
            if documents_json is None:
                documents_json = _documents_json(documents)
            if documents_json is not None:
                array = documents_json
                adding = _runtime.begin(lambda ticket: self.core.start_add_array(ticket, array, vectors))
                # The core has copied the vectors: free the embedder's millions of floats
                # while it writes and fsyncs, rather than after.
                del embeddings, vectors, metas, row_documents
                added: int = await adding
                return added
        docs: list[str] = []
        for document, meta in zip(row_documents, metas, strict=True):
            if meta is None:
                docs.append(document.model_dump_json(by_alias=True, exclude_none=True))
            else:
                # JS getEmbeddingDocuments: the row's copy carries metadata.embedMetadata.
                data = document_json(document)
                data['metadata'] = {**(data.get('metadata') or {}), 'embedMetadata': meta}
                docs.append(compact_json(data))
        meta_json = [json.dumps(meta, ensure_ascii=False) if meta is not None else None for meta in metas]
        added = await _runtime.call(lambda ticket: self.core.start_add(ticket, docs, vectors, meta_json))
        return added

    async def retrieve(self, query: Document | str, options: Any = None) -> list[Document]:
        """The nearest documents to ``query`` (see the module doc for the options)."""
        if isinstance(query, str):
            query = Document.from_text(query)
        opts = _options(options)
        k = _k(opts)
        where = _where_json(opts)
        approximate = bool(opts.get('approximate', False))
        include_score = bool(opts.get('include_score', opts.get('includeScore', False)))
        embeddings = await self.ai.embed(embedder=self.embedder, content=query, options=self.embedder_options)
        if not embeddings:
            raise _invalid(f'embedder {self.embedder!r} returned no embedding for the query')
        vector = list(embeddings[0].embedding)
        dims = self.core.dimensions() or 0
        if len(self.core) * dims < _INLINE_FLOATS:
            hits = self.core.search(vector, k, where_json=where, approximate=approximate)
        else:
            hits = await _runtime.call(
                lambda ticket: self.core.start_search(
                    ticket, vector, k, where_json=where, approximate=approximate
                )
            )
        results: list[Document] = []
        for doc_json, score in hits:
            data = json.loads(doc_json)
            if include_score:
                data['metadata'] = {**(data.get('metadata') or {}), 'score': score}
            results.append(Document.model_validate(data))
        return results


def define_dev_local_vector_store(
    ai: Any,
    *,
    name: str,
    embedder: Any,
    embedder_options: Mapping[str, Any] | None = None,
    directory: str | os.PathLike[str] | None = None,
) -> tuple[Any, Any]:
    """Register the retriever and indexer ``devLocalVectorstore/<name>`` (JS names, metadata).

    ``ai`` is a ``genkit_parity.Genkit`` (or an ``extend``-ed one); ``embedder`` a name or
    ref passed to ``ai.embed``; ``embedder_options`` its options for every call. The index
    lives in ``directory`` (default ``.genkit-parity/vectors``). Returns
    ``(retriever_action, indexer_action)``; refer to them by name, with
    :func:`dev_local_retriever_ref` / :func:`dev_local_indexer_ref`, or pass the actions.

    Example:
        >>> # retriever, indexer = define_dev_local_vector_store(ai, name='facts', embedder='toyEmbedder')
        >>> # await ai.index(indexer=dev_local_indexer_ref('facts'), documents=[Document.from_text('aaa')])
        >>> # docs = await ai.retrieve(retriever=dev_local_retriever_ref('facts'), query='a')

    """
    if not isinstance(name, str) or not name:
        raise TypeError(f'name must be a non-empty str, not {name!r}')
    store = DevLocalVectorStore(
        ai, name=name, embedder=embedder, embedder_options=embedder_options, directory=directory
    )

    async def retrieve(query: Document, options: Any) -> list[Document]:
        return await store.retrieve(query, options)

    async def index(documents: list[Document], options: Any) -> None:
        # The request's documents were serialised for its trace: the store reuses that JSON.
        await store._index(documents, request_documents_json(documents))

    retriever = ai.define_retriever(_action_name(name), retrieve, config_schema=RETRIEVER_OPTIONS_SCHEMA)
    indexer = ai.define_indexer(_action_name(name), index)
    return retriever, indexer


def import_js_index(
    path: str | os.PathLike[str], *, name: str, directory: str | os.PathLike[str] | None = None
) -> int:
    """Add the entries of a JS ``__db_<name>.json`` file to the local index ``name``.

    Ids are kept, so documents already present are skipped. Returns how many were new.
    """
    core = LocalVectorIndex(Path(directory) if directory is not None else DEFAULT_DIRECTORY, name)
    added: int = core.import_js(Path(path))
    return added


def export_js_index(
    path: str | os.PathLike[str], *, name: str, directory: str | os.PathLike[str] | None = None
) -> int:
    """Write the local index ``name`` as a JS ``__db_<name>.json`` file (atomically).

    JS's ``devLocalVectorstore`` reads the result as its own. Returns the entry count;
    raises ``VectorIndexNotFoundError`` when the index does not exist.
    """
    core = LocalVectorIndex(
        Path(directory) if directory is not None else DEFAULT_DIRECTORY, name, must_exist=True
    )
    count: int = core.export_js(Path(path))
    return count
