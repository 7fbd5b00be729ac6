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
    CorruptSessionError,
    InvalidOperationError,
    NotFoundError,
    OperationTimeoutError,
    SessionConflictError,
    SessionLostError,
    SessionStoreError,
    StoreEngineError,
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
    'Chat',
    'ChatStreamResponse',
    'CorruptSessionError',
    'FileSessionStore',
    'Genkit',
    'GenkitParityMixin',
    'InMemorySessionStore',
    'InvalidOperationError',
    'NotFoundError',
    'Operation',
    'OperationStore',
    'OperationTimeoutError',
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
    '__version__',
    'cleanup_tracing',
    'current_session',
    'default_store',
    'enable_telemetry',
    'extend',
    'flush_tracing',
]
