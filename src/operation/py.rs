//! Python bindings for operations: validation of the JS `Operation` shape, and the poller
//! that paces `wait_for_operation`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;

use super::model::Operation;
use super::poll::{PollPolicy, Poller};
use super::store::{OperationStore, PostgresOperationStore, RedisOperationStore};
use crate::engines::postgres::PgOptions;
use crate::engines::redis::RedisOptions;
use crate::engines::{RetryPolicy, positive_seconds};
use crate::runtime::Ticket;

/// Validates an operation given as JSON; returns it normalised (nulls dropped).
#[pyfunction]
pub fn normalize_operation(json: &str) -> PyResult<String> {
    Ok(Operation::from_json(json)?.to_json())
}

/// The state of one `wait_for_operation`: backoff, jitter, deadline, and a check count.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct OperationPoller {
    poller: Mutex<Poller>,
    checks: AtomicU64,
}

#[pymethods]
impl OperationPoller {
    #[new]
    #[pyo3(signature = (*, interval, max_interval, multiplier = 2.0, jitter = 0.2, timeout = None))]
    fn new(
        interval: f64,
        max_interval: f64,
        multiplier: f64,
        jitter: f64,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let policy = PollPolicy::from_seconds(interval, max_interval, multiplier, jitter, timeout)?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (std::ptr::from_ref(&policy) as u64);
        Ok(OperationPoller {
            poller: Mutex::new(Poller::new(policy, seed)),
            checks: AtomicU64::new(0),
        })
    }

    /// Counts one finished check.
    fn record_check(&self) {
        self.checks.fetch_add(1, Ordering::Relaxed);
    }

    /// Seconds to sleep before the next check, or `None` when the deadline has come.
    fn next_delay(&self) -> Option<f64> {
        let mut poller = self.poller.lock().unwrap_or_else(PoisonError::into_inner);
        poller.next_delay(Instant::now()).map(|d| d.as_secs_f64())
    }

    /// How many checks were observed.
    #[getter]
    fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Seconds since the poller was created.
    #[getter]
    fn elapsed(&self) -> f64 {
        let poller = self.poller.lock().unwrap_or_else(PoisonError::into_inner);
        poller.elapsed(Instant::now()).as_secs_f64()
    }
}

/// A Redis or PostgreSQL operation store core; every call runs off the GIL through a ticket.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct OperationStoreCore {
    store: std::sync::Arc<dyn OperationStore>,
    /// How long a check's lease on the provider lasts (`None`: no leases).
    lease: Option<std::time::Duration>,
}

fn lease_seconds(lease: Option<f64>) -> PyResult<Option<std::time::Duration>> {
    Ok(lease
        .map(|seconds| positive_seconds("lease", seconds))
        .transpose()?)
}

fn ttl_seconds(ttl: f64) -> PyResult<std::time::Duration> {
    Ok(positive_seconds("ttl", ttl)?)
}

fn retry(timeout: f64) -> PyResult<RetryPolicy> {
    Ok(RetryPolicy::from_timeout(timeout)?)
}

#[pymethods]
impl OperationStoreCore {
    #[staticmethod]
    #[pyo3(signature = (url, /, *, prefix, ttl, timeout, lease = None))]
    fn redis(
        url: &str,
        prefix: &str,
        ttl: f64,
        timeout: f64,
        lease: Option<f64>,
    ) -> PyResult<Self> {
        let options = RedisOptions {
            retry: retry(timeout)?,
            // An attempt that gets no answer (a partition) gives up within the timeout too
            // (at least 1 s, as for PostgreSQL).
            response_timeout: Duration::from_secs_f64(timeout.clamp(1.0, 10.0)),
            ..RedisOptions::default()
        };
        let store = RedisOperationStore::open(url, prefix, ttl_seconds(ttl)?, options)?;
        Ok(OperationStoreCore {
            store: std::sync::Arc::new(store),
            lease: lease_seconds(lease)?,
        })
    }

    #[staticmethod]
    #[pyo3(signature = (dsn, /, *, table_prefix, ttl, timeout, lease = None))]
    fn postgres(
        dsn: &str,
        table_prefix: &str,
        ttl: f64,
        timeout: f64,
        lease: Option<f64>,
    ) -> PyResult<Self> {
        let options = PgOptions {
            retry: retry(timeout)?,
            attempt_timeout: Duration::from_secs_f64(timeout.clamp(1.0, 10.0)),
            ..PgOptions::default()
        };
        let store = PostgresOperationStore::open(dsn, table_prefix, ttl_seconds(ttl)?, options)?;
        Ok(OperationStoreCore {
            store: std::sync::Arc::new(store),
            lease: lease_seconds(lease)?,
        })
    }

    /// Stores an operation (JSON) unless it would revert a done one; resolves to the stored JSON.
    fn put(&self, ticket: &Ticket, operation_json: String) -> PyResult<()> {
        let store = std::sync::Arc::clone(&self.store);
        ticket.run_blocking(move || store.put(&Operation::from_json(&operation_json)?))
    }

    /// Resolves to the stored operation JSON, or `None` for an unknown or expired id.
    fn get(&self, ticket: &Ticket, id: String) -> PyResult<()> {
        let store = std::sync::Arc::clone(&self.store);
        ticket.run_blocking(move || store.get(&id))
    }

    /// The lease period in seconds, or `None` when checks take no lease.
    #[getter]
    fn lease(&self) -> Option<f64> {
        self.lease.map(|d| d.as_secs_f64())
    }

    /// Resolves to whether this caller may poll the provider for `id` now: always `True`
    /// without leases; with them, `True` for one caller per lease period.
    fn try_lease(&self, ticket: &Ticket, id: String) -> PyResult<()> {
        let store = std::sync::Arc::clone(&self.store);
        let lease = self.lease;
        ticket.run_blocking(move || match lease {
            None => Ok(true),
            Some(lease) => store.try_lease(&id, lease),
        })
    }
}
