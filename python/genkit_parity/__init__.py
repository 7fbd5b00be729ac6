"""genkit-parity: JS Genkit's sessions and chat for Python Genkit, with a Rust core.

Change one import::

    from genkit_parity import Genkit   # instead of: from genkit import Genkit

or add the methods to an existing instance with ``genkit_parity.extend(ai)``.
"""

from __future__ import annotations

from ._genkit import Genkit, GenkitParityMixin, extend
from ._native import __version__
from .background import Operation, OperationStore, PostgresOperationStore, RedisOperationStore
from .chat import Chat, ChatStreamResponse
from .errors import (
    CorruptOperationError,
    CorruptSessionError,
    CorruptVectorStoreError,
    InvalidOperationError,
    InvalidVectorError,
    NotFoundError,
    OperationTimeoutError,
    SessionConflictError,
    SessionLostError,
    SessionStoreError,
    StoreEngineError,
    VectorIndexNotFoundError,
    VectorStoreError,
)
from .rag import (
    CommonRerankerOptions,
    CommonRetrieverOptions,
    IndexerRef,
    RankedDocument,
    RerankerRef,
    RetrieverRef,
    indexer_ref,
    reranker_ref,
    retriever_ref,
)
from .session import MAIN_THREAD, Session, current_session
from .stores import (
    FileSessionStore,
    InMemorySessionStore,
    PostgresSessionStore,
    RedisSessionStore,
    SessionStore,
    SqliteSessionStore,
    default_store,
)
from .tracing import TelemetryConfig, cleanup_tracing, enable_telemetry, flush_tracing

__all__ = [
    'MAIN_THREAD',
    '__version__',
    'Chat',
    'ChatStreamResponse',
    'cleanup_tracing',
    'CommonRerankerOptions',
    'CommonRetrieverOptions',
    'CorruptOperationError',
    'CorruptSessionError',
    'CorruptVectorStoreError',
    'current_session',
    'default_store',
    'enable_telemetry',
    'extend',
    'FileSessionStore',
    'flush_tracing',
    'Genkit',
    'GenkitParityMixin',
    'indexer_ref',
    'IndexerRef',
    'InMemorySessionStore',
    'InvalidOperationError',
    'InvalidVectorError',
    'NotFoundError',
    'Operation',
    'OperationStore',
    'OperationTimeoutError',
    'RankedDocument',
    'reranker_ref',
    'RerankerRef',
    'retriever_ref',
    'RetrieverRef',
    'PostgresOperationStore',
    'PostgresSessionStore',
    'RedisOperationStore',
    'RedisSessionStore',
    'Session',
    'SessionConflictError',
    'SessionLostError',
    'SessionStore',
    'SessionStoreError',
    'SqliteSessionStore',
    'StoreEngineError',
    'TelemetryConfig',
    'VectorIndexNotFoundError',
    'VectorStoreError',
]
