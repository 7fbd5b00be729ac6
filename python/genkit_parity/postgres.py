"""PostgreSQL + pgvector as a vector store (JS ``genkitx-cloud-sql-pg``), on a Rust core.

::

    from genkit_parity.postgres import PostgresEngine, define_postgres_vector_store

    engine = PostgresEngine.from_url('postgresql://postgres@127.0.0.1:5432/app')
    await engine.init_vectorstore_table('docs', 384)
    store = define_postgres_vector_store(ai, table='docs', embedder='my/embedder', engine=engine)
    await ai.index(indexer='postgres/docs', documents=docs)
    hits = await ai.retrieve(retriever='postgres/docs', query='pie',
                             options={'k': 3, 'filter': {'year': {'$gte': 2020}}})

Registers the retriever and indexer ``postgres/<table>`` with JS's names, options and table
layout, and fixes what the JS plugin gets wrong: ``k`` is optional (default 4), content
comes back as Genkit parts, the id column defaults to ``id``, every part agrees on
``json_metadata``, re-indexing a document replaces it (upsert by id), query options are
applied inside the query's transaction (and ``ivfflat.probes`` is spelled right), and a
filter is a parameterised metadata filter — a raw SQL condition only through the explicit
``unsafe_sql_filter`` option.

Each indexing batch is one transaction: a binary ``COPY`` when every row is new (and the
layout has no metadata columns and a ``uuid`` or ``text`` id), otherwise one upsert
statement, embeddings sent as binary ``vector``s either way. Every query runs on the core's
worker pool with the GIL released. Connections come from the process's shared pool for the
DSN, which rides out a server restart.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genkit import Document, GenkitError
from pydantic import BaseModel, ConfigDict, Field

from . import _native, _runtime, rag
from ._checks import MAX_POOL_SIZE, int_in
from ._vectordocs import doc_id, embed_documents, option, top_k
from .errors import VectorStoreError

__all__ = [
    'Column',
    'DistanceStrategy',
    'ExactNearestNeighbor',
    'HNSWIndex',
    'HNSWQueryOptions',
    'IVFFlatIndex',
    'IVFFlatQueryOptions',
    'PostgresEngine',
    'PostgresIndexerOptions',
    'PostgresRetrieverOptions',
    'PostgresVectorStore',
    'define_postgres_vector_store',
    'postgres_indexer_ref',
    'postgres_retriever_ref',
]

DEFAULT_K = 4
DEFAULT_BATCH_SIZE = 100
MAX_DIMENSIONS = 16000  # pgvector's widest vector column


class DistanceStrategy(str, enum.Enum):
    """How rows are ranked (JS ``DistanceStrategy``): cosine distance is the default."""

    COSINE_DISTANCE = 'cosine'
    EUCLIDEAN = 'euclidean'
    INNER_PRODUCT = 'inner_product'


@dataclass(frozen=True)
class Column:
    """A metadata column of the table (JS ``Column``): ``Column('year', 'INTEGER')``."""

    name: str
    data_type: str
    nullable: bool = True


def _positive(value: object, what: str) -> None:
    # pgvector checks the ranges itself; this keeps other values from reaching it as u32s.
    int_in(value, what, 1, 2**31 - 1)


@dataclass(frozen=True)
class HNSWIndex:
    """An HNSW index (JS ``HNSWIndex``); ``name`` defaults to ``<table>genkitvectorindex``."""

    m: int = 16
    ef_construction: int = 64
    name: str | None = None

    def __post_init__(self) -> None:
        _positive(self.m, 'HNSWIndex.m')
        _positive(self.ef_construction, 'HNSWIndex.ef_construction')


@dataclass(frozen=True)
class IVFFlatIndex:
    """An IVFFlat index (JS ``IVFFlatIndex``); build it after the table has data."""

    lists: int = 100
    name: str | None = None

    def __post_init__(self) -> None:
        _positive(self.lists, 'IVFFlatIndex.lists')


@dataclass(frozen=True)
class ExactNearestNeighbor:
    """No index: applying it drops the vector index, so queries scan exactly."""

    name: str | None = None


@dataclass(frozen=True)
class HNSWQueryOptions:
    """``hnsw.ef_search`` for every query of a store (per call: option ``ef_search``)."""

    ef_search: int = 40


@dataclass(frozen=True)
class IVFFlatQueryOptions:
    """``ivfflat.probes`` for every query of a store (per call: option ``probes``)."""

    probes: int = 1


class PostgresRetrieverOptions(rag.CommonRetrieverOptions):
    """Options of a ``postgres/<table>`` retriever."""

    model_config = ConfigDict(extra='forbid')

    k: int | None = Field(default=None, description='Number of documents to retrieve', ge=1, le=1000)
    filter: dict[str, Any] | str | None = Field(
        default=None,
        description='Metadata filter: {"field": value}, $in/$nin, $gt/$gte/$lt/$lte, $ne, $and/$or',
    )
    unsafe_sql_filter: str | None = Field(
        default=None, description='A raw SQL condition pasted into WHERE (trusted input only)'
    )
    ef_search: int | None = Field(default=None, ge=1, description='hnsw.ef_search for this query')
    probes: int | None = Field(default=None, ge=1, description='ivfflat.probes for this query')
    with_score: bool | None = Field(default=None, description="Return each row's distance as metadata.score")


class PostgresIndexerOptions(BaseModel):
    """Options of a ``postgres/<table>`` indexer."""

    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=10000)


def _ident(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f'{what} must be a non-empty str, not {value!r}')
    return value


class PostgresEngine:
    """A PostgreSQL server, through the process's shared connection pool for its DSN."""

    def __init__(self, native: _native.PgVectorEngine) -> None:
        self._native = native

    @classmethod
    def from_url(
        cls, dsn: str, *, pool_size: int = 8, connect_timeout: float = 2.0, retry_seconds: float = 5.0
    ) -> PostgresEngine:
        """An engine for ``dsn`` (``postgresql://user@host:port/db`` or ``key=value`` form; no TLS).

        ``pool_size`` caps this process's connections; ``retry_seconds`` is how long calls
        ride out a restarting or unreachable server before failing ``UNAVAILABLE``.
        Nothing connects until the first call.
        """
        if not isinstance(dsn, str) or not dsn:
            raise TypeError('dsn must be a non-empty str')
        int_in(pool_size, 'pool_size', 1, MAX_POOL_SIZE)
        native = _native.PgVectorEngine(
            dsn, pool_size=pool_size, connect_timeout=connect_timeout, retry_seconds=retry_seconds
        )
        return cls(native)

    @property
    def target(self) -> str:
        """``host:port`` of the server."""
        target: str = self._native.target
        return target

    async def init_vectorstore_table(
        self,
        table: str,
        vector_size: int,
        *,
        schema: str = 'public',
        content_column: str = 'content',
        embedding_column: str = 'embedding',
        id_column: str | Column = 'id',
        metadata_columns: Sequence[Column] = (),
        metadata_json_column: str = 'json_metadata',
        overwrite_existing: bool = False,
        store_metadata: bool = True,
    ) -> None:
        """Create the table of a vector store (JS ``initVectorstoreTable``), and the extension.

        ``id`` is ``UUID PRIMARY KEY DEFAULT gen_random_uuid()`` unless ``id_column`` is a
        :class:`Column` of another type; ``json_metadata JSON`` holds each document's whole
        metadata unless ``store_metadata=False``. An existing table is an error
        (``ALREADY_EXISTS``) unless ``overwrite_existing=True`` drops it first.
        """
        int_in(vector_size, 'vector_size (pgvector)', 1, MAX_DIMENSIONS)
        if isinstance(id_column, Column):
            id_name, id_type = id_column.name, id_column.data_type
        else:
            id_name, id_type = _ident(id_column, 'id_column'), 'UUID'
        columns = []
        for column in metadata_columns:
            if not isinstance(column, Column):
                raise TypeError(f'metadata_columns must hold Column objects, not {type(column).__name__}')
            columns.append((column.name, column.data_type, column.nullable))
        await _runtime.call(
            lambda ticket: self._native.init_table(
                ticket,
                name=f'postgres/{table}',
                schema=_ident(schema, 'schema'),
                table=_ident(table, 'table'),
                vector_size=vector_size,
                id_column=id_name,
                id_type=id_type,
                content_column=_ident(content_column, 'content_column'),
                embedding_column=_ident(embedding_column, 'embedding_column'),
                metadata_json_column=_ident(metadata_json_column, 'metadata_json_column')
                if store_metadata
                else None,
                metadata_columns=columns,
                overwrite_existing=bool(overwrite_existing),
            )
        )


def postgres_retriever_ref(table: str, *, display_name: str | None = None) -> rag.RetrieverRef:
    """A ref to the ``postgres/<table>`` retriever (JS ``postgresRetrieverRef``)."""
    return rag.retriever_ref(
        f'postgres/{table}', config_schema=PostgresRetrieverOptions, info={'label': display_name or table}
    )


def postgres_indexer_ref(table: str, *, display_name: str | None = None) -> rag.IndexerRef:
    """A ref to the ``postgres/<table>`` indexer (JS ``postgresIndexerRef``)."""
    return rag.indexer_ref(
        f'postgres/{table}', config_schema=PostgresIndexerOptions, info={'label': display_name or table}
    )


def _as_list(vector: Any) -> list[float]:
    tolist = getattr(vector, 'tolist', None)  # numpy arrays
    return list(tolist()) if callable(tolist) else [float(value) for value in vector]


def _uuid_of(document: Document) -> str:
    """JS's md5 document id, spelled as a UUID (so the default UUID id column takes it)."""
    return str(uuid.UUID(hex=doc_id(document)))


def _text(document: Document, store: str) -> str:
    """The document's text parts joined with a space, as JS stores them (the content column is text)."""
    parts = document.content
    if len(parts) == 1:  # the usual case, without the generator
        text = getattr(parts[0], 'text', None)
        if text is not None:
            return str(text)
    texts = [getattr(part, 'text', None) for part in parts]
    if None in texts:
        # JS drops such parts silently: the row would come back without them.
        kinds = sorted({_part_kind(part) for part, text in zip(parts, texts, strict=True) if text is None})
        raise GenkitError(
            status='INVALID_ARGUMENT',
            message=f'{store}: a document has parts other than text ({", ".join(kinds)}), which a '
            'PostgreSQL store cannot keep (its content column holds text); use a store that keeps '
            'whole documents, such as the local store',
        )
    return ' '.join(str(text) for text in texts if text)


def _part_kind(part: Any) -> str:
    fields = getattr(part, 'model_fields_set', None) or ()
    return next((name for name in sorted(fields) if getattr(part, name, None) is not None), 'empty')


def _holds_nul(value: Any) -> bool:
    """Whether a JSON value has a NUL character in a string or key (PostgreSQL's jsonb refuses it)."""
    if isinstance(value, str):
        return '\x00' in value
    if isinstance(value, Mapping):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_nul(item) for item in value)
    return False


# One encoder for every row: json.dumps with non-default arguments builds a new one per call.
_encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


class PostgresVectorStore:
    """A pgvector table registered as ``postgres/<table>``: its actions and its index knobs."""

    def __init__(
        self,
        ai: Any,
        *,
        table: _native.PgVectorTable,
        table_name: str,
        embedder: Any,
        embedder_options: Mapping[str, Any] | None,
        layout: dict[str, Any],
        query_settings: list[tuple[str, str]],
    ) -> None:
        self._ai = ai
        self._table = table
        self.name = f'postgres/{table_name}'
        self.table_name = table_name
        self._embedder = embedder
        self._embedder_options = embedder_options
        self._layout = layout
        self._query_settings = query_settings
        self.retriever: Any = None
        self.indexer: Any = None

    # -- indexing ----------------------------------------------------------------------

    def _row(self, document: Document) -> tuple[str, str, str | None, str | None]:
        """(id, content, JSON metadata, metadata columns as a JSON object) of one document."""
        layout = self._layout
        metadata = document.metadata or {}
        given = metadata.get(layout['id_column'])
        row_id = str(given) if given else _uuid_of(document)
        try:
            stored = _encode_json(metadata) if layout['metadata_json_column'] else None
            columns = layout['metadata_columns']
            values = _encode_json({c: metadata.get(c) for c in columns}) if columns else None
        except (TypeError, ValueError) as error:
            raise GenkitError(
                status='INVALID_ARGUMENT', message=f'{self.name}: document metadata is not JSON: {error}'
            ) from None
        if stored is not None and '\\u0000' in stored and _holds_nul(metadata):
            # Stored, it would break every filter on the JSON metadata of the whole table.
            raise GenkitError(
                status='INVALID_ARGUMENT',
                message=f'{self.name}: document metadata holds a NUL character, which PostgreSQL JSON '
                'cannot hold',
            )
        return row_id, _text(document, self.name), stored, values

    async def index(self, documents: Sequence[Document], options: Any = None) -> None:
        """Embed and upsert ``documents`` in batches; each batch is all-or-nothing.

        Every document is checked before the first is embedded (a bad one writes nothing).
        """
        batch_size = option(options, 'batch_size', DEFAULT_BATCH_SIZE)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise GenkitError(
                status='INVALID_ARGUMENT',
                message=f'{self.name}: batch_size must be a positive int, not {batch_size!r}',
            )
        rows = [self._row(document) for document in documents]
        for start in range(0, len(documents), batch_size):
            batch = list(documents[start : start + batch_size])
            embeddings = await embed_documents(
                self._ai, self._embedder, batch, self._embedder_options, self.name
            )
            await self._upsert_rows(rows[start : start + batch_size], embeddings)

    async def upsert_embedded(
        self, documents: Sequence[Document], embeddings: Sequence[Sequence[float]]
    ) -> None:
        """Upsert documents whose embeddings are already computed, in one batch."""
        await self._upsert_rows([self._row(document) for document in documents], embeddings)

    async def _upsert_rows(
        self, rows: list[tuple[str, str, str | None, str | None]], embeddings: Sequence[Sequence[float]]
    ) -> None:
        # Lists pass as they are (the core reads their floats directly); arrays become lists once.
        vectors = [vector if isinstance(vector, list) else _as_list(vector) for vector in embeddings]
        await _runtime.call(
            lambda ticket: self._table.upsert(
                ticket,
                ids=[row[0] for row in rows],
                contents=[row[1] for row in rows],
                embeddings=vectors,
                metadata_json=[row[2] for row in rows],
                columns_json=[row[3] for row in rows],
            )
        )

    # -- retrieval ----------------------------------------------------------------------

    async def retrieve(self, query: Document, options: Any = None) -> list[Document]:
        """The nearest rows to ``query`` as documents (``k`` default 4)."""
        embeddings = await self._ai.embed(
            embedder=self._embedder, content=query, options=dict(self._embedder_options or {}) or None
        )
        return await self.search(list(embeddings[0].embedding), options)

    async def search(self, embedding: Sequence[float], options: Any = None) -> list[Document]:
        """The nearest rows to a precomputed ``embedding`` (same options as the retriever)."""
        k = top_k(options, DEFAULT_K, self.name)
        raw_filter = option(options, 'filter')
        if isinstance(raw_filter, str):
            raise GenkitError(
                status='INVALID_ARGUMENT',
                message=(
                    f'{self.name}: filter must be a metadata filter object such as '
                    '{"year": {"$gte": 2020}}; '
                    'a raw SQL condition is only taken as the explicit option unsafe_sql_filter'
                ),
            )
        try:
            filter_json = None if raw_filter is None else _encode_json(raw_filter)
        except (TypeError, ValueError) as error:
            raise GenkitError(
                status='INVALID_ARGUMENT', message=f'{self.name}: filter is not JSON: {error}'
            ) from None
        unsafe = option(options, 'unsafe_sql_filter')
        settings = list(self._query_settings)
        for name, setting in (('ef_search', 'hnsw.ef_search'), ('probes', 'ivfflat.probes')):
            value = option(options, name)
            if value is not None:
                settings = [pair for pair in settings if pair[0] != setting] + [(setting, str(int(value)))]
        vector = embedding if isinstance(embedding, list) else _as_list(embedding)
        rows = await _runtime.call(
            lambda ticket: self._table.query(
                ticket, vector, k, filter_json=filter_json, unsafe_sql_filter=unsafe, settings=settings
            )
        )
        with_score = bool(option(options, 'with_score', False))
        return [self._document(row, with_score) for row in rows]

    def _document(self, row: tuple[str, str, str | None, str | None, float], with_score: bool) -> Document:
        row_id, content, metadata_json, columns_json, distance = row
        metadata: dict[str, Any] = {}
        try:
            if metadata_json:
                stored = json.loads(metadata_json)
                if isinstance(stored, dict):
                    metadata.update(stored)
            if columns_json:
                metadata.update(
                    {key: value for key, value in json.loads(columns_json).items() if value is not None}
                )
        except ValueError as error:  # a TEXT metadata column written by something else
            raise VectorStoreError(
                f'{self.name}: the metadata of row {row_id} is not JSON: {error}', self.name, 'DATA_LOSS'
            ) from None
        if with_score:
            metadata['score'] = distance
        return Document.from_text(content, metadata or None)

    # -- indexes ------------------------------------------------------------------------

    def _index_name(self, name: str | None) -> str:
        return name or f'{self.table_name}genkitvectorindex'

    async def apply_vector_index(
        self, index: HNSWIndex | IVFFlatIndex | ExactNearestNeighbor, *, concurrently: bool = False
    ) -> None:
        """Build the table's vector index (JS ``applyVectorIndex``), replacing one of the same name.

        ``ExactNearestNeighbor()`` drops it instead (exact scans).
        """
        if not isinstance(index, (HNSWIndex, IVFFlatIndex, ExactNearestNeighbor)):
            raise TypeError(f'index must be HNSWIndex, IVFFlatIndex or ExactNearestNeighbor, not {index!r}')
        name = self._index_name(index.name)
        if isinstance(index, ExactNearestNeighbor):
            await self.drop_vector_index(name)
            return
        if isinstance(index, HNSWIndex):
            start = lambda ticket: self._table.apply_index(  # noqa: E731
                ticket,
                index_name=name,
                kind='hnsw',
                m=index.m,
                ef_construction=index.ef_construction,
                concurrently=concurrently,
            )
        else:
            start = lambda ticket: self._table.apply_index(  # noqa: E731
                ticket, index_name=name, kind='ivfflat', lists=index.lists, concurrently=concurrently
            )
        await _runtime.call(start)

    async def drop_vector_index(self, name: str | None = None) -> None:
        """Drop the vector index (JS ``dropVectorIndex``)."""
        index_name = self._index_name(name)
        await _runtime.call(lambda ticket: self._table.drop_index(ticket, index_name))

    async def count(self) -> int:
        """How many rows the table holds."""
        counted: int = await _runtime.call(self._table.count)
        return counted


def define_postgres_vector_store(
    ai: Any,
    *,
    table: str,
    embedder: Any,
    engine: PostgresEngine,
    embedder_options: Mapping[str, Any] | None = None,
    schema: str = 'public',
    content_column: str = 'content',
    embedding_column: str = 'embedding',
    id_column: str = 'id',
    metadata_columns: Sequence[str | Column] = (),
    metadata_json_column: str | None = 'json_metadata',
    distance_strategy: DistanceStrategy | str = DistanceStrategy.COSINE_DISTANCE,
    index_query_options: HNSWQueryOptions | IVFFlatQueryOptions | None = None,
) -> PostgresVectorStore:
    """Register the retriever and indexer ``postgres/<table>`` over a pgvector table (JS ``postgres``).

    The table is checked on first use: a missing table is ``VectorStoreError`` NOT_FOUND, a
    missing column FAILED_PRECONDITION, an embedding of the wrong size INVALID_ARGUMENT.
    Returns the store (``apply_vector_index``, ``count`` ...).
    """
    if not isinstance(engine, PostgresEngine):
        raise TypeError(f'engine must be a PostgresEngine, not {type(engine).__name__}')
    columns = [
        column.name if isinstance(column, Column) else _ident(column, 'metadata_columns')
        for column in metadata_columns
    ]
    strategy = DistanceStrategy(distance_strategy).value
    id_name = _ident(id_column, 'id_column')
    content_name = _ident(content_column, 'content_column')
    layout: dict[str, Any] = {
        'id_column': id_name,
        'content_column': content_name,
        'metadata_json_column': metadata_json_column,
        'metadata_columns': columns,
    }
    native = _native.PgVectorTable(
        engine._native,
        name=f'postgres/{table}',
        schema=_ident(schema, 'schema'),
        table=_ident(table, 'table'),
        id_column=id_name,
        content_column=content_name,
        embedding_column=_ident(embedding_column, 'embedding_column'),
        metadata_json_column=metadata_json_column,
        metadata_columns=columns,
        distance=strategy,
    )
    settings: list[tuple[str, str]] = []
    if isinstance(index_query_options, HNSWQueryOptions):
        settings.append(('hnsw.ef_search', str(int(index_query_options.ef_search))))
    elif isinstance(index_query_options, IVFFlatQueryOptions):
        settings.append(('ivfflat.probes', str(int(index_query_options.probes))))
    elif index_query_options is not None:
        raise TypeError('index_query_options must be HNSWQueryOptions or IVFFlatQueryOptions')
    store = PostgresVectorStore(
        ai,
        table=native,
        table_name=table,
        embedder=embedder,
        embedder_options=embedder_options,
        layout=layout,
        query_settings=settings,
    )
    store.retriever = rag.define_retriever(
        ai.registry, store.name, store.retrieve, config_schema=PostgresRetrieverOptions
    )
    store.indexer = rag.define_indexer(
        ai.registry, store.name, store.index, config_schema=PostgresIndexerOptions
    )
    return store
