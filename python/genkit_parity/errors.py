"""Exceptions raised by genkit-parity.

All of them are :class:`genkit.GenkitError` subclasses (``status`` + message), so code that
already handles Genkit errors handles these too. Bad arguments raise the stock ``TypeError``
or ``ValueError`` naming the argument.
"""

from __future__ import annotations

from typing import Any

from genkit import GenkitError

__all__ = [
    'CorruptOperationError',
    'CorruptSessionError',
    'CorruptVectorStoreError',
    'InvalidOperationError',
    'InvalidVectorError',
    'NotFoundError',
    'OperationTimeoutError',
    'SessionConflictError',
    'SessionLostError',
    'SessionStoreError',
    'StoreEngineError',
    'VectorIndexNotFoundError',
    'VectorStoreError',
]


class SessionStoreError(GenkitError):
    """A session store could not read or write (disk full, database locked too long, ...).

    ``session_id`` names the session involved, when there is one. The write it reports was
    not acknowledged: nothing it was asked to store is half-written.
    """

    default_status = 'UNAVAILABLE'

    def __init__(self, message: str, session_id: str | None = None) -> None:
        super().__init__(message=message, status=self.default_status)  # type: ignore[arg-type]
        self.session_id: str | None = session_id


class CorruptSessionError(SessionStoreError):
    """A stored session cannot be read back: a damaged log line, row or record.

    Raised instead of silently dropping data. ``session_id`` names the session; the message
    says where the damage is (log line, thread and message number, ...).
    """

    default_status = 'DATA_LOSS'


class SessionLostError(SessionStoreError):
    """A session this worker holds vanished from its store (e.g. Redis restarted without persistence).

    Status ``DATA_LOSS``. Raised by the save that found it missing, naming the session; the
    store is never silently re-created from the worker's partial copy. Load the session
    again (it reads as unknown) to start over.
    """

    default_status = 'DATA_LOSS'


class SessionConflictError(SessionStoreError):
    """A save raced another worker's and the store was told not to merge (``on_conflict='error'``).

    Status ``ABORTED`` (retryable): load the session again and redo the turn, so that it
    sees every turn stored before it. Also raised in any mode when a thread's stored
    prefix was replaced by someone else meanwhile.
    """

    default_status = 'ABORTED'


class StoreEngineError(SessionStoreError):
    """Redis or PostgreSQL rejected a request with an error retrying cannot fix.

    Status ``INTERNAL``; ``code`` is the engine's error code (a PostgreSQL SQLSTATE such as
    ``42501``, or a Redis error kind). The message names the server (``host:port``).
    """

    default_status = 'INTERNAL'

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code: str = code


class NotFoundError(GenkitError, LookupError):
    """Something named by id does not exist, or has expired (an operation id, ...).

    Status ``NOT_FOUND``; also a ``LookupError``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message=message, status='NOT_FOUND')


class InvalidOperationError(GenkitError, ValueError):
    """An operation is malformed: not an ``Operation``/dict, no ``id``, a field of the wrong type.

    Status ``INVALID_ARGUMENT``; also a ``ValueError``. The message names the field.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message=message, status='INVALID_ARGUMENT')


class CorruptOperationError(GenkitError):
    """An operation store holds a record under the id that is not that operation.

    Written by something else, or damaged: not JSON, a field of the wrong type, another
    operation's id.

    Status ``DATA_LOSS``; ``operation_id`` names the operation. Never read as a valid state
    (a ``"done": "yes"`` is not done), so the provider is not skipped on the strength of it.
    """

    def __init__(self, message: str, operation_id: str | None = None) -> None:
        super().__init__(message=message, status='DATA_LOSS')
        self.operation_id: str | None = operation_id


class OperationTimeoutError(GenkitError, TimeoutError):
    """``wait_for_operation`` reached its deadline before the operation was done.

    Status ``DEADLINE_EXCEEDED``; also a ``TimeoutError``. ``operation`` is the last state
    seen, ``checks`` how many checks ran, ``elapsed`` the seconds waited.
    """

    def __init__(self, message: str, *, operation: Any, checks: int, elapsed: float) -> None:
        super().__init__(message=message, status='DEADLINE_EXCEEDED')
        self.operation = operation
        self.checks = checks
        self.elapsed = elapsed


class VectorStoreError(GenkitError):
    """A vector store or a reranker service refused or failed a call.

    ``store`` names the store or index (``'postgres/docs'``, ``'chroma/facts'``, a local
    index name ...); ``status`` says what kind of failure it is: ``UNAVAILABLE`` (server down
    or unreachable, a disk that failed: retry later), ``NOT_FOUND`` (no such table, collection
    or index), ``INVALID_ARGUMENT`` (a dimension mismatch, a bad filter),
    ``FAILED_PRECONDITION`` (the table exists but lacks a column), ``DATA_LOSS`` (a damaged
    file) ... A write the error reports was not acknowledged; everything written before it
    is still stored. The subclasses below are the local store's kinds of failure.
    """

    default_status = 'UNAVAILABLE'

    def __init__(self, message: str, store: str | None = None, status: str | None = None) -> None:
        super().__init__(message=message, status=status or self.default_status)  # type: ignore[arg-type]
        self.store: str | None = store

    @property
    def index_name(self) -> str | None:
        """The local index involved (the same as ``store``)."""
        return self.store


class InvalidVectorError(VectorStoreError, ValueError):
    """Bad input to a vector index (INVALID_ARGUMENT); nothing was written.

    A dimension mismatch with the stored vectors, an empty, NaN, infinite or all-zero
    vector, an unusable index name or filter. Status ``INVALID_ARGUMENT``; also a ``ValueError``.
    """

    default_status = 'INVALID_ARGUMENT'


class VectorIndexNotFoundError(VectorStoreError, LookupError):
    """A vector index opened read-only (``must_exist=True``) has no file. Status ``NOT_FOUND``."""

    default_status = 'NOT_FOUND'


class CorruptVectorStoreError(VectorStoreError):
    """A vector index file is damaged (DATA_LOSS).

    A complete record with a bad checksum, or bytes that are not a record. The message names
    the file and the byte offset. Raised instead of dropping or rebuilding data. (A record
    cut short by a crash at the very end of the file was never acknowledged and is dropped.)
    """

    default_status = 'DATA_LOSS'
