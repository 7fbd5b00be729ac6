//! The telemetry-server exporter: a bounded queue in front of one tokio task that batches,
//! serialises and POSTs records (span records to `/api/traces`, log records to `/api/otlp`).
//!
//! Callers never wait and, while records keep coming, never wake anything: [`Exporter::submit`]
//! pushes onto a mutex-guarded queue (a full queue drops the record and counts it) and returns.
//! The task wakes by itself every `linger` while records arrive, drains whatever is queued
//! into one batch, keeps only the latest record of each span (an end supersedes a start that
//! was not sent yet, so the server never sees a start after an end), groups by trace and POSTs
//! one `TraceData` per trace. Batches go out in order, one at a time, so a start always reaches
//! the server before its end.
//!
//! Why a self-timed task rather than a channel that wakes it: waking another thread costs the
//! caller a futex call and, on a small machine, puts the exporter on the CPU while the app's
//! call is still running; measured as a share of an isolated `generate()` that is most of what
//! separates live tracing from spans that are made and never exported. The caller wakes the
//! task only when it would otherwise wait too long: a batch is full, a flush begins, or the
//! task has gone to sleep after [`QUIET_BEFORE_SLEEP`] without records (an idle app costs no
//! wake-ups at all).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use tokio::sync::Notify;

use super::record::{SpanRecord, TraceDocument};

/// How long the task keeps waking by itself with nothing queued before it sleeps until a
/// record arrives.
pub const QUIET_BEFORE_SLEEP: Duration = Duration::from_secs(5);

/// Where and how to export.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// The full `/api/traces` URL (plain `http://`).
    pub url: String,
    /// Records that may wait in memory; beyond this they are dropped.
    pub queue_capacity: usize,
    /// Most records read into one batch; a full batch is sent at once.
    pub batch_max: usize,
    /// Limit for one POST.
    pub request_timeout: Duration,
    /// The longest a record waits in the queue before it is sent unprompted (the task's wake-up
    /// period while records arrive). Spans come in bursts (a flow's spans start and end within
    /// milliseconds): waiting sends them in one POST, spares the callers a wake-up per record,
    /// and lets an end replace its unsent start. Zero: every record wakes the task at once.
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

/// Records waiting for the task, and whether new ones are still taken.
struct Queue<R> {
    records: VecDeque<R>,
    closed: bool,
}

struct Shared<R> {
    queue: Mutex<Queue<R>>,
    capacity: usize,
    batch_max: usize,
    /// Records ever queued; written under the queue lock, so a flush that reads it knows every
    /// record it counts is in the queue or already taken.
    queued: AtomicU64,
    dropped: AtomicU64,
    /// Mirrors `Progress::posts_failed` for lock-free reads from the hooks.
    failed: AtomicU64,
    progress: Mutex<Progress>,
    changed: Condvar,
    /// Wakes the task: a full batch, a flush, a shutdown, or a record while it sleeps.
    wake: Notify,
    /// The task sleeps until woken (it does not wake by itself); the next record wakes it.
    asleep: AtomicBool,
}

impl<R> Shared<R> {
    fn queue(&self) -> MutexGuard<'_, Queue<R>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops taking records; the task sends what is queued, then ends.
    fn close(&self) {
        self.queue().closed = true;
        self.wake.notify_one();
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut progress);
        drop(progress);
        self.changed.notify_all();
    }

    /// Takes up to one batch; `None` once the queue is closed and empty.
    fn take_batch(&self) -> Option<Vec<R>> {
        let mut queue = self.queue();
        if queue.records.is_empty() {
            return if queue.closed { None } else { Some(Vec::new()) };
        }
        let n = queue.records.len().min(self.batch_max);
        Some(queue.records.drain(..n).collect())
    }
}

/// Turns one batch of records into POST bodies.
pub type Encode<R> = Arc<dyn Fn(Vec<R>) -> Vec<Vec<u8>> + Send + Sync>;

/// A running exporter. Dropping it closes the queue; the task finishes what is queued.
pub struct Exporter<R = SpanRecord> {
    shared: Arc<Shared<R>>,
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
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                records: VecDeque::new(),
                closed: false,
            }),
            capacity: config.queue_capacity.max(1),
            batch_max: config.batch_max.max(1),
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            progress: Mutex::new(Progress::default()),
            changed: Condvar::new(),
            wake: Notify::new(),
            // Until the task first runs, the first record must wake it.
            asleep: AtomicBool::new(true),
        });
        runtime.spawn(run(client, config, Arc::clone(&shared), encode));
        Ok(Exporter { shared })
    }

    /// Queues a record without waiting.
    pub fn submit(&self, record: R) -> Submit {
        let mut queue = self.shared.queue();
        if queue.closed {
            return Submit::Closed;
        }
        if queue.records.len() >= self.shared.capacity {
            drop(queue);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Submit::Dropped;
        }
        queue.records.push_back(record);
        let waiting = queue.records.len();
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        drop(queue);
        // Checked after the push: a task that goes to sleep re-checks the queue after setting
        // `asleep`, so either it sees this record or this sees `asleep`.
        if waiting >= self.shared.batch_max || self.shared.asleep.swap(false, Ordering::SeqCst) {
            self.shared.wake.notify_one();
        }
        Submit::Queued
    }

    /// Waits until every record queued before the call has been handled, or `timeout` passes.
    /// Blocks the calling thread (callers release the GIL first).
    pub fn flush(&self, timeout: Duration) -> bool {
        let target = self.shared.queued.load(Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let mut progress = self
            .shared
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if progress.processed < target {
            // Send now rather than at the task's next wake-up. (A permit left by a wake the
            // task did not need costs it one extra look at the queue.)
            self.shared.wake.notify_one();
        }
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
        self.shared.close();
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

impl<R> Drop for Exporter<R> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Waits for the next batch: until woken, or `linger` at most while records keep arriving.
/// Returns whether anything woke the task (as opposed to its own timer).
async fn wait_for_records<R>(shared: &Shared<R>, linger: Duration, quiet: Duration) -> bool {
    if linger.is_zero() || quiet >= QUIET_BEFORE_SLEEP {
        shared.asleep.store(true, Ordering::SeqCst);
        // A record pushed before `asleep` was set is seen here; one pushed after it sees
        // `asleep` and wakes us (the permit outlives a notify that comes before the await).
        let pending = {
            let queue = shared.queue();
            !queue.records.is_empty() || queue.closed
        };
        if pending {
            shared.asleep.store(false, Ordering::SeqCst);
            return true;
        }
        shared.wake.notified().await;
        shared.asleep.store(false, Ordering::SeqCst);
        return true;
    }
    tokio::time::timeout(linger, shared.wake.notified())
        .await
        .is_ok()
}

async fn run<R>(
    client: reqwest::Client,
    config: ExportConfig,
    shared: Arc<Shared<R>>,
    encode: Encode<R>,
) {
    // How long the queue has been found empty: past QUIET_BEFORE_SLEEP the task sleeps.
    let mut quiet = Duration::ZERO;
    while let Some(batch) = shared.take_batch() {
        if batch.is_empty() {
            if !wait_for_records(&shared, config.linger, quiet).await {
                quiet += config.linger;
            }
            continue;
        }
        quiet = Duration::ZERO;
        let handled = batch.len() as u64;
        for body in encode(batch) {
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

    fn started(linger: Duration) -> (tokio::runtime::Runtime, Exporter) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // The POSTs fail fast: nothing listens on port 9. Failed records count as processed.
        let exporter = Exporter::start(
            runtime.handle(),
            ExportConfig {
                url: "http://127.0.0.1:9/api/traces".into(),
                queue_capacity: 256,
                batch_max: 8,
                request_timeout: Duration::from_secs(2),
                linger,
            },
        )
        .unwrap();
        (runtime, exporter)
    }

    fn wait_processed(exporter: &Exporter, n: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if exporter.stats().processed >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_flush_does_not_wait_out_the_linger() {
        // A linger far longer than the flush timeouts: only a flush that wakes the task can
        // see its records handled in time.
        let (_runtime, exporter) = awake(Duration::from_secs(600));
        // The task now waits out its linger before sending.
        submit_spans(&exporter, 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(exporter.stats().processed, 1, "sent before its linger");
        assert!(exporter.flush(Duration::from_secs(20)));
        assert_eq!(exporter.stats().processed, 2);
    }

    /// Queues `n` more spans.
    fn submit_spans(exporter: &Exporter, n: usize) {
        for i in 0..n {
            let record = span("t", &format!("s{i}"), None, 1.0, None);
            assert_eq!(exporter.submit(record), Submit::Queued);
        }
    }

    /// An exporter whose task has handled its first record and now times itself.
    fn awake(linger: Duration) -> (tokio::runtime::Runtime, Exporter) {
        let (runtime, exporter) = started(linger);
        submit_spans(&exporter, 1); // wakes the task, which starts asleep
        assert!(wait_processed(&exporter, 1));
        (runtime, exporter)
    }

    #[test]
    fn records_go_out_within_the_linger_with_no_one_waking_the_task() {
        let (_runtime, exporter) = awake(Duration::from_millis(30));
        // These records wake nothing: the task's own timer sends them, with no flush.
        submit_spans(&exporter, 3);
        assert!(wait_processed(&exporter, 4), "{:?}", exporter.stats());
    }

    #[test]
    fn with_no_linger_every_record_wakes_the_task() {
        let (_runtime, exporter) = started(Duration::ZERO);
        for i in 1..=5 {
            submit_spans(&exporter, 1);
            assert!(wait_processed(&exporter, i), "{:?}", exporter.stats());
            std::thread::sleep(Duration::from_millis(10)); // the task goes back to sleep
        }
    }

    #[test]
    fn a_full_batch_is_sent_without_waiting_for_the_linger() {
        let (_runtime, exporter) = awake(Duration::from_secs(600));
        submit_spans(&exporter, 8);
        assert!(wait_processed(&exporter, 9), "{:?}", exporter.stats());
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
