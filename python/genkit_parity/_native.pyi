"""Type stubs for the Rust core, ``genkit_parity._native`` (hand-written, checked by stubtest)."""

from os import PathLike
from pathlib import Path
from typing import Any, final

__all__ = [
    'CompletionQueue',
    'DiskStoreCore',
    'MemoryStoreCore',
    'OperationPoller',
    'Ticket',
    '__version__',
    'normalize_operation',
    'validate_session_id',
]

__version__: str

def validate_session_id(session_id: str) -> str:
    """Return the id trimmed, or raise ValueError for an empty, oversized or path-like id."""

@final
class MemoryStoreCore:
    """In-memory store; every method answers synchronously."""

    def __new__(cls) -> MemoryStoreCore: ...
    def load(self, session_id: str) -> str | None: ...
    def save(self, session_id: str, data_json: str) -> None: ...
    def append(self, session_id: str, thread: str, messages: list[str]) -> None: ...
    def replace_thread(self, session_id: str, thread: str, messages: list[str]) -> None: ...
    def set_state(self, session_id: str, state_json: str | None) -> None: ...
    def delete(self, session_id: str) -> bool: ...
    def __len__(self) -> int: ...

@final
class DiskStoreCore:
    """File or SQLite store; each operation runs off the GIL and reports through ``ticket``."""

    @staticmethod
    def file(directory: str | PathLike[str], /, *, durable: bool = False) -> DiskStoreCore: ...
    @staticmethod
    def sqlite(path: str | PathLike[str], /, *, durable: bool = False) -> DiskStoreCore: ...
    @property
    def kind(self) -> str: ...
    @property
    def location(self) -> Path: ...
    def load(self, ticket: Ticket, session_id: str) -> None: ...
    def save(self, ticket: Ticket, session_id: str, data_json: str) -> None: ...
    def append(self, ticket: Ticket, session_id: str, thread: str, messages: list[str]) -> None: ...
    def replace_thread(self, ticket: Ticket, session_id: str, thread: str, messages: list[str]) -> None: ...
    def set_state(self, ticket: Ticket, session_id: str, state_json: str | None) -> None: ...
    def delete(self, ticket: Ticket, session_id: str) -> None: ...

@final
class CompletionQueue:
    """Finished core jobs for one event loop; readable ``fileno()`` means work to drain."""

    def __new__(cls) -> CompletionQueue: ...
    def fileno(self) -> int: ...
    def ticket(self) -> Ticket: ...
    def start_timer(self, seconds: float) -> int:
        """A timer job that completes with None after ``seconds``; returns its id."""
    def cancel_timer(self, id: int) -> None:
        """Cancel a timer that has not fired."""
    def drain(self) -> list[tuple[int, bool, Any]]:
        """``(id, ok, value)`` per finished job: the result, or the exception when not ok."""

@final
class Ticket:
    """One job's claim on a CompletionQueue; carries exactly one job."""

    @property
    def id(self) -> int: ...

def normalize_operation(json: str) -> str:
    """Validate an Operation (JSON) and return it normalised; InvalidOperationError names the field."""

@final
class OperationPoller:
    """Pacing of one wait_for_operation: exponential backoff with jitter until a deadline."""

    def __new__(
        cls,
        *,
        interval: float,
        max_interval: float,
        multiplier: float = 2.0,
        jitter: float = 0.2,
        timeout: float | None = None,
    ) -> OperationPoller: ...
    def record_check(self) -> None: ...
    def next_delay(self) -> float | None: ...
    @property
    def checks(self) -> int: ...
    @property
    def elapsed(self) -> float: ...
