//! Python bindings for the session stores. Converts and bridges; the logic lives in the core.
//!
//! Two classes with the same methods:
//! - `MemoryStoreCore` answers synchronously (no I/O, so no awaitable round trip).
//! - `DiskStoreCore` (file or SQLite) takes a `Ticket` and runs the work on the runtime's
//!   blocking pool, off the GIL; the result arrives through the ticket's completion queue
//!   (`genkit_parity/_runtime.py` turns that into an awaitable).
//!
//! Sessions cross the boundary as JSON text: messages as one JSON object each, state as any
//! JSON value, a whole session as JS `SessionData` JSON.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;

use super::data::{SessionData, parse_messages, parse_state};
use super::file::FileStore;
use super::id::{validate_session_id, validate_thread};
use super::memory::MemoryStore;
use super::sqlite::SqliteStore;
use super::store::SessionStore;
use crate::errors::Result;
use crate::runtime::Ticket;

/// The operations both classes expose, on owned arguments so they can move to a worker.
mod ops {
    use super::{Result, SessionData, SessionStore, parse_messages, parse_state};
    use super::{validate_session_id, validate_thread};

    pub fn load(store: &dyn SessionStore, session_id: &str) -> Result<Option<String>> {
        let id = validate_session_id(session_id)?;
        Ok(store.load(id)?.map(|data| data.to_json()))
    }

    pub fn save(store: &dyn SessionStore, session_id: &str, data_json: &str) -> Result<()> {
        let id = validate_session_id(session_id)?;
        store.save(&SessionData::from_json(id, data_json)?)
    }

    /// Whether a thread write extends the thread or replaces it.
    #[derive(Clone, Copy)]
    pub enum ThreadWrite {
        Append,
        Replace,
    }

    pub fn write_thread(
        store: &dyn SessionStore,
        session_id: &str,
        thread: &str,
        messages: Vec<String>,
        mode: ThreadWrite,
    ) -> Result<()> {
        let id = validate_session_id(session_id)?;
        let thread = validate_thread(thread)?;
        let messages = parse_messages(id, messages)?;
        match mode {
            ThreadWrite::Append => store.append(id, thread, &messages),
            ThreadWrite::Replace => store.replace_thread(id, thread, &messages),
        }
    }

    pub fn set_state(
        store: &dyn SessionStore,
        session_id: &str,
        state_json: Option<String>,
    ) -> Result<()> {
        let id = validate_session_id(session_id)?;
        store.set_state(id, parse_state(id, state_json)?.as_deref())
    }

    pub fn delete(store: &dyn SessionStore, session_id: &str) -> Result<bool> {
        store.delete(validate_session_id(session_id)?)
    }
}

/// In-memory session store core (synchronous).
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct MemoryStoreCore {
    store: MemoryStore,
}

#[pymethods]
impl MemoryStoreCore {
    #[new]
    fn new() -> Self {
        MemoryStoreCore {
            store: MemoryStore::new(),
        }
    }

    /// The session as `SessionData` JSON, or `None` for an unknown id.
    fn load(&self, py: Python<'_>, session_id: &str) -> PyResult<Option<String>> {
        Ok(py.detach(|| ops::load(&self.store, session_id))?)
    }

    fn save(&self, py: Python<'_>, session_id: &str, data_json: &str) -> PyResult<()> {
        Ok(py.detach(|| ops::save(&self.store, session_id, data_json))?)
    }

    fn append(
        &self,
        py: Python<'_>,
        session_id: &str,
        thread: &str,
        messages: Vec<String>,
    ) -> PyResult<()> {
        Ok(py.detach(|| {
            ops::write_thread(
                &self.store,
                session_id,
                thread,
                messages,
                ops::ThreadWrite::Append,
            )
        })?)
    }

    fn replace_thread(
        &self,
        py: Python<'_>,
        session_id: &str,
        thread: &str,
        messages: Vec<String>,
    ) -> PyResult<()> {
        Ok(py.detach(|| {
            ops::write_thread(
                &self.store,
                session_id,
                thread,
                messages,
                ops::ThreadWrite::Replace,
            )
        })?)
    }

    #[pyo3(signature = (session_id, state_json))]
    fn set_state(
        &self,
        py: Python<'_>,
        session_id: &str,
        state_json: Option<String>,
    ) -> PyResult<()> {
        Ok(py.detach(|| ops::set_state(&self.store, session_id, state_json))?)
    }

    fn delete(&self, py: Python<'_>, session_id: &str) -> PyResult<bool> {
        Ok(py.detach(|| ops::delete(&self.store, session_id))?)
    }

    fn __len__(&self) -> usize {
        self.store.len()
    }
}

/// File or SQLite session store core: every operation runs off the GIL and reports through a ticket.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct DiskStoreCore {
    store: Arc<dyn SessionStore>,
    kind: &'static str,
    location: PathBuf,
}

#[pymethods]
impl DiskStoreCore {
    /// A file store: one append-only log per session under `directory`.
    #[staticmethod]
    #[pyo3(signature = (directory, /, *, durable = false))]
    fn file(py: Python<'_>, directory: PathBuf, durable: bool) -> PyResult<Self> {
        let store = py.detach(|| FileStore::open(directory.clone(), durable))?;
        Ok(DiskStoreCore {
            store: Arc::new(store),
            kind: "file",
            location: directory,
        })
    }

    /// A SQLite store in WAL mode at `path`.
    #[staticmethod]
    #[pyo3(signature = (path, /, *, durable = false))]
    fn sqlite(py: Python<'_>, path: PathBuf, durable: bool) -> PyResult<Self> {
        let store = py.detach(|| SqliteStore::open(path.clone(), durable))?;
        Ok(DiskStoreCore {
            store: Arc::new(store),
            kind: "sqlite",
            location: path,
        })
    }

    /// `"file"` or `"sqlite"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// The directory (file store) or database path (SQLite store).
    #[getter]
    fn location(&self) -> PathBuf {
        self.location.clone()
    }

    fn load(&self, ticket: &Ticket, session_id: String) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || ops::load(&*store, &session_id))
    }

    fn save(&self, ticket: &Ticket, session_id: String, data_json: String) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || ops::save(&*store, &session_id, &data_json))
    }

    fn append(
        &self,
        ticket: &Ticket,
        session_id: String,
        thread: String,
        messages: Vec<String>,
    ) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || {
            ops::write_thread(
                &*store,
                &session_id,
                &thread,
                messages,
                ops::ThreadWrite::Append,
            )
        })
    }

    fn replace_thread(
        &self,
        ticket: &Ticket,
        session_id: String,
        thread: String,
        messages: Vec<String>,
    ) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || {
            ops::write_thread(
                &*store,
                &session_id,
                &thread,
                messages,
                ops::ThreadWrite::Replace,
            )
        })
    }

    #[pyo3(signature = (ticket, session_id, state_json))]
    fn set_state(
        &self,
        ticket: &Ticket,
        session_id: String,
        state_json: Option<String>,
    ) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || ops::set_state(&*store, &session_id, state_json))
    }

    fn delete(&self, ticket: &Ticket, session_id: String) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || ops::delete(&*store, &session_id))
    }
}

/// Validates a session id (see the rules in `id.rs`) and returns it trimmed.
#[pyfunction]
#[pyo3(name = "validate_session_id")]
pub fn py_validate_session_id(session_id: &str) -> PyResult<String> {
    Ok(validate_session_id(session_id)?.to_owned())
}
