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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde_json::value::RawValue;

use super::data::{SessionData, StoredSession, parse_messages, parse_state};
use super::file::FileStore;
use super::id::{validate_session_id, validate_thread};
use super::memory::MemoryStore;
use super::postgres::{MessageBatch, PostgresStore, ReadSession};
use super::py_messages::{MessageBuilder, Suspended};
use super::redis::RedisStore;
use super::sqlite::SqliteStore;
use super::store::{
    Commit, Committed, OnConflict, SessionStore, StateWrite, ThreadDelta, ThreadWriteKind,
};
use crate::engines::postgres::PgOptions;
use crate::engines::redis::RedisOptions;
use crate::engines::{RetryPolicy, positive_seconds};
use crate::errors::{Error, Result};
use crate::runtime::Ticket;

/// The operations both classes expose, on owned arguments so they can move to a worker.
mod ops {
    use super::{Commit, Error, PyThreadDelta, StateWrite, ThreadDelta, ThreadWriteKind};
    use super::{Result, SessionData, SessionStore, parse_messages, parse_state};
    use super::{validate_session_id, validate_thread};

    /// The session as `SessionData` JSON with its version, or `None` for an unknown id.
    pub fn load_versioned(
        store: &dyn SessionStore,
        session_id: &str,
    ) -> Result<Option<(String, u64)>> {
        let id = validate_session_id(session_id)?;
        Ok(store
            .load_versioned(id)?
            .map(|(data, version)| (data.to_json(), version)))
    }

    /// Returns the version written.
    pub fn save(store: &dyn SessionStore, session_id: &str, data_json: &str) -> Result<u64> {
        let id = validate_session_id(session_id)?;
        store.save(&SessionData::from_json(id, data_json)?)
    }

    pub fn delete(store: &dyn SessionStore, session_id: &str) -> Result<bool> {
        store.delete(validate_session_id(session_id)?)
    }

    /// One turn's writes as the bindings receive them, validated and parsed (two messages
    /// a turn: cheaper on the calling thread than a hop to a worker). `state_mode` is
    /// `"keep"`, `"merge"` (state_json: an object of top-level keys) or `"replace"`.
    pub fn parse_commit(
        session_id: &str,
        turn_id: Option<String>,
        expected_version: u64,
        threads: Vec<PyThreadDelta>,
        state_mode: &str,
        state_json: Option<String>,
    ) -> Result<Commit> {
        let threads = threads
            .into_iter()
            .map(|(thread, loaded_len, replace, messages)| {
                Ok(ThreadDelta {
                    thread: validate_thread(&thread)?.to_owned(),
                    loaded_len,
                    kind: if replace {
                        ThreadWriteKind::Replace
                    } else {
                        ThreadWriteKind::Append
                    },
                    messages: parse_messages(session_id, messages)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let state = match (state_mode, parse_state(session_id, state_json)?) {
            ("keep", _) => StateWrite::Keep,
            ("replace", state) => StateWrite::Replace(state),
            ("merge", Some(patch)) => StateWrite::Merge(patch),
            (mode, _) => {
                return Err(Error::InvalidArgument {
                    detail: format!("invalid state_mode {mode:?} (or a merge without a patch)"),
                });
            }
        };
        Ok(Commit {
            turn_id,
            expected_version,
            threads,
            state,
        })
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

    /// `(SessionData JSON, version)`, or `None` for an unknown id.
    fn load_versioned(&self, py: Python<'_>, session_id: &str) -> PyResult<Option<(String, u64)>> {
        Ok(py.detach(|| ops::load_versioned(&self.store, session_id))?)
    }

    /// Returns the version written.
    fn save(&self, py: Python<'_>, session_id: &str, data_json: &str) -> PyResult<u64> {
        Ok(py.detach(|| ops::save(&self.store, session_id, data_json))?)
    }

    /// One turn's writes (see `SharedStoreCore.commit`); returns what Python's `Committed`
    /// is built from.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (session_id, *, turn_id, expected_version, threads, state_mode, state_json))]
    fn commit(
        &self,
        py: Python<'_>,
        session_id: &str,
        turn_id: Option<String>,
        expected_version: u64,
        threads: Vec<PyThreadDelta>,
        state_mode: &str,
        state_json: Option<String>,
    ) -> PyResult<PyCommitted> {
        let id = validate_session_id(session_id)?;
        let commit = ops::parse_commit(
            id,
            turn_id,
            expected_version,
            threads,
            state_mode,
            state_json,
        )?;
        Ok(py.detach(|| self.store.commit(id, &commit).map(py_committed))?)
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

    /// `(SessionData JSON, version)`, or `None` for an unknown id.
    fn load_versioned(&self, ticket: &Ticket, session_id: String) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || ops::load_versioned(&*store, &session_id))
    }

    fn save(&self, ticket: &Ticket, session_id: String, data_json: String) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || ops::save(&*store, &session_id, &data_json))
    }

    /// One turn's writes (see `SharedStoreCore.commit`), on the blocking pool.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (ticket, session_id, *, turn_id, expected_version, threads, state_mode, state_json))]
    fn commit(
        &self,
        ticket: &Ticket,
        session_id: String,
        turn_id: Option<String>,
        expected_version: u64,
        threads: Vec<PyThreadDelta>,
        state_mode: String,
        state_json: Option<String>,
    ) -> PyResult<()> {
        let id = validate_session_id(&session_id)?.to_owned();
        let store = Arc::clone(&self.store);
        // Parsed on the worker: a replaced thread can be the whole history.
        ticket.run_blocking(move || {
            let commit = ops::parse_commit(
                &id,
                turn_id,
                expected_version,
                threads,
                &state_mode,
                state_json,
            )?;
            store.commit(&id, &commit).map(py_committed)
        })
    }

    fn delete(&self, ticket: &Ticket, session_id: String) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || ops::delete(&*store, &session_id))
    }
}

/// A stored session read on a worker; becomes `({'id', 'state'?, 'threads'}, version)` on
/// the event loop, where each message is built straight from its text (see
/// `py_messages.rs`: half the time `json.loads` of the messages takes there).
struct ParsedSession {
    id: String,
    version: u64,
    state: Option<String>,
    threads: Vec<(String, Vec<String>)>,
}

/// From how many messages a loaded session's texts are freed off the event loop.
const FREE_ELSEWHERE: usize = 1000;

/// Drops `texts` (holding `count(&texts)` message texts) on a runtime thread when there are
/// many, not on the event loop: one free each, into the allocator arena of the thread that
/// read them (~170 µs for 10k on the loop).
fn free_elsewhere<T: Send + 'static>(texts: T, count: impl FnOnce(&T) -> usize) {
    if count(&texts) >= FREE_ELSEWHERE {
        crate::runtime::runtime().spawn(async move { drop(texts) });
    }
}

/// A stored state, checked: an object or array must be valid JSON (a state that is neither,
/// Python's `json.loads` reads, and raises on, itself).
fn checked_state(session_id: &str, state: Option<String>) -> Result<Option<String>> {
    Ok(match state {
        Some(text) if text.trim_start().starts_with(['{', '[']) => Some(
            RawValue::from_string(text)
                .map_err(|_| Error::corrupt(session_id, "state", "not valid JSON"))?
                .get()
                .to_owned(),
        ),
        other => other,
    })
}

impl ParsedSession {
    fn parse(session_id: &str, stored: StoredSession) -> Result<Self> {
        Ok(ParsedSession {
            id: session_id.to_owned(),
            version: stored.version,
            state: checked_state(session_id, stored.state)?,
            threads: stored.threads,
        })
    }
}

/// The fewest messages of a PostgreSQL load built as one batch while the rows arrive.
/// Each batch costs a wake-up of the event loop and a young-generation collection once the
/// collector is back on: fixed batches of 1000 ran gen-1 collections of everything built so
/// far (~1 ms) and a 10k-message load was no faster than with no batches (median 12.9 vs
/// 11.6 ms); fixed batches of 2500-5000 gained 1-2 ms (ours_turns at 10k, interleaved).
const LOAD_BATCH: usize = 2000;

/// The messages of a PostgreSQL load built so far, on the event loop: per thread (as the
/// rows came) its list, in arrival order; and the messages that were not valid, by thread
/// and seq. Only touched on the event loop's thread, with the GIL.
#[derive(Default)]
struct Partial {
    attempt: u32,
    lists: Vec<(Arc<str>, Py<PyList>)>,
    strings: Option<Suspended>,
    invalid: Vec<(Arc<str>, i32, PyErr)>,
}

fn lock(partial: &Mutex<Partial>) -> std::sync::MutexGuard<'_, Partial> {
    partial.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Partial {
    /// Builds one batch of attempt `attempt` (a retried read starts the lists over).
    fn add(&mut self, py: Python<'_>, session_id: &str, attempt: u32, batch: MessageBatch) {
        if attempt != self.attempt {
            *self = Partial {
                attempt,
                ..Partial::default()
            };
        }
        let built = without_gc(py, |py| {
            let loads = py
                .import(intern!(py, "json"))?
                .getattr(intern!(py, "loads"))?;
            let mut builder = MessageBuilder::resume(py, loads, self.strings.take());
            let mut at = usize::MAX;
            for (thread, seq, text) in &batch {
                let (thread, seq) = (Arc::clone(thread), *seq);
                if self.lists.get(at).is_none_or(|(name, _)| *name != thread) {
                    at = match self.lists.iter().position(|(name, _)| *name == thread) {
                        Some(at) => at,
                        None => {
                            self.lists
                                .push((Arc::clone(&thread), PyList::empty(py).unbind()));
                            self.lists.len() - 1
                        }
                    };
                }
                let list = self.lists[at].1.bind(py);
                // The seq is the message's index once the thread is checked to have no gap.
                match builder.message(session_id, &thread, seq as usize, text) {
                    Ok(message) => list.append(message)?,
                    Err(err) => {
                        // A place holder keeps the arrival numbers; the load fails anyway.
                        list.append(py.None())?;
                        self.invalid.push((thread, seq, err));
                    }
                }
            }
            self.strings = Some(builder.suspend());
            Ok(())
        });
        free_elsewhere(batch, |batch| batch.len());
        if let Err(err) = built {
            self.invalid.push(("".into(), -1, err));
        }
    }
}

/// A PostgreSQL load read (its messages built by [`Partial`] as they arrived); becomes
/// `({'id', 'state'?, 'threads'}, version)` as [`ParsedSession`] does.
struct StreamedSession {
    id: String,
    state: Option<String>,
    read: ReadSession,
    partial: Arc<Mutex<Partial>>,
}

impl<'py> IntoPyObject<'py> for StreamedSession {
    type Target = PyTuple;
    type Output = Bound<'py, PyTuple>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let mut partial = std::mem::take(&mut *lock(&self.partial));
        if partial.attempt != self.read.attempt {
            partial = Partial::default(); // this attempt read no message
        }
        let threads = &self.read.threads;
        // The error the whole load would raise building in order: the first thread's, its
        // lowest seq (a failure of the build itself first).
        let place = |thread: &str| threads.iter().position(|(name, _)| *name == *thread);
        if let Some(at) = (0..partial.invalid.len())
            .min_by_key(|&i| (place(&partial.invalid[i].0), partial.invalid[i].1))
        {
            return Err(partial.invalid.swap_remove(at).2);
        }
        let state = state_value(py, self.state.as_deref())?;
        let lists = PyDict::new(py);
        for (name, arrival) in threads {
            let list = match partial.lists.iter().position(|(n, _)| **n == **name) {
                Some(at) => partial.lists.swap_remove(at).1.into_bound(py),
                None => PyList::empty(py),
            };
            let list = match arrival {
                None => list,
                Some(arrival) => PyList::new(
                    py,
                    arrival
                        .iter()
                        .map(|&i| list.get_item(i))
                        .collect::<PyResult<Vec<_>>>()?,
                )?,
            };
            lists.set_item(name, list)?;
        }
        loaded_session(py, &self.id, state, lists, self.read.version)
    }
}

/// A loaded session's state text as Python's `json.loads` reads it (and raises on).
fn state_value<'py>(py: Python<'py>, state: Option<&str>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(text) = state else { return Ok(None) };
    let loads = py
        .import(intern!(py, "json"))?
        .getattr(intern!(py, "loads"))?;
    loads.call1((text,)).map(Some)
}

/// What `load_versioned` resolves to: `({'id', 'state'?, 'threads'}, version)`.
fn loaded_session<'py>(
    py: Python<'py>,
    id: &str,
    state: Option<Bound<'py, PyAny>>,
    threads: Bound<'py, PyDict>,
    version: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    let data = PyDict::new(py);
    data.set_item(intern!(py, "id"), id)?;
    if let Some(state) = state {
        data.set_item(intern!(py, "state"), state)?;
    }
    data.set_item(intern!(py, "threads"), threads)?;
    (data, version).into_pyobject(py)
}

/// Runs `build` with Python's cyclic collector off (as it was before, after). The objects
/// built are acyclic, and this thread holds the GIL throughout, so the collector has nothing
/// to find in them; left on, the tens of thousands of new dicts and lists of a long session
/// trigger full collections that walk every live object of the process.
fn without_gc<'py, T>(
    py: Python<'py>,
    build: impl FnOnce(Python<'py>) -> PyResult<T>,
) -> PyResult<T> {
    let gc = py.import(intern!(py, "gc"))?;
    let was_enabled = gc.call_method0(intern!(py, "isenabled"))?.is_truthy()?;
    if was_enabled {
        gc.call_method0(intern!(py, "disable"))?;
    }
    let built = build(py);
    if was_enabled {
        gc.call_method0(intern!(py, "enable"))?;
    }
    built
}

impl<'py> IntoPyObject<'py> for ParsedSession {
    type Target = PyTuple;
    type Output = Bound<'py, PyTuple>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        // (See `without_gc`: left on, the collector's full collections were the spread of
        // a 10k-message load in a busy process.)
        let built = without_gc(py, |py| self.build(py));
        free_elsewhere(self.threads, |threads| {
            threads.iter().map(|(_, texts)| texts.len()).sum()
        });
        built
    }
}

impl ParsedSession {
    fn build<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let state = state_value(py, self.state.as_deref())?;
        let loads = py
            .import(intern!(py, "json"))?
            .getattr(intern!(py, "loads"))?;
        let mut builder = MessageBuilder::new(py, loads);
        let threads = PyDict::new(py);
        for (name, texts) in &self.threads {
            let messages = texts
                .iter()
                .enumerate()
                .map(|(i, text)| builder.message(&self.id, name, i, text))
                .collect::<PyResult<Vec<_>>>()?;
            threads.set_item(name, PyList::new(py, messages)?)?;
        }
        loaded_session(py, &self.id, state, threads, self.version)
    }
}

/// Validates a session id (see the rules in `id.rs`) and returns it trimmed.
#[pyfunction]
#[pyo3(name = "validate_session_id")]
pub fn py_validate_session_id(session_id: &str) -> PyResult<String> {
    Ok(validate_session_id(session_id)?.to_owned())
}

/// Redis or PostgreSQL session store core: shared by many processes, with versioned,
/// deduplicated commits. Every operation runs off the GIL and reports through a ticket.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct SharedStoreCore {
    store: Arc<dyn SessionStore>,
    engine: Engine,
    target: String,
}

/// The same store as `SharedStoreCore::store`, by engine. Commits and loads of either
/// engine (one round trip each) run as tasks on the runtime, with no blocking-pool thread
/// parked in `block_on` in between.
enum Engine {
    Redis(Arc<RedisStore>),
    Postgres(Arc<PostgresStore>),
}

/// One thread's part of a commit as Python passes it: (thread, loaded_len, replace, messages).
type PyThreadDelta = (String, usize, bool, Vec<String>);
/// A commit's outcome as Python receives it: (version, duplicate, [(thread, unseen)], state).
type PyCommitted = (u64, bool, Vec<(String, Vec<String>)>, Option<String>);

fn ttl_from(ttl: Option<f64>) -> Result<Option<Duration>> {
    ttl.map(|seconds| positive_seconds("ttl", seconds))
        .transpose()
}

#[pymethods]
impl SharedStoreCore {
    /// A Redis store at `url` under key prefix `prefix`.
    #[staticmethod]
    #[pyo3(signature = (url, /, *, prefix, ttl, on_conflict, timeout))]
    fn redis(
        url: &str,
        prefix: &str,
        ttl: Option<f64>,
        on_conflict: &str,
        timeout: f64,
    ) -> PyResult<Self> {
        let options = RedisOptions {
            retry: RetryPolicy::from_timeout(timeout)?,
            // An attempt that gets no answer (a partition) gives up within the timeout too
            // (at least 1 s, as for PostgreSQL).
            response_timeout: Duration::from_secs_f64(timeout.clamp(1.0, 10.0)),
            ..RedisOptions::default()
        };
        let store = RedisStore::open(
            url,
            prefix,
            ttl_from(ttl)?,
            OnConflict::parse(on_conflict)?,
            options,
        )?;
        let store = Arc::new(store);
        Ok(SharedStoreCore {
            target: store.target().to_owned(),
            store: Arc::clone(&store) as Arc<dyn SessionStore>,
            engine: Engine::Redis(store),
        })
    }

    /// A PostgreSQL store on `dsn` with tables named `<table_prefix>sessions`, ...
    #[staticmethod]
    #[pyo3(signature = (dsn, /, *, table_prefix, ttl, on_conflict, timeout, pool_size))]
    fn postgres(
        dsn: &str,
        table_prefix: &str,
        ttl: Option<f64>,
        on_conflict: &str,
        timeout: f64,
        pool_size: usize,
    ) -> PyResult<Self> {
        let options = PgOptions {
            pool_size,
            retry: RetryPolicy::from_timeout(timeout)?,
            // One attempt that gets no answer (a partition) gives up within the timeout
            // too, not after the default 10 s (at least 1 s, for large first saves).
            attempt_timeout: Duration::from_secs_f64(timeout.clamp(1.0, 10.0)),
            ..PgOptions::default()
        };
        let store = PostgresStore::open(
            dsn,
            table_prefix,
            ttl_from(ttl)?,
            OnConflict::parse(on_conflict)?,
            options,
        )?;
        let store = Arc::new(store);
        Ok(SharedStoreCore {
            target: store.target().to_owned(),
            store: Arc::clone(&store) as Arc<dyn SessionStore>,
            engine: Engine::Postgres(store),
        })
    }

    /// `"redis"` or `"postgres"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.engine {
            Engine::Redis(_) => "redis",
            Engine::Postgres(_) => "postgres",
        }
    }

    /// The server, as `host:port`.
    #[getter]
    fn target(&self) -> String {
        self.target.clone()
    }

    /// `(SessionData dict, version)`, or `None` for an unknown id: read in one round trip
    /// off the GIL; the Python objects are built once, on the event loop.
    fn load_versioned(&self, ticket: &Ticket, session_id: String) -> PyResult<()> {
        let id = validate_session_id(&session_id)?.to_owned();
        match &self.engine {
            // A task on the runtime: the rows reach the parser on the thread that reads
            // them, with no blocking-pool thread in between.
            // The messages are built on the event loop batch by batch as the rows arrive,
            // while the server still sends the rest (a 10k-message read takes ~3-5 ms, the
            // build ~3 ms: one after the other otherwise).
            Engine::Postgres(store) => {
                let store = Arc::clone(store);
                let partial = Arc::new(Mutex::new(Partial::default()));
                ticket.run_async_with_steps(move |steps| async move {
                    let building = Arc::clone(&partial);
                    let sid: Arc<str> = id.as_str().into();
                    // Whether the loop is done with the last batch: the next one is what
                    // arrived meanwhile, so the loop keeps pace with the rows and the last
                    // batch, built after the last row, is small.
                    let idle = Arc::new(AtomicBool::new(true));
                    let ready = {
                        let idle = Arc::clone(&idle);
                        move || idle.swap(false, Ordering::AcqRel)
                    };
                    let read = store
                        .read_in_batches(&id, LOAD_BATCH, ready, move |attempt, batch| {
                            let building = Arc::clone(&building);
                            let sid = Arc::clone(&sid);
                            let idle = Arc::clone(&idle);
                            steps.send(move |py| {
                                lock(&building).add(py, &sid, attempt, batch);
                                idle.store(true, Ordering::Release);
                            });
                        })
                        .await?;
                    read.map(|mut read| {
                        Ok(StreamedSession {
                            state: checked_state(&id, read.state.take())?,
                            id,
                            read,
                            partial,
                        })
                    })
                    .transpose()
                })
            }
            // One round trip, as a task (as a Redis commit).
            Engine::Redis(store) => {
                let store = Arc::clone(store);
                ticket.run_async(async move {
                    store
                        .load_texts_async(&id)
                        .await?
                        .map(|stored| ParsedSession::parse(&id, stored))
                        .transpose()
                })
            }
        }
    }

    /// Deletes expired sessions now (PostgreSQL; Redis expires keys by itself); resolves
    /// to how many were deleted.
    fn sweep_expired(&self, ticket: &Ticket) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || store.sweep_expired())
    }

    fn save(&self, ticket: &Ticket, session_id: String, data_json: String) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || ops::save(&*store, &session_id, &data_json))
    }

    fn delete(&self, ticket: &Ticket, session_id: String) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || ops::delete(&*store, &session_id))
    }

    /// One turn's writes. `state_mode` is `"keep"`, `"merge"` (state_json: an object of
    /// top-level keys) or `"replace"`. Returns `(version, duplicate, [(thread, unseen
    /// messages)], state after)`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (ticket, session_id, *, turn_id, expected_version, threads, state_mode, state_json))]
    fn commit(
        &self,
        ticket: &Ticket,
        session_id: String,
        turn_id: Option<String>,
        expected_version: u64,
        threads: Vec<PyThreadDelta>,
        state_mode: String,
        state_json: Option<String>,
    ) -> PyResult<()> {
        let id = validate_session_id(&session_id)?.to_owned();
        // Parsed in the commit's task, off the event loop: a replaced thread can be the
        // whole history.
        let parse = {
            let id = id.clone();
            move || {
                ops::parse_commit(
                    &id,
                    turn_id,
                    expected_version,
                    threads,
                    &state_mode,
                    state_json,
                )
            }
        };
        match &self.engine {
            Engine::Redis(store) => {
                let store = Arc::clone(store);
                ticket.run_async(async move {
                    let commit = parse()?;
                    store.commit_async(&id, &commit).await.map(py_committed)
                })
            }
            Engine::Postgres(store) => {
                let store = Arc::clone(store);
                ticket.run_async(async move {
                    let commit = parse()?;
                    store.commit_versioned(&id, &commit).await.map(py_committed)
                })
            }
        }
    }
}

/// A commit's outcome as Python receives it (see [`PyCommitted`]).
fn py_committed(done: Committed) -> PyCommitted {
    (
        done.version,
        done.duplicate,
        done.threads
            .into_iter()
            .map(|(thread, messages)| {
                (
                    thread,
                    messages.into_iter().map(|m| m.get().to_owned()).collect(),
                )
            })
            .collect(),
        done.state.map(|s| s.get().to_owned()),
    )
}
