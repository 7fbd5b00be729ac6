//! The process's one tokio runtime, and the bridge from blocking core work to Python awaitables.
//!
//! The runtime is pyo3-async-runtimes' lazily created global one, so a process that forks
//! before first use gets a fresh runtime in the child.

use pyo3::prelude::*;

use crate::errors::Error;

/// Runs blocking core work on tokio's blocking pool and returns an awaitable for its result.
///
/// The GIL is not held while the work runs. A panic in the work becomes a `RuntimeError`,
/// never an abort. Cancelling the awaitable abandons the result, but work already started
/// runs to completion, so a write is never left half-done by a cancelled caller.
pub fn blocking_awaitable<'py, T, F>(py: Python<'py>, work: F) -> PyResult<Bound<'py, PyAny>>
where
    F: FnOnce() -> crate::errors::Result<T> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result.map_err(PyErr::from),
            Err(join_error) => Err(Error::Internal(describe_join_error(join_error)).into()),
        }
    })
}

fn describe_join_error(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return format!("worker task was cancelled: {error}");
    }
    let payload = error.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("worker panicked: {text}")
}
