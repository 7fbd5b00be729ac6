//! The process's one tokio runtime, and the bridge that hands results back to asyncio.
//!
//! Why not `pyo3_async_runtimes::future_into_py`: it completes the Python future by
//! attaching to the interpreter from a runtime thread. When that races with interpreter
//! shutdown (a script whose last await just finished), CPython aborts the process with
//! "Fatal Python error: PyGILState_Release". Our bridge never touches Python from a runtime
//! thread: a finished job parks its result in a queue and writes one byte to a pipe that the
//! event loop watches (`loop.add_reader`); the loop thread, which holds the GIL anyway,
//! drains the queue and resolves the futures (`genkit_parity/_runtime.py`).
//!
//! The runtime is created lazily and again after `fork()`: a child never inherits a runtime
//! whose threads did not survive the fork.

use std::future::Future;
use std::io::{PipeReader, PipeWriter, Write};
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::timer::{FiredSink, Timers};

use crate::errors::Error;

/// The runtime for this process (rebuilt in a forked child).
pub fn runtime() -> &'static Runtime {
    static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    match *slot {
        Some((owner, runtime)) if owner == pid => runtime,
        _ => {
            // A runtime inherited through fork() has no threads; it is leaked, not dropped,
            // because dropping it would wait for threads that no longer exist.
            let runtime: &'static Runtime = Box::leak(Box::new(build_runtime()));
            *slot = Some((pid, runtime));
            runtime
        }
    }
}

/// One worker thread: the runtime only waits on sockets for an event loop that is itself
/// one thread (CPU work runs on the blocking pool or the scan pool), and every extra worker
/// adds hand-offs between threads to a round trip. With two, a Redis commit's request, reply
/// and completion could each wake a different idle thread; on the VMs measured here each
/// such wake-up of an idle CPU cost 30-40 µs, and per-turn saves varied 130-310 µs with
/// two workers against 130-200 µs with one (interleaved in one run, 2-core machine).
fn build_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(64)
        .thread_name("genkit-parity")
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start the genkit-parity runtime: {e}"))
}

/// Turns a finished job's output into a Python object, on the event loop's thread.
pub type Deliver = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// Part of a running job's work handed to the event loop's thread (building part of its
/// result as it arrives); run for its effect, in order, before the job's result.
pub type Step = Box<dyn FnOnce(Python<'_>) + Send>;

/// What a queue holds for its event loop.
enum Queued {
    Done(u64, Deliver),
    Step(Step),
}

/// A job of some queue that Rust code completes later, from any thread.
pub struct JobHandle {
    shared: Arc<Shared>,
    id: u64,
}

impl JobHandle {
    /// The id the Python side keys its future with.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Hands the job's result to its event loop.
    pub fn complete(self, deliver: Deliver) {
        self.shared.complete(self.id, deliver);
    }
}

struct Shared {
    /// Finished jobs (and steps) not yet handed to Python, and whether a wake-up byte is
    /// pending.
    ready: Mutex<(Vec<Queued>, bool)>,
    wake: Mutex<PipeWriter>,
    read_end: PipeReader,
    next_id: AtomicU64,
    timers: Timers,
}

impl AsRef<Timers> for Shared {
    fn as_ref(&self) -> &Timers {
        &self.timers
    }
}

impl FiredSink for Shared {
    fn fired(&self, ids: Vec<u64>) {
        self.complete_all(ids.into_iter().map(|id| (id, none_result())));
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.timers.shut_down();
    }
}

fn none_result() -> Deliver {
    Box::new(|py| Ok(py.None()))
}

impl Shared {
    fn ready(&self) -> MutexGuard<'_, (Vec<Queued>, bool)> {
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn complete(&self, id: u64, deliver: Deliver) {
        self.complete_all(std::iter::once((id, deliver)));
    }

    /// Queues finished jobs and wakes the event loop once for the whole batch.
    fn complete_all(&self, finished: impl Iterator<Item = (u64, Deliver)>) {
        self.queue(finished.map(|(id, deliver)| Queued::Done(id, deliver)));
    }

    fn queue(&self, items: impl Iterator<Item = Queued>) {
        let must_wake = {
            let mut ready = self.ready();
            ready.0.extend(items);
            !std::mem::replace(&mut ready.1, true)
        };
        if must_wake {
            // One byte per batch. If the loop is gone the write fails; nobody is waiting.
            let mut wake = self.wake.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = wake.write_all(&[1]);
        }
    }
}

/// Finished jobs for one event loop. Python watches `fileno()` and calls `drain()`.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct CompletionQueue {
    shared: Arc<Shared>,
}

impl CompletionQueue {
    /// A new job of this queue, for Rust code to complete later.
    pub fn job(&self) -> JobHandle {
        JobHandle {
            shared: Arc::clone(&self.shared),
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
        }
    }
}

#[pymethods]
impl CompletionQueue {
    #[new]
    fn new() -> PyResult<Self> {
        let (read_end, write_end) = std::io::pipe()?;
        Ok(CompletionQueue {
            shared: Arc::new(Shared {
                ready: Mutex::new((Vec::new(), false)),
                wake: Mutex::new(write_end),
                read_end,
                next_id: AtomicU64::new(1),
                timers: Timers::default(),
            }),
        })
    }

    /// The pipe's read end: readable whenever finished jobs wait in the queue.
    fn fileno(&self) -> i32 {
        self.shared.read_end.as_raw_fd()
    }

    /// A ticket for one job; its `id` keys the Python future the job will resolve.
    fn ticket(&self) -> Ticket {
        Ticket {
            shared: Arc::clone(&self.shared),
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            used: AtomicBool::new(false),
        }
    }

    /// Starts a timer that completes with `None` after `seconds`; returns its job id.
    /// Timers run on the runtime's clock (no thread sleeps) and fire in batches.
    fn start_timer(&self, seconds: f64) -> PyResult<u64> {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(Error::InvalidArgument {
                detail: format!("seconds must be a non-negative number, got {seconds}"),
            }
            .into());
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        if self.shared.timers.schedule(id, deadline) {
            let owner = Arc::downgrade(&self.shared);
            runtime().spawn(Timers::drive(owner, self.shared.timers.notifier()));
        }
        Ok(id)
    }

    /// Cancels a timer that has not fired: it will never be delivered.
    fn cancel_timer(&self, id: u64) {
        self.shared.timers.cancel(id);
    }

    /// Finished jobs as `(id, ok, value)`: `value` is the result, or the exception if not `ok`.
    fn drain(&self, py: Python<'_>) -> Vec<(u64, bool, Py<PyAny>)> {
        let finished = {
            let mut ready = self.shared.ready();
            ready.1 = false;
            std::mem::take(&mut ready.0)
        };
        let mut done = Vec::with_capacity(finished.len());
        for item in finished {
            match item {
                Queued::Done(id, deliver) => done.push(match deliver(py) {
                    Ok(value) => (id, true, value),
                    Err(err) => (id, false, err.into_value(py).into_any()),
                }),
                Queued::Step(step) => step(py),
            }
        }
        done
    }
}

/// One job's claim on a completion queue.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct Ticket {
    shared: Arc<Shared>,
    id: u64,
    used: AtomicBool,
}

#[pymethods]
impl Ticket {
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }
}

impl Ticket {
    fn claim(&self) -> PyResult<()> {
        if self.used.swap(true, Ordering::AcqRel) {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a ticket can carry only one job",
            ));
        }
        Ok(())
    }

    /// Runs blocking core work on the runtime's blocking pool; its result (or error, or
    /// panic, as a Python exception) is delivered through the ticket's queue.
    ///
    /// The GIL is never taken on the worker. A job runs to completion even if nobody
    /// awaits it any more, so a write is never abandoned half-way.
    pub fn run_blocking<T, F>(&self, work: F) -> PyResult<()>
    where
        F: FnOnce() -> crate::errors::Result<T> + Send + 'static,
        T: for<'py> IntoPyObject<'py> + Send + 'static,
    {
        self.claim()?;
        let shared = Arc::clone(&self.shared);
        let id = self.id;
        runtime().spawn_blocking(move || {
            let outcome = catch_unwind(AssertUnwindSafe(work))
                .unwrap_or_else(|panic| Err(Error::Internal(panic_message(&*panic))));
            shared.complete(id, deliver(outcome));
        });
        Ok(())
    }

    /// Runs async core work as a task on the runtime itself: for short I/O-bound jobs (a
    /// session commit: one round trip) this skips the blocking pool, whose thread would
    /// only sit in `block_on` while a runtime worker does the I/O. `work` must not block.
    /// Its result (or error, or panic) is delivered like [`Ticket::run_blocking`]'s, and it
    /// too runs to completion even if nobody awaits it any more.
    pub fn run_async<T, F>(&self, work: F) -> PyResult<()>
    where
        F: Future<Output = crate::errors::Result<T>> + Send + 'static,
        T: for<'py> IntoPyObject<'py> + Send + 'static,
    {
        self.claim()?;
        let shared = Arc::clone(&self.shared);
        let id = self.id;
        runtime().spawn(async move {
            let outcome = CatchUnwind(Box::pin(work))
                .await
                .unwrap_or_else(|panic| Err(Error::Internal(panic_message(&*panic))));
            shared.complete(id, deliver(outcome));
        });
        Ok(())
    }

    /// [`Ticket::run_async`] for a job that hands parts of its work to the event loop while
    /// it runs: `work` gets the [`Steps`] to send them with (e.g. to turn rows into Python
    /// objects as they arrive, while the rest are still on the way).
    pub fn run_async_with_steps<T, F>(&self, work: impl FnOnce(Steps) -> F) -> PyResult<()>
    where
        F: Future<Output = crate::errors::Result<T>> + Send + 'static,
        T: for<'py> IntoPyObject<'py> + Send + 'static,
    {
        let steps = Steps {
            shared: Arc::clone(&self.shared),
        };
        self.run_async(work(steps))
    }
}

/// Where a job started by [`Ticket::run_async_with_steps`] sends its steps.
pub struct Steps {
    shared: Arc<Shared>,
}

impl Steps {
    /// Queues `step` to run on the event loop's thread (with the GIL), after the steps sent
    /// before it and before the job's result. A step whose loop is gone is dropped unrun.
    pub fn send(&self, step: impl FnOnce(Python<'_>) + Send + 'static) {
        self.shared
            .queue(std::iter::once(Queued::Step(Box::new(step))));
    }
}

/// A finished job's outcome, to be turned into Python on the event loop.
fn deliver<T>(outcome: crate::errors::Result<T>) -> Deliver
where
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    Box::new(move |py| match outcome {
        Ok(value) => value.into_py_any(py),
        Err(err) => Err(err.into()),
    })
}

/// A future whose panics are caught (each poll under `catch_unwind`) instead of unwinding
/// into the runtime: the job's awaiter gets an error instead of waiting forever.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::result::Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(move || inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("worker panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_job_future_becomes_an_error() {
        let caught = runtime().block_on(CatchUnwind(Box::pin(async {
            tokio::task::yield_now().await;
            panic!("boom");
        })));
        let message = panic_message(&*caught.unwrap_err());
        assert_eq!(message, "worker panicked: boom");
        let fine = runtime().block_on(CatchUnwind(Box::pin(async { 7 })));
        assert_eq!(fine.unwrap(), 7);
    }
}
