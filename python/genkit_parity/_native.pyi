"""Type stubs for the Rust core, ``genkit_parity._native`` (hand-written, checked by stubtest)."""

from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, final

__all__ = [
    'ArrayItemsStream',
    'LogSink',
    'SpanSink',
    'CompletionQueue',
    'JsonStream',
    'LocalVectorIndex',
    'DapCache',
    'DapSnapshot',
    'DiskStoreCore',
    'FetchLease',
    'MemoryStoreCore',
    'SharedStoreCore',
    'OperationStoreCore',
    'OperationPoller',
    'PgVectorEngine',
    'PgVectorTable',
    'Ticket',
    'adjust_span_attributes',
    'gemini_config_json_schema',
    'js_document_id',
    'js_json_text',
    'generation_common_config_schema',
    'normalize_json_schema',
    'parse_strict_json',
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
    def load_versioned(self, session_id: str) -> tuple[str, int] | None: ...
    def save(self, session_id: str, data_json: str) -> int: ...
    def commit(
        self,
        session_id: str,
        *,
        turn_id: str | None,
        expected_version: int,
        threads: list[tuple[str, int, bool, list[str]]],
        state_mode: str,
        state_json: str | None,
    ) -> tuple[int, bool, list[tuple[str, list[str]]], str | None]: ...
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
    def load_versioned(self, ticket: Ticket, session_id: str) -> None: ...
    def save(self, ticket: Ticket, session_id: str, data_json: str) -> None: ...
    def delete(self, ticket: Ticket, session_id: str) -> None: ...
    def commit(
        self,
        ticket: Ticket,
        session_id: str,
        *,
        turn_id: str | None,
        expected_version: int,
        threads: list[tuple[str, int, bool, list[str]]],
        state_mode: str,
        state_json: str | None,
    ) -> None: ...

@final
class SharedStoreCore:
    """Redis or PostgreSQL store with versioned commits; operations report through ``ticket``."""

    @staticmethod
    def redis(
        url: str, /, *, prefix: str, ttl: float | None, on_conflict: str, timeout: float
    ) -> SharedStoreCore: ...
    @staticmethod
    def postgres(
        dsn: str, /, *, table_prefix: str, ttl: float | None, on_conflict: str, timeout: float, pool_size: int
    ) -> SharedStoreCore: ...
    @property
    def kind(self) -> str: ...
    @property
    def target(self) -> str: ...
    def load_versioned(self, ticket: Ticket, session_id: str) -> None: ...
    def sweep_expired(self, ticket: Ticket) -> None: ...
    def save(self, ticket: Ticket, session_id: str, data_json: str) -> None: ...
    def delete(self, ticket: Ticket, session_id: str) -> None: ...
    def commit(
        self,
        ticket: Ticket,
        session_id: str,
        *,
        turn_id: str | None,
        expected_version: int,
        threads: list[tuple[str, int, bool, list[str]]],
        state_mode: str,
        state_json: str | None,
    ) -> None: ...

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
class OperationStoreCore:
    """Redis or PostgreSQL operation store; calls report through ``ticket``."""

    @staticmethod
    def redis(
        url: str, /, *, prefix: str, ttl: float, timeout: float, lease: float | None = None
    ) -> OperationStoreCore: ...
    @staticmethod
    def postgres(
        dsn: str, /, *, table_prefix: str, ttl: float, timeout: float, lease: float | None = None
    ) -> OperationStoreCore: ...
    def put(self, ticket: Ticket, operation_json: str) -> None: ...
    def get(self, ticket: Ticket, id: str) -> None: ...
    @property
    def lease(self) -> float | None: ...
    def try_lease(self, ticket: Ticket, id: str) -> None: ...

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

@final
class DapSnapshot:
    """What one fetch of a dynamic action provider returned, indexed."""

    def get(self, action_type: str, name: str) -> Any | None: ...
    def list_metadata(self, action_type: str, pattern: str) -> list[dict[str, Any]]: ...
    def items(self) -> list[tuple[str, str, Any, dict[str, Any]]]: ...
    @property
    def generation(self) -> int: ...
    def __len__(self) -> int: ...

@final
class FetchLease:
    """Proof that the holder must fetch; dropping it unused fails the waiting callers."""

@final
class DapCache:
    """A provider's TTL cache with single-flight fetch."""

    def __new__(cls, ttl_millis: int | None = None) -> DapCache: ...
    def get_warm(self, action_type: str, name: str) -> tuple[bool, Any | None]: ...
    def fresh(self) -> DapSnapshot | None: ...
    def access(self, queue: CompletionQueue) -> DapSnapshot | FetchLease | int: ...
    def finish(
        self, lease: FetchLease, groups: list[tuple[str, list[tuple[str, Any, Any]]]]
    ) -> DapSnapshot: ...
    def fail(self, lease: FetchLease, error: BaseException) -> None: ...
    def invalidate(self) -> None: ...

@final
class JsonStream:
    """genkit's ``extract_json`` for one stream.

    ``push`` returns ``(0, value)``, or ``(1, None)`` when genkit's own parser must decide.
    """

    def __init__(self) -> None: ...
    def push(self, delta: str) -> tuple[int, Any]: ...

@final
class ArrayItemsStream:
    """The ``array`` format's per-chunk items for one stream."""

    def __init__(self) -> None: ...
    def push(self, delta: str, fallback: Callable[[str], Any]) -> list[Any]: ...

def parse_strict_json(text: str) -> tuple[int, Any]:
    """``(0, value)`` complete, ``(2, None)`` unfinished, ``(1, None)`` not strict JSON."""

@final
class SpanSink:
    """Exports OpenTelemetry spans to the Genkit telemetry server from a tokio task."""

    def __new__(
        cls,
        url: str,
        realtime: bool,
        queue_capacity: int = 2048,
        batch_max: int = 512,
        request_timeout: float = 30.0,
        sample_ratio: float = 1.0,
        linger: float = 0.1,
    ) -> SpanSink: ...
    @property
    def realtime(self) -> bool: ...
    def on_start(self, span: Any) -> str | None: ...
    def on_end(self, span: Any) -> str | None: ...
    def flush(self, timeout: float) -> bool: ...
    def shutdown(self, timeout: float) -> bool: ...
    def stats(self) -> dict[str, Any]: ...

@final
class LogSink:
    """Exports OTLP-JSON log records to the Genkit telemetry server (``/api/otlp``) from a tokio task."""

    def __new__(
        cls,
        url: str,
        scope_name: str,
        scope_version: str,
        queue_capacity: int = 1024,
        batch_max: int = 64,
        request_timeout: float = 30.0,
        linger: float = 0.1,
    ) -> LogSink: ...
    def submit(self, record: Any) -> bool: ...
    def flush(self, timeout: float) -> bool: ...
    def shutdown(self, timeout: float) -> bool: ...
    def stats(self) -> dict[str, Any]: ...

def adjust_span_attributes(
    attributes: Any, is_error: bool, redact_input_output: bool = True
) -> dict[str, Any]:
    """JS's AdjustingTraceExporter rules on one span's attributes; keys get ``/`` for ``:``."""

def normalize_json_schema(schema_json: str) -> str:
    """The Dev UI (draft-07, JS-shaped) form of a JSON Schema given as JSON text."""

def generation_common_config_schema() -> str:
    """Genkit's common generation config schema (JSON text)."""

def gemini_config_json_schema() -> str:
    """A Gemini-compatible config schema (JSON text)."""

@final
class LocalVectorIndex:
    """A persistent local vector index (``<directory>/<name>.gkvec``), loaded once per process.

    Vectors are sequences of floats or one ``bytes`` of little-endian float32 values.
    """

    def __new__(
        cls, directory: str | PathLike[str], name: str, *, must_exist: bool = False
    ) -> LocalVectorIndex: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> Path: ...
    def __len__(self) -> int: ...
    def dimensions(self) -> int | None: ...
    def add(
        self,
        docs: list[str],
        embeddings: bytes | Sequence[Sequence[float]],
        embed_metadata: Sequence[str | None] | None = None,
    ) -> int: ...
    def start_add(
        self,
        ticket: Ticket,
        docs: list[str],
        embeddings: bytes | Sequence[Sequence[float]],
        embed_metadata: Sequence[str | None] | None = None,
    ) -> None: ...
    def start_add_array(
        self,
        ticket: Ticket,
        docs_json: str,
        embeddings: bytes | Sequence[Sequence[float]],
    ) -> None: ...
    def search(
        self,
        query: bytes | Sequence[float],
        k: int,
        *,
        where_json: str | None = None,
        approximate: bool = False,
    ) -> list[tuple[str, float]]: ...
    def start_search(
        self,
        ticket: Ticket,
        query: bytes | Sequence[float],
        k: int,
        *,
        where_json: str | None = None,
        approximate: bool = False,
    ) -> None: ...
    def search_many(
        self,
        queries: bytes | Sequence[Sequence[float]],
        k: int,
        *,
        dims: int | None = None,
        where_json: str | None = None,
        approximate: bool = False,
    ) -> list[list[tuple[str, float]]]: ...
    def import_js(self, path: str | PathLike[str]) -> int: ...
    def export_js(self, path: str | PathLike[str]) -> int: ...

@final
class PgVectorEngine:
    """A PostgreSQL server reached through the process's shared pool for its DSN."""

    def __new__(
        cls, dsn: str, /, *, pool_size: int = 8, connect_timeout: float = 2.0, retry_seconds: float = 5.0
    ) -> PgVectorEngine: ...
    @property
    def target(self) -> str: ...
    def init_table(
        self,
        ticket: Ticket,
        /,
        *,
        name: str,
        schema: str,
        table: str,
        vector_size: int,
        id_column: str,
        id_type: str,
        content_column: str,
        embedding_column: str,
        metadata_json_column: str | None,
        metadata_columns: list[tuple[str, str, bool]],
        overwrite_existing: bool,
    ) -> None:
        """Creates a vector-store table (JS's DDL); resolves to None."""

@final
class PgVectorTable:
    """One pgvector table as a vector store; every call completes through its ticket."""

    def __new__(
        cls,
        engine: PgVectorEngine,
        /,
        *,
        name: str,
        schema: str,
        table: str,
        id_column: str,
        content_column: str,
        embedding_column: str,
        metadata_json_column: str | None,
        metadata_columns: list[str],
        distance: str,
    ) -> PgVectorTable: ...
    @property
    def name(self) -> str: ...
    def upsert(
        self,
        ticket: Ticket,
        /,
        *,
        ids: list[str],
        contents: list[str],
        embeddings: list[list[float]],
        metadata_json: list[str | None],
        columns_json: list[str | None],
    ) -> None:
        """Upserts one batch in one statement; resolves to the rows written."""
    def query(
        self,
        ticket: Ticket,
        embedding: list[float],
        k: int,
        /,
        *,
        filter_json: str | None = None,
        unsafe_sql_filter: str | None = None,
        settings: list[tuple[str, str]] = ...,
    ) -> None:
        """Resolves to ``[(id, content, metadata_json, columns_json, distance), ...]``, nearest first."""
    def apply_index(
        self,
        ticket: Ticket,
        /,
        *,
        index_name: str,
        kind: str,
        m: int = 16,
        ef_construction: int = 64,
        lists: int = 100,
        concurrently: bool = False,
    ) -> None:
        """Builds (or rebuilds) a vector index."""
    def drop_index(self, ticket: Ticket, index_name: str) -> None:
        """Drops a vector index if it exists."""
    def count(self, ticket: Ticket) -> None:
        """Resolves to the number of rows."""

def js_json_text(json_text: str) -> str:
    """``json_text`` as JS's ``JSON.stringify`` writes it (compact, ``1`` for ``1.0``)."""

def js_document_id(doc_json: str) -> str:
    """JS's document id: the md5 hex of the document's ``JSON.stringify`` text."""
