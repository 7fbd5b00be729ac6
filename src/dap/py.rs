//! Python bindings for dynamic action providers: the provider's cache and its snapshots.
//!
//! A warm lookup is a synchronous call (`get_warm`): no awaitable round trip. A cold access
//! returns the caller's role: the first caller fetches (on its own event loop), every other
//! caller, on any loop or thread, waits on a job of its own loop's completion queue that
//! the fetch completes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::cache::{Access, FetchTicket, Outcome, SingleFlightCache, ttl_from_millis};
use super::index::ActionIndex;
use crate::runtime::CompletionQueue;

/// One provided action, with its listing metadata (built once per fetch).
struct Entry {
    action: Py<PyAny>,
    metadata: Py<PyAny>,
}

struct Snapshot {
    index: ActionIndex<Entry>,
    /// Which fetch produced it (lets Python cache derived views per fetch).
    generation: u64,
}

/// Why a fetch produced no value.
enum FetchError {
    /// The provider raised this exception.
    Raised(Py<PyAny>),
    /// The fetching task went away without finishing.
    Abandoned,
}

type Cache = SingleFlightCache<Snapshot, FetchError>;

/// One action type's actions as Python hands them over: `(type, [(name, action, metadata)])`.
type ProvidedGroup = (String, Vec<(String, Py<PyAny>, Py<PyAny>)>);

/// What one fetch of a provider returned, indexed.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct DapSnapshot {
    snapshot: Arc<Snapshot>,
}

#[pymethods]
impl DapSnapshot {
    /// The action of `action_type` named `name`, or None.
    fn get(&self, py: Python<'_>, action_type: &str, name: &str) -> Option<Py<PyAny>> {
        self.snapshot
            .index
            .get(action_type, name)
            .map(|e| e.action.clone_ref(py))
    }

    /// Listing metadata matching `pattern` (`*`, `prefix*` or an exact name).
    fn list_metadata<'py>(
        &self,
        py: Python<'py>,
        action_type: &str,
        pattern: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.snapshot
                .index
                .list(action_type, pattern)
                .into_iter()
                .map(|e| e.metadata.bind(py)),
        )
    }

    /// Every `(type, name, action, metadata)`, in provider order.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.snapshot
                .index
                .iter()
                .map(|(kind, name, e)| (kind, name, e.action.bind(py), e.metadata.bind(py))),
        )
    }

    #[getter]
    fn generation(&self) -> u64 {
        self.snapshot.generation
    }

    fn __len__(&self) -> usize {
        self.snapshot.index.len()
    }
}

/// Proof that this caller must fetch; pass it to `finish` or `fail`. If it is dropped
/// unused (its task vanished), waiting callers get a `RuntimeError` instead of hanging.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct FetchLease {
    cache: Arc<Cache>,
    ticket: Mutex<Option<FetchTicket>>,
}

impl FetchLease {
    fn take(&self) -> PyResult<FetchTicket> {
        self.ticket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this fetch was already finished"))
    }
}

impl Drop for FetchLease {
    fn drop(&mut self) {
        let ticket = self
            .ticket
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(ticket) = ticket {
            let _ = self
                .cache
                .finish(ticket, Err(FetchError::Abandoned), Instant::now());
        }
    }
}

/// A provider's cache: TTL as JS (`None`/0 → 3 s, negative → none), single-flight fetch.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct DapCache {
    cache: Arc<Cache>,
    generations: AtomicU64,
}

fn deliver_outcome(outcome: Outcome<Snapshot, FetchError>) -> crate::runtime::Deliver {
    Box::new(move |py| match outcome {
        Ok(snapshot) => Ok(Py::new(py, DapSnapshot { snapshot })?.into_any()),
        Err(error) => Err(match &*error {
            FetchError::Raised(exception) => PyErr::from_value(exception.bind(py).clone()),
            FetchError::Abandoned => {
                PyRuntimeError::new_err("the dynamic action provider fetch was abandoned")
            }
        }),
    })
}

#[pymethods]
impl DapCache {
    #[new]
    #[pyo3(signature = (ttl_millis = None))]
    fn new(ttl_millis: Option<i64>) -> Self {
        DapCache {
            cache: Arc::new(SingleFlightCache::new(ttl_from_millis(ttl_millis))),
            generations: AtomicU64::new(0),
        }
    }

    /// `(True, action-or-None)` on a fresh cache; `(False, None)` when it must be fetched.
    fn get_warm(&self, py: Python<'_>, action_type: &str, name: &str) -> (bool, Option<Py<PyAny>>) {
        match self.cache.fresh(Instant::now()) {
            Some(snapshot) => (
                true,
                snapshot
                    .index
                    .get(action_type, name)
                    .map(|e| e.action.clone_ref(py)),
            ),
            None => (false, None),
        }
    }

    /// The fresh snapshot, or None.
    fn fresh(&self) -> Option<DapSnapshot> {
        self.cache
            .fresh(Instant::now())
            .map(|snapshot| DapSnapshot { snapshot })
    }

    /// This caller's role: a `DapSnapshot` (fresh), a `FetchLease` (fetch now), or an int
    /// (a job of `queue` that completes with the snapshot, or raises the fetch's error).
    fn access(&self, py: Python<'_>, queue: &CompletionQueue) -> PyResult<Py<PyAny>> {
        let job = queue.job();
        let job_id = job.id();
        match self.cache.access(Instant::now(), move |outcome| {
            job.complete(deliver_outcome(outcome))
        }) {
            Access::Hit(snapshot) => Ok(Py::new(py, DapSnapshot { snapshot })?.into_any()),
            Access::Lead(ticket) => Ok(Py::new(
                py,
                FetchLease {
                    cache: Arc::clone(&self.cache),
                    ticket: Mutex::new(Some(ticket)),
                },
            )?
            .into_any()),
            Access::Follow => Ok(job_id.into_pyobject(py)?.into_any().unbind()),
        }
    }

    /// Ends a fetch with what the provider returned: `[(type, [(name, action, metadata)])]`.
    fn finish(&self, lease: &FetchLease, groups: Vec<ProvidedGroup>) -> PyResult<DapSnapshot> {
        let ticket = lease.take()?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let groups = groups
            .into_iter()
            .map(|(kind, actions)| {
                let entries = actions
                    .into_iter()
                    .map(|(name, action, metadata)| (name, Entry { action, metadata }))
                    .collect();
                (kind, entries)
            })
            .collect();
        let snapshot = Snapshot {
            index: ActionIndex::build(groups),
            generation,
        };
        match self.cache.finish(ticket, Ok(snapshot), Instant::now()) {
            Ok(snapshot) => Ok(DapSnapshot { snapshot }),
            Err(_) => Err(PyRuntimeError::new_err(
                "unreachable: a successful fetch failed",
            )),
        }
    }

    /// Ends a fetch that raised `error`: waiting callers get the same exception.
    fn fail(&self, lease: &FetchLease, error: Py<PyAny>) -> PyResult<()> {
        let ticket = lease.take()?;
        let _ = self
            .cache
            .finish(ticket, Err(FetchError::Raised(error)), Instant::now());
        Ok(())
    }

    /// Drops the cached actions; the next access fetches.
    fn invalidate(&self) {
        self.cache.invalidate();
    }
}
