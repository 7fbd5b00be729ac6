//! The one error type of the Rust core, and the one place it becomes a Python exception.
//!
//! Core modules return [`Error`]; nothing below `py.rs` knows about Python. The conversion
//! to `PyErr` is lazy (no GIL needed to build it), so it is safe to create inside tokio
//! tasks and blocking workers.

use pyo3::PyErr;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};

/// Everything the core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A session id that could escape a store's namespace or is otherwise unusable.
    #[error("invalid session id {id:?}: {reason}")]
    InvalidSessionId { id: String, reason: &'static str },

    /// A thread name that cannot be stored.
    #[error("invalid thread name {thread:?}: {reason}")]
    InvalidThread {
        thread: String,
        reason: &'static str,
    },

    /// Caller-supplied data that is not the JSON it claims to be.
    #[error("{what} is not valid JSON: {detail}")]
    InvalidJson { what: String, detail: String },

    /// A stored record that cannot be read back. Never silently dropped.
    #[error("session {session_id:?}: stored data is corrupt ({location}): {detail}")]
    Corrupt {
        session_id: String,
        location: String,
        detail: String,
    },

    /// The storage medium failed (disk, database).
    #[error("session store failed for session {session_id:?}: {detail}")]
    Storage { session_id: String, detail: String },

    /// Opening or preparing a store failed.
    #[error("cannot open session store at {path:?}: {detail}")]
    Open { path: String, detail: String },

    /// An operation (JS `Operation` shape) that is malformed.
    #[error("invalid operation: {detail}")]
    InvalidOperation { detail: String },

    /// A stored operation record that is not the operation it is stored as (written by
    /// something else, or damaged): DATA_LOSS. Never read as a valid state.
    #[error("operation {id:?}: the stored record is corrupt: {detail}")]
    OperationCorrupt { id: String, detail: String },

    /// An argument outside its allowed range.
    #[error("{detail}")]
    InvalidArgument { detail: String },

    /// Bad input to a vector index (dimension mismatch, empty, NaN or zero vector, a bad
    /// index name or filter): INVALID_ARGUMENT.
    #[error("vector index {index:?}: {detail}")]
    VectorInvalid { index: String, detail: String },

    /// A vector index opened read-only that has no file: NOT_FOUND.
    #[error("vector index {index:?} not found: no {path}")]
    VectorNotFound { index: String, path: String },

    /// A vector index file that cannot be read back: DATA_LOSS. Never silently rebuilt.
    #[error("vector index {index:?}: store file {path} is corrupt at byte {offset}: {detail}")]
    VectorCorrupt {
        index: String,
        path: String,
        offset: u64,
        detail: String,
    },

    /// The disk failed under a vector index (nothing of the failed write was acknowledged).
    #[error("vector index {index:?}: storage failed for {path}: {detail}")]
    VectorStorage {
        index: String,
        path: String,
        detail: String,
    },

    /// An external engine (Redis, PostgreSQL) could not be reached, or kept failing with
    /// retryable errors, within the retry budget. `target` is `host:port`, never a password.
    #[error("{engine} at {target} is unavailable: {detail}")]
    Unavailable {
        engine: &'static str,
        target: String,
        detail: String,
    },

    /// An external engine rejected a statement with a non-retryable error. `code` is the
    /// engine's own error code (a PostgreSQL SQLSTATE such as `42P01`, a Redis error kind).
    #[error("{engine} at {target} failed ({code}): {detail}")]
    Engine {
        engine: &'static str,
        target: String,
        code: String,
        detail: String,
    },

    /// A session a caller holds is gone from its store (e.g. Redis restarted without
    /// persistence): writing it now would silently rebuild it from a partial copy.
    #[error("session {session_id:?} was lost by its store: {detail}")]
    SessionLost { session_id: String, detail: String },

    /// A save raced another writer and the store's conflict policy refuses to merge it.
    #[error("session {session_id:?}: {detail}")]
    Conflict { session_id: String, detail: String },

    /// Something the caller named does not exist (or has expired).
    #[error("{detail}")]
    NotFound { detail: String },

    /// A vector store (`postgres/<table>`, ...) failed a call; `status` is the Genkit status
    /// the caller sees (`UNAVAILABLE`, `NOT_FOUND`, `INVALID_ARGUMENT`, ...).
    #[error("{store}: {detail}")]
    VectorStore {
        store: String,
        status: &'static str,
        detail: String,
    },

    /// A bug in the core: a panic in a worker or a broken invariant.
    #[error("internal error in genkit-parity core: {0}")]
    Internal(String),
}

/// Shorthand used throughout the core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn storage(session_id: &str, detail: impl std::fmt::Display) -> Self {
        Error::Storage {
            session_id: session_id.to_owned(),
            detail: detail.to_string(),
        }
    }

    pub fn corrupt(
        session_id: &str,
        location: impl Into<String>,
        detail: impl std::fmt::Display,
    ) -> Self {
        Error::Corrupt {
            session_id: session_id.to_owned(),
            location: location.into(),
            detail: detail.to_string(),
        }
    }
}

// Python classes defined in `genkit_parity/errors.py`; both subclass `genkit.GenkitError`
// and take `(message, session_id)` positionally so a lazy `PyErr` can build them.
pyo3::import_exception!(genkit_parity.errors, SessionStoreError);
pyo3::import_exception!(genkit_parity.errors, CorruptSessionError);
pyo3::import_exception!(genkit_parity.errors, InvalidOperationError);
pyo3::import_exception!(genkit_parity.errors, CorruptOperationError);
// Vector index errors take `(message, index_name)`.
pyo3::import_exception!(genkit_parity.errors, VectorStoreError);
pyo3::import_exception!(genkit_parity.errors, InvalidVectorError);
pyo3::import_exception!(genkit_parity.errors, VectorIndexNotFoundError);
pyo3::import_exception!(genkit_parity.errors, CorruptVectorStoreError);
pyo3::import_exception!(genkit_parity.errors, SessionLostError);
pyo3::import_exception!(genkit_parity.errors, SessionConflictError);
pyo3::import_exception!(genkit_parity.errors, StoreEngineError);
pyo3::import_exception!(genkit_parity.errors, NotFoundError);

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let message = err.to_string();
        match err {
            Error::InvalidSessionId { .. }
            | Error::InvalidThread { .. }
            | Error::InvalidArgument { .. } => PyValueError::new_err(message),
            Error::InvalidOperation { .. } => InvalidOperationError::new_err((message,)),
            Error::OperationCorrupt { id, .. } => CorruptOperationError::new_err((message, id)),
            Error::InvalidJson { .. } => PyTypeError::new_err(message),
            Error::Corrupt { session_id, .. } => {
                CorruptSessionError::new_err((message, session_id))
            }
            Error::Storage { session_id, .. } => SessionStoreError::new_err((message, session_id)),
            Error::Open { .. } => SessionStoreError::new_err((message, Option::<String>::None)),
            Error::VectorInvalid { index, .. } => InvalidVectorError::new_err((message, index)),
            Error::VectorNotFound { index, .. } => {
                VectorIndexNotFoundError::new_err((message, index))
            }
            Error::VectorCorrupt { index, .. } => {
                CorruptVectorStoreError::new_err((message, index))
            }
            Error::VectorStorage { index, .. } => VectorStoreError::new_err((message, index)),
            Error::Unavailable { .. } => {
                SessionStoreError::new_err((message, Option::<String>::None))
            }
            Error::Engine { code, .. } => StoreEngineError::new_err((message, code)),
            Error::SessionLost { session_id, .. } => {
                SessionLostError::new_err((message, session_id))
            }
            Error::Conflict { session_id, .. } => {
                SessionConflictError::new_err((message, session_id))
            }
            Error::NotFound { .. } => NotFoundError::new_err((message,)),
            Error::VectorStore { store, status, .. } => {
                VectorStoreError::new_err((message, store, status))
            }
            Error::Internal(_) => PyRuntimeError::new_err(message),
        }
    }
}
