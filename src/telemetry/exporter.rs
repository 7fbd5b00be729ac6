//! The telemetry-server exporter: a bounded queue in front of one tokio task that batches,
//! serialises and POSTs records (span records to `/api/traces`, log records to `/api/otlp`).
//!
//! Callers never wait: [`Exporter::submit`] is a `try_send`; a full queue drops the record and
//! counts it. The task drains whatever is queued into one batch, keeps only the latest record
//! of each span (an end supersedes a start that was not sent yet, so the server never sees a
//! start after an end), groups by trace and POSTs one `TraceData` per trace. Batches go out
//! in order, one at a time, so a start always reaches the server before its end.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use tokio::sync::{Notify, mpsc};

use super::record::{SpanRecord, TraceDocument};

/// Where and how to export.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// The full `/api/traces` URL (plain `http://`).
    pub url: String,
    /// Records that may wait in memory; beyond this they are dropped.
    pub queue_capacity: usize,
    /// Most records read into one batch.
    pub batch_max: usize,
    /// Limit for one POST.
    pub request_timeout: Duration,
    /// How long the task waits after the first record of a batch for more to arrive. Spans
    /// come in bursts (a flow's spans start and end within milliseconds); waiting a little
    /// sends them in one POST, spares the callers a wake-up per record, and lets an end
    /// replace its unsent start.
    pub linger: Duration,
}

/// What happened to a submitted record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submit {
    Queued,
    /// The queue was full: dropped and counted.
    Dropped,
    /// The exporter was shut down.
    Closed,
}

/// Counters, for flushing, tests and warnings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub queued: u64,
    pub dropped: u64,
    /// Records the task has finished with (sent, coalesced away, filtered, or failed).
    pub processed: u64,
    pub posts_ok: u64,
    pub posts_failed: u64,
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Progress {
    processed: u64,
    posts_ok: u64,
    posts_failed: u64,
    last_error: Option<String>,
    task_done: bool,
}

struct Shared {
    queued: AtomicU64,
    dropped: AtomicU64,
    /// Mirrors `Progress::posts_failed` for lock-free reads from the hooks.
    failed: AtomicU64,
    progress: Mutex<Progress>,
    changed: Condvar,
    /// Callers waiting in [`Exporter::flush`]: while there are any, the task sends at once
    /// instead of lingering (a flush must not wait out the linger).
    flushers: AtomicUsize,
    /// Cuts a linger in progress short when a flush begins.
    flush_begun: Notify,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Progress)) {
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut progress);
        drop(progress);
        self.changed.notify_all();
    }
}

/// Turns one batch of records into POST bodies.
pub type Encode<R> = Arc<dyn Fn(Vec<R>) -> Vec<Vec<u8>> + Send + Sync>;

/// A running exporter. Dropping it closes the queue; the task finishes what is queued.
pub struct Exporter<R = SpanRecord> {
    sender: Mutex<Option<mpsc::Sender<R>>>,
    shared: Arc<Shared>,
}

impl Exporter<SpanRecord> {
    /// Starts a span exporter (one `TraceData` document per trace) on `runtime`.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        config: ExportConfig,
    ) -> Result<Exporter<SpanRecord>, String> {
        Exporter::start_with(runtime, config, Arc::new(documents))
    }
}

impl<R: Send + 'static> Exporter<R> {
    /// Starts the exporter task on `runtime`, encoding each batch with `encode`.
    pub fn start_with(
        runtime: &tokio::runtime::Handle,
        config: ExportConfig,
        encode: Encode<R>,
    ) -> Result<Exporter<R>, String> {
        if !config.url.starts_with("http://") {
            return Err(format!(
                "telemetry server URL must be plain http:// (the Dev UI server runs locally), got {:?}",
                config.url
            ));
        }
        // The Dev UI's telemetry server is local: never route it through an HTTP(S)_PROXY.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let (sender, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            progress: Mutex::new(Progress::default()),
            changed: Condvar::new(),
            flushers: AtomicUsize::new(0),
            flush_begun: Notify::new(),
        });
        runtime.spawn(run(receiver, client, config, Arc::clone(&shared), encode));
        Ok(Exporter {
            sender: Mutex::new(Some(sender)),
            shared,
        })
    }

    /// Queues a record without waiting.
    pub fn submit(&self, record: R) -> Submit {
        let guard = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = guard.as_ref() else {
            return Submit::Closed;
        };
        match sender.try_send(record) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::SeqCst);
                Submit::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                Submit::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Submit::Closed,
        }
    }

    /// Waits until every record queued before the call has been handled, or `timeout` passes.
    /// Blocks the calling thread (callers release the GIL first).
    pub fn flush(&self, timeout: Duration) -> bool {
        let target = self.shared.queued.load(Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let _flushing = Flushing::begin(&self.shared);
        let mut progress = self
            .shared
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while progress.processed < target && !progress.task_done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            progress = self
                .shared
                .changed
                .wait_timeout(progress, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        progress.processed >= target
    }

    /// Stops taking records and waits up to `timeout` for the queued ones. Idempotent.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let flushed = self.flush(timeout);
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        flushed
    }

    /// POSTs that failed so far (cheap: no lock).
    pub fn failed_posts(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> Stats {
        let progress = self
            .shared
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Stats {
            queued: self.shared.queued.load(Ordering::SeqCst),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            processed: progress.processed,
            posts_ok: progress.posts_ok,
            posts_failed: progress.posts_failed,
            last_error: progress.last_error.clone(),
        }
    }
}

/// Marks a caller as waiting in `flush` for as long as it lives.
struct Flushing<'a>(&'a Shared);

impl<'a> Flushing<'a> {
    fn begin(shared: &'a Shared) -> Flushing<'a> {
        shared.flushers.fetch_add(1, Ordering::SeqCst);
        shared.flush_begun.notify_waiters();
        Flushing(shared)
    }
}

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        self.0.flushers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits up to `linger` for more records to join the batch, unless a flush is waiting or
/// begins meanwhile.
async fn linger(shared: &Shared, linger: Duration) {
    // Created before the check: `notify_waiters` reaches a `Notified` from its creation on,
    // so a flush that begins between the check and the wait still ends the wait.
    let flush_begun = shared.flush_begun.notified();
    if shared.flushers.load(Ordering::SeqCst) > 0 {
        return;
    }
    let _ = tokio::time::timeout(linger, flush_begun).await;
}

async fn run<R>(
    mut receiver: mpsc::Receiver<R>,
    client: reqwest::Client,
    config: ExportConfig,
    shared: Arc<Shared>,
    encode: Encode<R>,
) {
    let batch_max = config.batch_max.max(1);
    let mut batch = Vec::with_capacity(batch_max);
    while receiver.recv_many(&mut batch, batch_max).await > 0 {
        if !config.linger.is_zero() && batch.len() < batch_max {
            linger(&shared, config.linger).await;
            while batch.len() < batch_max {
                match receiver.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
        }
        let handled = batch.len() as u64;
        for body in encode(std::mem::take(&mut batch)) {
            let outcome = post(&client, &config.url, body).await;
            shared.update(|p| match outcome {
                Ok(()) => p.posts_ok += 1,
                Err(e) => {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    p.posts_failed += 1;
                    p.last_error = Some(e);
                }
            });
        }
        shared.update(|p| p.processed += handled);
    }
    shared.update(|p| p.task_done = true);
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<(), String> {
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the telemetry server at {url}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = response.text().await.unwrap_or_default();
        Err(format!(
            "telemetry server answered {status}: {}",
            truncate(&text, 300)
        ))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The POST bodies for one batch: the latest record of each span, one document per trace,
/// without traces that contain a `prompt` span (genkit filters those: they are Dev UI
/// keystroke previews).
pub fn documents(batch: Vec<SpanRecord>) -> Vec<Vec<u8>> {
    let mut latest: IndexMap<(String, String), SpanRecord> = IndexMap::with_capacity(batch.len());
    for record in batch {
        let key = (record.trace_id.clone(), record.span_id.clone());
        match latest.get_mut(&key) {
            Some(kept) if kept.has_ended() && !record.has_ended() => {} // a stale start
            Some(kept) => *kept = record,
            None => {
                latest.insert(key, record);
            }
        }
    }
    let mut traces: IndexMap<&str, Vec<&SpanRecord>> = IndexMap::new();
    for record in latest.values() {
        traces
            .entry(record.trace_id.as_str())
            .or_default()
            .push(record);
    }
    traces
        .into_iter()
        .filter(|(_, spans)| !spans.iter().any(|s| s.is_prompt()))
        .map(|(trace_id, spans)| {
            serde_json::to_vec(&TraceDocument::new(trace_id, &spans))
                .expect("span records always serialise")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::record::{GENKIT_TRACER, Status, TimeEvents};
    use serde_json::{Map, Value, json};

    fn span(
        trace: &str,
        id: &str,
        parent: Option<&str>,
        end: f64,
        subtype: Option<&str>,
    ) -> SpanRecord {
        let mut attributes = Map::new();
        attributes.insert("genkit:name".into(), id.into());
        if let Some(subtype) = subtype {
            attributes.insert("genkit:metadata:subtype".into(), subtype.into());
        }
        SpanRecord {
            span_id: id.into(),
            trace_id: trace.into(),
            parent_span_id: parent.map(Into::into),
            start_time: 1.5,
            end_time: end,
            attributes,
            display_name: id.into(),
            instrumentation_library: GENKIT_TRACER,
            span_kind: "INTERNAL".into(),
            status: Status {
                code: 0.0,
                message: None,
            },
            time_events: TimeEvents { time_event: vec![] },
        }
    }

    fn parse(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap()
    }

    #[test]
    fn an_end_replaces_its_unsent_start_and_a_stale_start_never_follows() {
        let docs = documents(vec![
            span("t1", "root", None, 0.0, Some("flow")),
            span("t1", "child", Some("root"), 0.0, None),
            span("t1", "child", Some("root"), 9.0, None),
            span("t1", "child", Some("root"), 0.0, None), // stale
        ]);
        assert_eq!(docs.len(), 1);
        let doc = parse(&docs[0]);
        assert_eq!(doc["spans"]["child"]["endTime"], json!(9.0));
        assert_eq!(doc["displayName"], "root");
        assert_eq!(doc["endTime"], json!(0.0));
        assert_eq!(doc["spans"]["root"]["status"], json!({"code": 0.0}));
        assert_eq!(doc["spans"]["root"]["timeEvents"], json!({"timeEvent": []}));
        assert!(doc["spans"]["root"].get("parentSpanId").is_none());
    }

    #[test]
    fn one_document_per_trace_and_prompt_traces_are_dropped() {
        let docs = documents(vec![
            span("t1", "a", Some("x"), 2.0, None),
            span("t2", "b", None, 2.0, Some("prompt")),
            span("t3", "c", Some("y"), 2.0, None),
        ]);
        let ids: Vec<Value> = docs.iter().map(|d| parse(d)["traceId"].clone()).collect();
        assert_eq!(ids, [json!("t1"), json!("t3")]);
        assert!(parse(&docs[0]).get("displayName").is_none()); // not a root
    }

    #[test]
    fn failed_spans_get_an_exception_event() {
        let mut record = span("t", "s", None, 5.0, None);
        record.status = Status {
            code: 2.0,
            message: None,
        };
        record
            .attributes
            .insert("genkit:error".into(), "model exploded".into());
        record.ensure_exception_message();
        assert_eq!(record.status.message.as_deref(), Some("model exploded"));
        let event = &record.time_events.time_event[0];
        assert_eq!(event.annotation.description, "exception");
        assert_eq!(
            event.annotation.attributes["exception.message"],
            "model exploded"
        );
        assert_eq!(event.time, 5.0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_a_dead_server_never_blocks() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Port 9 (discard) on loopback: nothing listens, connections are refused.
        let exporter = Exporter::start(
            runtime.handle(),
            ExportConfig {
                url: "http://127.0.0.1:9/api/traces".into(),
                queue_capacity: 4,
                batch_max: 64,
                request_timeout: Duration::from_secs(2),
                linger: Duration::ZERO,
            },
        )
        .unwrap();
        // The runtime is not driven yet, so nothing drains: 4 fit, the rest are dropped.
        let outcomes: Vec<Submit> = (0..10)
            .map(|i| exporter.submit(span("t", &format!("s{i}"), None, 1.0, None)))
            .collect();
        assert_eq!(outcomes.iter().filter(|o| **o == Submit::Queued).count(), 4);
        assert_eq!(exporter.stats().dropped, 6);
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
        assert!(exporter.flush(Duration::from_secs(5)));
        let stats = exporter.stats();
        assert_eq!(stats.processed, 4);
        assert!(
            stats.posts_failed >= 1 && stats.last_error.is_some(),
            "{stats:?}"
        );
        assert!(exporter.shutdown(Duration::from_secs(1)));
        assert_eq!(
            exporter.submit(span("t", "late", None, 1.0, None)),
            Submit::Closed
        );
    }

    #[test]
    fn a_flush_does_not_wait_out_the_linger() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // A linger far longer than the flush timeouts: only a flush that cuts it short can
        // see its records handled in time (the POSTs fail fast: nothing listens on port 9).
        let exporter = Exporter::start(
            runtime.handle(),
            ExportConfig {
                url: "http://127.0.0.1:9/api/traces".into(),
                queue_capacity: 16,
                batch_max: 64,
                request_timeout: Duration::from_secs(2),
                linger: Duration::from_secs(600),
            },
        )
        .unwrap();
        // A record that arrives while no flush waits: the task is lingering when flush begins.
        assert_eq!(
            exporter.submit(span("t", "a", None, 1.0, None)),
            Submit::Queued
        );
        std::thread::sleep(Duration::from_millis(50));
        assert!(exporter.flush(Duration::from_secs(20)));
        // A record queued before the flush begins and taken while it waits.
        assert_eq!(
            exporter.submit(span("t", "b", None, 1.0, None)),
            Submit::Queued
        );
        assert!(exporter.flush(Duration::from_secs(20)));
        assert_eq!(exporter.stats().processed, 2);
    }

    #[test]
    fn only_plain_http_is_accepted() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = ExportConfig {
            url: "https://example.com/api/traces".into(),
            queue_capacity: 1,
            batch_max: 1,
            request_timeout: Duration::from_secs(1),
            linger: Duration::ZERO,
        };
        assert!(Exporter::start(runtime.handle(), config).is_err());
    }
}
