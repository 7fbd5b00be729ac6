"""Retrievers, indexers and rerankers, as JS Genkit has them (genkit 0.12 removed them).

Define them on a ``genkit_parity.Genkit`` (or an ``extend``-ed instance) and call them::

    ai.define_retriever('my/ret', fn)              # fn(query: Document, options) -> [Document]
    docs = await ai.retrieve(retriever='my/ret', query='fruit', options={'k': 2})

Each is a genkit action of kind ``retriever`` / ``indexer`` / ``reranker`` with JS's
metadata, input and output schemas, so the Dev UI and ``/api/actions`` see what they see
for JS, and each call is traced as an action span (subtype ``retriever`` ...).

A name, a ref (:func:`retriever_ref` ...) or the action itself selects what to call; unlike
JS, a ref always resolves by its name (JS takes a ref without ``info`` for an action).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from genkit import Document, GenkitError
from genkit._core._model import as_document
from pydantic import BaseModel, Field, PrivateAttr, TypeAdapter

from . import _compat
from ._rag_schema import (
    ConfigSchema,
    check_config_schema,
    custom_options,
    documents_schema,
    options_json,
    request_schema,
    schema_error,
    validate_options,
    void_schema,
)
from ._textdoc import text_document

__all__ = [
    'CommonRerankerOptions',
    'CommonRetrieverOptions',
    'IndexerRef',
    'RankedDocument',
    'RerankerRef',
    'RetrieverRef',
    'define_indexer',
    'define_reranker',
    'define_retriever',
    'define_simple_retriever',
    'index',
    'indexer_ref',
    'rerank',
    'reranker_ref',
    'retrieve',
    'retriever_ref',
]

RETRIEVER: Any = _compat.ActionKind.RETRIEVER
INDEXER: Any = _compat.ActionKind.INDEXER
RERANKER: Any = _compat.ActionKind.RERANKER

#: A simple retriever's ``content`` option: a key of the item, or a function of it.
ContentOption = str | Callable[[Any], Any] | None
#: A simple retriever's ``metadata`` option: keys of the item, or a function of it.
MetadataOption = Sequence[str] | Callable[[Any], Any] | None


def invalid(message: str) -> GenkitError:
    """``GenkitError`` INVALID_ARGUMENT with ``message``."""
    return GenkitError(status='INVALID_ARGUMENT', message=message)


class CommonRetrieverOptions(BaseModel):
    """Options every retriever understands (JS ``CommonRetrieverOptionsSchema``); subclass to add yours."""

    k: int | None = Field(default=None, description='Number of documents to retrieve')


class CommonRerankerOptions(BaseModel):
    """Options every reranker understands (JS ``CommonRerankerOptionsSchema``)."""

    k: int | None = Field(default=None, description='Number of documents to rerank')


class RankedDocument(Document):
    """A document a reranker returned; ``metadata['score']`` is required (JS ``RankedDocument``)."""

    @property
    def score(self) -> float:
        """The reranker's score for this document."""
        metadata = self.metadata or {}
        return float(metadata['score'])


@dataclass(frozen=True)
class _Ref:
    name: str
    config_schema: ConfigSchema | None = None
    info: Mapping[str, Any] | None = None


class RetrieverRef(_Ref):
    """A reference to a retriever by name (JS ``retrieverRef``)."""


class IndexerRef(_Ref):
    """A reference to an indexer by name (JS ``indexerRef``)."""


class RerankerRef(_Ref):
    """A reference to a reranker by name (JS ``rerankerRef``)."""


def _ref(
    cls: type[_Ref], name: str, config_schema: ConfigSchema | None, info: Mapping[str, Any] | None
) -> Any:
    if not isinstance(name, str) or not name:
        raise TypeError(f'name must be a non-empty str, not {name!r}')
    check_config_schema(config_schema)
    if info is not None and not isinstance(info, Mapping):
        raise TypeError(f'info must be a mapping, not {type(info).__name__}')
    return cls(name=name, config_schema=config_schema, info=dict(info) if info is not None else None)


def retriever_ref(
    name: str, *, config_schema: ConfigSchema | None = None, info: Mapping[str, Any] | None = None
) -> RetrieverRef:
    """A reference to the retriever ``name``, usable wherever a retriever is taken."""
    made: RetrieverRef = _ref(RetrieverRef, name, config_schema, info)
    return made


def indexer_ref(
    name: str, *, config_schema: ConfigSchema | None = None, info: Mapping[str, Any] | None = None
) -> IndexerRef:
    """A reference to the indexer ``name``, usable wherever an indexer is taken."""
    made: IndexerRef = _ref(IndexerRef, name, config_schema, info)
    return made


def reranker_ref(
    name: str, *, config_schema: ConfigSchema | None = None, info: Mapping[str, Any] | None = None
) -> RerankerRef:
    """A reference to the reranker ``name``, usable wherever a reranker is taken."""
    made: RerankerRef = _ref(RerankerRef, name, config_schema, info)
    return made


# -- converting what callers and functions hand us ---------------------------------------


def to_document(value: object, what: str) -> Document:
    """A genkit ``Document`` from a Document, DocumentData, dict or (for queries) a str."""
    if isinstance(value, str):
        return text_document(value, None, as_from_text=True)  # Document.from_text minus its deep copy
    if isinstance(value, Document):
        # Passed on as it is (as JS does): a fresh copy would deep-copy every part.
        return value
    if isinstance(value, (BaseModel, Mapping)):
        try:
            return as_document(value)
        except (ValueError, TypeError) as error:
            raise invalid(f'{what} is not a document: {error}') from None
    raise GenkitError(
        status='INVALID_ARGUMENT',
        message=f'{what} must be a Document, a DocumentData dict or a str, not {type(value).__name__}',
    )


def document_list(value: object, error: Callable[[str], Exception]) -> list[Document]:
    """``value`` as a list of documents; ``error(message)`` is raised when it is not a list.

    Callers pass ``TypeError`` (a bad argument in Python) or :func:`invalid` (a bad request).
    """
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise error(f'documents must be a list of documents, not {type(value).__name__}')
    # A Document passes through as it is (see to_document): only other items are converted,
    # so a batch of 10k documents makes no per-item call or message.
    return [
        item if isinstance(item, Document) else to_document(item, f'documents[{i}]')
        for i, item in enumerate(value)
    ]


def document_json(document: Document) -> dict[str, Any]:
    """A document as JS's ``DocumentData`` JSON (``metadata`` omitted when unset)."""
    dumped: dict[str, Any] = document.model_dump(by_alias=True, exclude_none=True)
    return dumped


def _documents(result: object, what: str) -> list[Document]:
    """The documents a retriever/reranker returned: a list, or ``{'documents': [...]}``."""
    if isinstance(result, Mapping) and 'documents' in result:
        result = result['documents']
    elif isinstance(result, BaseModel) and hasattr(result, 'documents'):
        result = result.documents
    if not isinstance(result, Sequence) or isinstance(result, (str, bytes)):
        kind = type(result).__name__
        raise invalid(f'{what} must return a list of documents (or {{"documents": [...]}}), not {kind}')
    return [to_document(item, f'{what} result {position}') for position, item in enumerate(result)]


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


#: The keyword arguments genkit's tracing dumps an action's input with.
_SPAN_DUMP: dict[str, Any] = {'by_alias': True, 'exclude_none': True}
_DOCUMENTS_PREFIX = '{"documents":'
_DOCUMENT_LIST: TypeAdapter[list[Document]] = TypeAdapter(list[Document])


def documents_json_array(documents: list[Document]) -> str:
    """``documents`` as one JSON array, as genkit's tracing dumps them (one pydantic call).

    Raises pydantic's ``PydanticSerializationError`` when a value needs genkit's fallback
    encoding.
    """
    return _DOCUMENT_LIST.dump_json(documents, **_SPAN_DUMP).decode()


class _IndexRequest(BaseModel):
    """What ``index()`` hands the indexer action: the caller's documents as they are.

    Traces record it as the JSON ``{"documents": [...], "options": ...}`` (the shape a
    dict request has); the action receives the same ``Document`` objects, not copies.
    The documents' JSON is made once: the trace's dump keeps it, and a store that needs
    the documents as JSON (the local vector store) takes it from
    :func:`request_documents_json` instead of serialising them again.
    """

    documents: list[Document]
    options: Any = None
    _documents_json: str | None = PrivateAttr(default=None)

    def documents_json(self) -> str:
        """The documents as one JSON array (made on first use, then kept)."""
        if self._documents_json is None:
            self._documents_json = documents_json_array(self.documents)
        return self._documents_json

    def model_dump_json(self, **kwargs: Any) -> str:
        """Pydantic's dump; the trace's (genkit's keywords) shares the documents' JSON."""
        if kwargs != _SPAN_DUMP:
            return super().model_dump_json(**kwargs)
        documents = self.documents_json()
        if self.options is None:
            return f'{_DOCUMENTS_PREFIX}{documents}}}'
        # The options' part of the same dump, with no documents in front of it.
        rest = BaseModel.model_dump_json(
            _IndexRequest.model_construct(documents=[], options=self.options), **kwargs
        )
        return f'{_DOCUMENTS_PREFIX}{documents},{rest[len(_DOCUMENTS_PREFIX) + 3 :]}'


@dataclass(frozen=True)
class _RunningIndexRequest:
    documents: list[Document]
    request: _IndexRequest | None


#: The request of the indexer action whose function is running (see request_documents_json).
_RUNNING_INDEX: ContextVar[_RunningIndexRequest | None] = ContextVar(
    'genkit_parity_running_index', default=None
)


def request_documents_json(documents: list[Document]) -> str | None:
    """The JSON array of ``documents`` made for the running ``index()`` request, if any.

    Only when ``documents`` is the very list an indexer action handed its function, and
    the request came from :func:`index` (whose trace already serialised it): then nothing
    has run between the dump and the function, so the JSON is what the documents are.
    ``None`` otherwise (the caller serialises them itself).
    """
    running = _RUNNING_INDEX.get()
    if running is None or running.documents is not documents or running.request is None:
        return None
    return running.request.documents_json()


class _RetrieveRequest(BaseModel):
    """What ``retrieve()`` hands the retriever action: the query document as it is.

    Traces record it as the JSON ``{"query": {...}, "options": ...}`` (the shape a dict
    request has); the action receives the same ``Document``, where a dumped dict would be
    validated and deep-copied into a new one (a third of genkit's machinery a query).
    """

    query: Document
    options: Any = None


class _RetrievedDocuments(BaseModel):
    """What a retriever action returns: its function's documents as they are.

    Traces and the reflection API record it as ``{"documents": [...]}`` (JS's
    ``RetrieverResponse``); ``retrieve()`` hands the same objects back (``_documents``
    passes documents through), where a dumped dict would be rebuilt into documents again
    (half of a small query's own time).
    """

    documents: list[Document]


def _request(request: object) -> Mapping[str, Any]:
    if isinstance(request, _IndexRequest):
        return {'documents': request.documents, 'options': request.options}
    if isinstance(request, _RetrieveRequest):
        return {'query': request.query, 'options': request.options}
    if isinstance(request, BaseModel):
        request = request.model_dump(by_alias=True, exclude_none=True)
    if not isinstance(request, Mapping):
        raise invalid(f'request must be an object, not {type(request).__name__}')
    return request


def _check_callable(fn: object) -> None:
    if not callable(fn):
        raise TypeError(f'fn must be callable, not {type(fn).__name__}')


def _info_dict(info: object, name: str) -> dict[str, Any] | None:
    if info is None:
        return None
    if isinstance(info, BaseModel):
        return dict(info.model_dump(by_alias=True, exclude_none=True))
    if isinstance(info, Mapping):
        return dict(info)
    raise TypeError(f'{name} must be a mapping, not {type(info).__name__}')


def _register(
    registry: Any,
    *,
    kind: Any,
    name: str,
    fn: Callable[[Any], Awaitable[Any]],
    description: str | None,
    metadata: dict[str, Any],
    input_schema: dict[str, Any],
    output_schema: dict[str, Any],
) -> Any:
    if not isinstance(name, str) or not name:
        raise TypeError(f'name must be a non-empty str, not {name!r}')
    action = _compat.Action(kind=kind, name=name, fn=fn, description=description, metadata=metadata)
    _compat.override_input_schema(action, input_schema)
    action.output_schema = output_schema
    # genkit mirrors the schemas into metadata; JS lists them beside it only.
    action.metadata.pop('inputSchema', None)
    action.metadata.pop('outputSchema', None)
    _compat.register_action(registry, action)
    return action


def _metadata(extra: Mapping[str, Any] | None, kind: str, **parts: Any) -> dict[str, Any]:
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(f'metadata must be a mapping, not {type(extra).__name__}')
    made: dict[str, Any] = {**(extra or {}), 'type': kind}
    made.update({key: value for key, value in parts.items() if value is not None})
    return made


def _kind_options(config_schema: ConfigSchema | None) -> dict[str, Any]:
    options = custom_options(config_schema)
    return {} if options is None else {'customOptions': options}


# -- definitions -----------------------------------------------------------------------------

RetrieverFn = Callable[[Document, Any], Any]
IndexerFn = Callable[[list[Document], Any], Any]
RerankerFn = Callable[[Document, list[Document], Any], Any]


def define_retriever(
    registry: Any,
    name: str,
    fn: RetrieverFn,
    *,
    config_schema: ConfigSchema | None = None,
    info: Mapping[str, Any] | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Register ``/retriever/<name>`` calling ``fn(query, options)`` (JS ``defineRetriever``)."""
    _check_callable(fn)
    check_config_schema(config_schema)
    info_data = _info_dict(info, 'info')

    async def retriever_action(request: Any) -> _RetrievedDocuments:
        data = _request(request)
        query = to_document(data.get('query'), 'query')
        options = validate_options(config_schema, data.get('options'))
        documents = _documents(await _call(fn, query, options), f'retriever {name!r}')
        return _RetrievedDocuments.model_construct(documents=documents)

    return _register(
        registry,
        kind=RETRIEVER,
        name=name,
        fn=retriever_action,
        description=description,
        metadata=_metadata(metadata, 'retriever', info=info_data, retriever=_kind_options(config_schema)),
        input_schema=request_schema(config_schema, with_query=True, with_documents=False),
        output_schema=documents_schema(ranked=False),
    )


def define_indexer(
    registry: Any,
    name: str,
    fn: IndexerFn,
    *,
    config_schema: ConfigSchema | None = None,
    embedder_info: Mapping[str, Any] | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Register ``/indexer/<name>`` calling ``fn(documents, options)`` (JS ``defineIndexer``)."""
    _check_callable(fn)
    check_config_schema(config_schema)
    embedder_data = _info_dict(embedder_info, 'embedder_info')

    async def indexer_action(request: Any) -> None:
        data = _request(request)
        documents = document_list(data.get('documents'), invalid)
        options = validate_options(config_schema, data.get('options'))
        shared = request if isinstance(request, _IndexRequest) else None
        token = _RUNNING_INDEX.set(_RunningIndexRequest(documents, shared))
        try:
            await _call(fn, documents, options)
        finally:
            _RUNNING_INDEX.reset(token)

    return _register(
        registry,
        kind=INDEXER,
        name=name,
        fn=indexer_action,
        description=description,
        metadata=_metadata(
            metadata, 'indexer', embedderInfo=embedder_data, indexer=_kind_options(config_schema)
        ),
        input_schema=request_schema(config_schema, with_query=False, with_documents=True),
        output_schema=void_schema(),
    )


def _ranked(documents: list[Document], name: str) -> list[dict[str, Any]]:
    problems = []
    for position, doc in enumerate(documents):
        metadata = doc.metadata
        if metadata is None:
            problems.append(f"documents.{position}: must have required property 'metadata'")
        elif 'score' not in metadata:
            problems.append(f"documents.{position}.metadata: must have required property 'score'")
        elif isinstance(metadata['score'], bool) or not isinstance(metadata['score'], (int, float)):
            problems.append(f'documents.{position}.metadata.score: must be number')
    dumped = [document_json(doc) for doc in documents]
    if problems:
        raise schema_error(problems, {'documents': dumped})
    return dumped


def define_reranker(
    registry: Any,
    name: str,
    fn: RerankerFn,
    *,
    config_schema: ConfigSchema | None = None,
    info: Mapping[str, Any] | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Register ``/reranker/<name>`` calling ``fn(query, documents, options)`` (JS ``defineReranker``).

    The returned documents must carry a numeric ``metadata['score']``; their order is kept.
    """
    _check_callable(fn)
    check_config_schema(config_schema)
    info_data = _info_dict(info, 'info')

    async def reranker_action(request: Any) -> dict[str, Any]:
        data = _request(request)
        query = to_document(data.get('query'), 'query')
        documents = document_list(data.get('documents'), invalid)
        options = validate_options(config_schema, data.get('options'))
        ranked = _documents(await _call(fn, query, documents, options), f'reranker {name!r}')
        return {'documents': _ranked(ranked, name)}

    return _register(
        registry,
        kind=RERANKER,
        name=name,
        fn=reranker_action,
        description=description,
        metadata=_metadata(metadata, 'reranker', info=info_data, reranker=_kind_options(config_schema)),
        input_schema=request_schema(config_schema, with_query=True, with_documents=True),
        output_schema=documents_schema(ranked=True),
    )


# -- the simple retriever ----------------------------------------------------------------


def _simple_content(item: Any, content: ContentOption) -> Document:
    if callable(content):
        made = content(item)
        if isinstance(made, str):
            return Document.from_text(made)
        return to_document({'content': made}, 'content(item)')
    if isinstance(content, str) and isinstance(item, Mapping):
        return Document.from_text(str(item[content]))
    raise GenkitError(
        status='INVALID_ARGUMENT',
        message=f'Cannot convert item to document without content option. Item: {_compat.to_span_json(item)}',
    )


def _simple_metadata(item: Any, content: ContentOption, metadata: MetadataOption) -> dict[str, Any] | None:
    if metadata is None:
        if not isinstance(item, Mapping):
            return None
        copied = dict(item)
        if isinstance(content, str):
            copied.pop(content, None)
        return copied
    if callable(metadata):
        made = metadata(item)
        return None if made is None else dict(made)
    if isinstance(metadata, Sequence) and not isinstance(metadata, str) and isinstance(item, Mapping):
        # A missing key is JS's `undefined`, which JSON drops.
        return {key: item[key] for key in metadata if key in item and item[key] is not None}
    raise GenkitError(
        status='INVALID_ARGUMENT', message='Unable to extract metadata from item with supplied options.'
    )


def simple_document(item: Any, content: ContentOption, metadata: MetadataOption) -> Document:
    """One item of a simple retriever mapped to a document, by JS's rules."""
    if item is None or item is False or item == '' or item == 0:
        raise invalid('Items returned from simple retriever must be non-null.')
    if isinstance(item, str):
        return Document.from_text(item)
    document = _simple_content(item, content)
    document.metadata = _simple_metadata(item, content, metadata)
    return document


def define_simple_retriever(
    registry: Any,
    name: str,
    handler: Callable[[Document, Any], Any],
    *,
    content: ContentOption = None,
    metadata: MetadataOption = None,
    config_schema: ConfigSchema | None = None,
) -> Any:
    """Register a retriever whose ``handler(query, config)`` returns any items (JS ``defineSimpleRetriever``).

    Each item becomes a document: a str as its text; otherwise ``content`` (a key or a
    function of the item) gives the content and ``metadata`` (a list of keys, a function,
    or by default the item minus its content key) the metadata.
    """
    _check_callable(handler)
    if content is not None and not (isinstance(content, str) or callable(content)):
        raise TypeError(f'content must be a key or a function, not {type(content).__name__}')

    async def retrieve_items(query: Document, config: Any) -> list[Document]:
        items = await _call(handler, query, config)
        if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
            raise GenkitError(
                status='INVALID_ARGUMENT', message=f'simple retriever {name!r} must return a list of items'
            )
        return [simple_document(item, content, metadata) for item in items]

    return define_retriever(registry, name, retrieve_items, config_schema=config_schema)


# -- calling them ----------------------------------------------------------------------------

_NOUNS = {'retriever': RETRIEVER, 'indexer': INDEXER, 'reranker': RERANKER}


async def _resolve(registry: Any, noun: str, target: object) -> Any:
    kind = _NOUNS[noun]
    if isinstance(target, _compat.Action):
        if target.kind != kind:
            raise GenkitError(
                status='INVALID_ARGUMENT', message=f'{target.name!r} is a {target.kind} action, not a {noun}'
            )
        return target
    if isinstance(target, _Ref):
        name = target.name
    elif isinstance(target, str) and target:
        name = target
    else:
        raise TypeError(f'{noun} must be a name, a ref or an action, not {type(target).__name__}')
    action = await registry.resolve_action(kind, name)
    if action is None:
        raise GenkitError(
            status='NOT_FOUND',
            message=f'Unable to resolve the {noun} {name!r}: /{noun}/{name} is not registered',
        )
    return action


def _with_options(request: dict[str, Any], options: Any) -> dict[str, Any]:
    if options is not None:
        request['options'] = options_json(options)
    return request


async def retrieve(registry: Any, *, retriever: object, query: object, options: Any = None) -> list[Document]:
    """Run a retriever (JS ``ai.retrieve``); a str query becomes a text document."""
    action = await _resolve(registry, 'retriever', retriever)
    request = _RetrieveRequest.model_construct(
        query=to_document(query, 'query'), options=options_json(options) if options is not None else None
    )
    response = (await action.run(request)).response
    return _documents(response, f'retriever {action.name!r}')


async def index(registry: Any, *, indexer: object, documents: Sequence[object], options: Any = None) -> None:
    """Run an indexer on ``documents`` (JS ``ai.index``)."""
    action = await _resolve(registry, 'indexer', indexer)
    docs = document_list(documents, TypeError)
    request = _IndexRequest.model_construct(
        documents=docs, options=options_json(options) if options is not None else None
    )
    await action.run(request)


async def rerank(
    registry: Any, *, reranker: object, query: object, documents: Sequence[object], options: Any = None
) -> list[RankedDocument]:
    """Run a reranker (JS ``ai.rerank``); documents come back in the reranker's order."""
    action = await _resolve(registry, 'reranker', reranker)
    docs = [document_json(doc) for doc in document_list(documents, TypeError)]
    request = _with_options({'query': document_json(to_document(query, 'query')), 'documents': docs}, options)
    response = (await action.run(request)).response
    return [RankedDocument.model_validate(doc) for doc in _documents_json(response)]


def _documents_json(response: object) -> list[Any]:
    if isinstance(response, Mapping):
        return list(response.get('documents', []))
    return list(getattr(response, 'documents', []))
