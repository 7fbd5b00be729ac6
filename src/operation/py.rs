//! Python bindings for operations: validation of the JS `Operation` shape, and the poller
//! that paces `wait_for_operation`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;

use super::model::Operation;
use super::poll::{PollPolicy, Poller};

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
