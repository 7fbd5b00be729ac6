"""Exceptions raised by genkit-parity.

All of them are :class:`genkit.GenkitError` subclasses (``status`` + message), so code that
already handles Genkit errors handles these too. Bad arguments raise the stock ``TypeError``
or ``ValueError`` naming the argument.
"""

from __future__ import annotations

from typing import Any

from genkit import GenkitError

__all__ = [
    'CorruptSessionError',
    'CorruptVectorStoreError',
    'InvalidOperationError',
    'InvalidVectorError',
    'OperationTimeoutError',
    'SessionStoreError',
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


class InvalidOperationError(GenkitError, ValueError):
    """An operation is malformed: not an ``Operation``/dict, no ``id``, a field of the wrong type.

    Status ``INVALID_ARGUMENT``; also a ``ValueError``. The message names the field.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message=message, status='INVALID_ARGUMENT')


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
    """A local vector index could not read or write its file (disk full, permissions, ...).

    ``index_name`` names the index. The write it reports was not acknowledged; everything
    indexed before it is still stored. Status ``UNAVAILABLE``.
    """

    default_status = 'UNAVAILABLE'

    def __init__(self, message: str, index_name: str | None = None) -> None:
        super().__init__(message=message, status=self.default_status)  # type: ignore[arg-type]
        self.index_name: str | None = index_name


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
