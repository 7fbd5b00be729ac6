"""Exceptions raised by genkit-parity.

All of them are :class:`genkit.GenkitError` subclasses (``status`` + message), so code that
already handles Genkit errors handles these too. Bad arguments raise the stock ``TypeError``
or ``ValueError`` naming the argument.
"""

from __future__ import annotations

from genkit import GenkitError

__all__ = ['CorruptSessionError', 'SessionStoreError']


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
