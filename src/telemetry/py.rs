//! Python bindings: `SpanSink`, the Rust half of genkit-parity's span processor, and the
//! AdjustingTraceExporter rules for Python exporters.
//!
//! `on_start`/`on_end` run on the thread that starts or ends the span (OpenTelemetry calls
//! processors synchronously): they read the span's fields into a [`SpanRecord`] and queue it;
//! everything else happens on the exporter's tokio task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value};

use super::adjust::{Adjust, adjust_attributes};
use super::exporter::{ExportConfig, Exporter, Submit};
use super::logs::log_document_encoder;
use super::record::{
    Annotation, GENKIT_TRACER, SpanRecord, Status, TimeEvent, TimeEvents, ns_to_ms,
};

/// Most spans that may wait in memory (and most per batch).
const MAX_QUEUE: usize = 1 << 24;

/// A duration from Python seconds: negative or NaN is zero, huge is a year (never a panic).
fn seconds(value: f64) -> Duration {
    const YEAR: f64 = 365.0 * 24.0 * 3600.0;
    if value.is_nan() || value <= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(value.min(YEAR))
    }
}

/// Exports spans to the Genkit telemetry server from a tokio task.
///
/// `SpanSink(url, realtime, queue_capacity=2048, batch_max=512, request_timeout=30.0,
/// sample_ratio=1.0, linger=0.1)`; `linger` seconds is the longest a span waits before the
/// exporter sends it unprompted (a flush sends at once). `url` is the full `/api/traces` URL. With `realtime`, spans are sent on
/// start (open, `endTime` 0) and on end; otherwise on end only. The hooks return None, or a
/// warning to log once (the first dropped record, the first failed POST).
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct SpanSink {
    exporter: Exporter,
    realtime: bool,
    /// Keep a trace when the low 64 bits of its id are below this (None: keep all).
    sample_below: Option<u64>,
    warned_drop: AtomicBool,
    warned_failure: AtomicBool,
}

#[pymethods]
impl SpanSink {
    #[new]
    #[pyo3(signature = (url, realtime, queue_capacity=2048, batch_max=512, request_timeout=30.0, sample_ratio=1.0, linger=0.1))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn new(
        url: &str,
        realtime: bool,
        queue_capacity: usize,
        batch_max: usize,
        request_timeout: f64,
        sample_ratio: f64,
        linger: f64,
    ) -> PyResult<Self> {
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(PyValueError::new_err(format!(
                "sample_ratio must be between 0 and 1, got {sample_ratio}"
            )));
        }
        if queue_capacity == 0
            || batch_max == 0
            || request_timeout.is_nan()
            || request_timeout <= 0.0
        {
            return Err(PyValueError::new_err(
                "queue_capacity, batch_max and request_timeout must be positive",
            ));
        }
        if queue_capacity > MAX_QUEUE || batch_max > MAX_QUEUE {
            return Err(PyValueError::new_err(format!(
                "queue_capacity and batch_max must be at most {MAX_QUEUE}"
            )));
        }
        let config = ExportConfig {
            url: url.to_owned(),
            queue_capacity,
            batch_max,
            request_timeout: seconds(request_timeout),
            linger: seconds(linger.clamp(0.0, 1.0)),
        };
        let exporter = Exporter::start(crate::runtime::runtime().handle(), config)
            .map_err(PyValueError::new_err)?;
        Ok(SpanSink {
            exporter,
            realtime,
            sample_below: (sample_ratio < 1.0).then_some((sample_ratio * u64::MAX as f64) as u64),
            warned_drop: AtomicBool::new(false),
            warned_failure: AtomicBool::new(false),
        })
    }

    /// Whether spans are sent on start too.
    #[getter]
    fn realtime(&self) -> bool {
        self.realtime
    }

    /// The span processor's `on_start` (a no-op unless realtime).
    fn on_start(&self, span: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        if !self.realtime {
            return Ok(None);
        }
        self.submit(span, false)
    }

    /// The span processor's `on_end`.
    fn on_end(&self, span: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        self.submit(span, true)
    }

    /// Waits (without the GIL) until everything queued so far is delivered, or `timeout`
    /// seconds pass. True if it all went out (or failed) in time.
    fn flush(&self, py: Python<'_>, timeout: f64) -> bool {
        let timeout = seconds(timeout);
        py.detach(|| self.exporter.flush(timeout))
    }

    /// Stops taking spans and waits up to `timeout` seconds for the queued ones. Idempotent.
    fn shutdown(&self, py: Python<'_>, timeout: f64) -> bool {
        let timeout = seconds(timeout);
        py.detach(|| self.exporter.shutdown(timeout))
    }

    /// Counters: queued, dropped, processed, posts_ok, posts_failed, last_error.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.exporter.stats();
        let dict = PyDict::new(py);
        dict.set_item("queued", stats.queued)?;
        dict.set_item("dropped", stats.dropped)?;
        dict.set_item("processed", stats.processed)?;
        dict.set_item("posts_ok", stats.posts_ok)?;
        dict.set_item("posts_failed", stats.posts_failed)?;
        dict.set_item("last_error", stats.last_error)?;
        Ok(dict)
    }
}

impl SpanSink {
    fn submit(&self, span: &Bound<'_, PyAny>, ended: bool) -> PyResult<Option<String>> {
        let py = span.py();
        let context = span.getattr(intern!(py, "context"))?;
        let trace_id: u128 = context.getattr(intern!(py, "trace_id"))?.extract()?;
        if let Some(below) = self.sample_below
            && (trace_id as u64) >= below
        {
            return Ok(None);
        }
        let record = read_span(span, &context, trace_id, ended)?;
        let warning = match self.exporter.submit(record) {
            Submit::Queued => None,
            Submit::Closed => None,
            Submit::Dropped => (!self.warned_drop.swap(true, Ordering::Relaxed)).then(|| {
                "genkit-parity: the telemetry server is not keeping up; spans are being dropped \
                 (counted in stats()['dropped']) so the app is never slowed down"
                    .to_owned()
            }),
        };
        if warning.is_none()
            && self.exporter.failed_posts() > 0
            && !self.warned_failure.swap(true, Ordering::Relaxed)
        {
            let last = self.exporter.stats().last_error.unwrap_or_default();
            return Ok(Some(format!(
                "genkit-parity: failed to save traces: {last}"
            )));
        }
        Ok(warning)
    }
}

fn read_span(
    span: &Bound<'_, PyAny>,
    context: &Bound<'_, PyAny>,
    trace_id: u128,
    ended: bool,
) -> PyResult<SpanRecord> {
    let py = span.py();
    let span_id: u64 = context.getattr(intern!(py, "span_id"))?.extract()?;
    let parent = span.getattr(intern!(py, "parent"))?;
    let parent_span_id = if parent.is_none() {
        None
    } else {
        let id: u64 = parent.getattr(intern!(py, "span_id"))?.extract()?;
        Some(format!("{id:016x}"))
    };
    let name: String = span.getattr(intern!(py, "name"))?.extract()?;
    let start: Option<u64> = span.getattr(intern!(py, "start_time"))?.extract()?;
    let end: Option<u64> = if ended {
        span.getattr(intern!(py, "end_time"))?.extract()?
    } else {
        None
    };
    let status = span.getattr(intern!(py, "status"))?;
    // `_value_`/`_name_` are the enum members' documented plain attributes; `value`/`name`
    // are slower descriptors.
    let code: i64 = status
        .getattr(intern!(py, "status_code"))?
        .getattr(intern!(py, "_value_"))?
        .extract()?;
    let message: Option<String> = status.getattr(intern!(py, "description"))?.extract()?;
    let kind: String = span
        .getattr(intern!(py, "kind"))?
        .getattr(intern!(py, "_name_"))?
        .extract()?;
    let mut record = SpanRecord {
        span_id: format!("{span_id:016x}"),
        trace_id: format!("{trace_id:032x}"),
        parent_span_id,
        start_time: start.map_or(0.0, ns_to_ms),
        end_time: end.map_or(0.0, ns_to_ms),
        attributes: span_attributes(span)?,
        display_name: name,
        instrumentation_library: GENKIT_TRACER,
        span_kind: kind,
        status: Status {
            code: code as f64,
            message,
        },
        time_events: TimeEvents {
            time_event: span_events(span)?,
        },
    };
    record.ensure_exception_message();
    Ok(record)
}

/// The span's attributes. The SDK's public `attributes` property wraps its `BoundedAttributes`
/// in a `MappingProxyType` whose items are produced by Python code; the plain dict inside is
/// read directly when it is there (most of the hook's cost otherwise), else the public API.
fn span_attributes(span: &Bound<'_, PyAny>) -> PyResult<Map<String, Value>> {
    let py = span.py();
    if let Ok(bounded) = span.getattr(intern!(py, "_attributes"))
        && let Ok(inner) = bounded.getattr(intern!(py, "_dict"))
        && inner.is_instance_of::<PyDict>()
    {
        return attributes_from_py(&inner);
    }
    attributes_from_py(&span.getattr(intern!(py, "attributes"))?)
}

/// An attribute key as a Rust string (keys are str; anything else goes through `str()`).
fn key_string(key: &Bound<'_, PyAny>) -> PyResult<String> {
    match key.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => Ok(key.str()?.to_string()),
    }
}

/// The span's events; the public property copies them into a new tuple on every read, so the
/// SDK's list is read when it is there (usually empty).
fn span_events(span: &Bound<'_, PyAny>) -> PyResult<Vec<TimeEvent>> {
    let py = span.py();
    let events = match span.getattr(intern!(py, "_events")) {
        Ok(events) => events,
        Err(_) => span.getattr(intern!(py, "events"))?,
    };
    if events.len().is_ok_and(|n| n == 0) {
        return Ok(Vec::new());
    }
    events_from_py(&events)
}

/// Span attributes as JSON; values JSON cannot hold (non-finite floats, odd types) are left
/// out, as genkit leaves out what `json.dumps` rejects.
fn attributes_from_py(attributes: &Bound<'_, PyAny>) -> PyResult<Map<String, Value>> {
    let mut map = Map::new();
    if attributes.is_none() {
        return Ok(map);
    }
    let mut insert = |key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>| -> PyResult<()> {
        if let Some(value) = attribute_value(value) {
            map.insert(key_string(key)?, value);
        }
        Ok(())
    };
    if let Ok(dict) = attributes.cast::<PyDict>() {
        // A plain dict is walked directly; any other mapping through its items().
        for (key, value) in dict.iter() {
            insert(&key, &value)?;
        }
    } else {
        let items = attributes.call_method0(intern!(attributes.py(), "items"))?;
        for item in items.try_iter()? {
            let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            insert(&key, &value)?;
        }
    }
    Ok(map)
}

fn attribute_value(value: &Bound<'_, PyAny>) -> Option<Value> {
    if let Ok(s) = value.cast::<PyString>() {
        return s.to_str().ok().map(|s| Value::String(s.to_owned()));
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Some(Value::Bool(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        return value.extract::<i64>().ok().map(Value::from);
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value()).map(Value::Number);
    }
    if value.is_instance_of::<PyTuple>() || value.is_instance_of::<PyList>() {
        let items: Option<Vec<Value>> = value
            .try_iter()
            .ok()?
            .map(|v| attribute_value(&v.ok()?))
            .collect();
        return items.map(Value::Array);
    }
    value.is_none().then_some(Value::Null)
}

fn events_from_py(events: &Bound<'_, PyAny>) -> PyResult<Vec<TimeEvent>> {
    let py = events.py();
    let mut out = Vec::new();
    for event in events.try_iter()? {
        let event = event?;
        let name: Option<String> = event.getattr(intern!(py, "name"))?.extract()?;
        let timestamp: Option<u64> = event.getattr(intern!(py, "timestamp"))?.extract()?;
        let mut attributes = Map::new();
        let raw = event.getattr(intern!(py, "attributes"))?;
        if !raw.is_none() {
            for item in raw.call_method0(intern!(py, "items"))?.try_iter()? {
                let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
                // genkit keeps scalars and writes anything else as str().
                let value = match attribute_value(&value) {
                    Some(Value::Array(_)) | None => Value::String(value.str()?.to_string()),
                    Some(v) => v,
                };
                attributes.insert(key_string(&key)?, value);
            }
        }
        out.push(TimeEvent {
            time: timestamp.map_or(0.0, ns_to_ms),
            annotation: Annotation {
                attributes,
                description: name
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "event".into()),
            },
        });
    }
    Ok(out)
}

/// JS's AdjustingTraceExporter rules applied to one span's attributes (see `adjust.rs`).
///
/// Returns a new dict; keys have `:` replaced by `/`.
#[pyfunction]
#[pyo3(signature = (attributes, is_error, redact_input_output=true))]
pub fn adjust_span_attributes<'py>(
    attributes: &Bound<'py, PyAny>,
    is_error: bool,
    redact_input_output: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let py = attributes.py();
    let map = attributes_from_py(attributes)?;
    let adjusted = adjust_attributes(
        map,
        is_error,
        Adjust {
            redact_input_output,
        },
    );
    let dict = PyDict::new(py);
    for (key, value) in adjusted {
        dict.set_item(key, json_to_py(py, &value)?)?;
    }
    Ok(dict)
}

fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into_pyobject(py)?.into_any(),
            None => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let items: PyResult<Vec<_>> = items.iter().map(|v| json_to_py(py, v)).collect();
            PyTuple::new(py, items?)?.into_any()
        }
        Value::Object(_) => {
            return Err(PyRuntimeError::new_err("span attributes are never objects"));
        }
    })
}

/// Exports OTLP-JSON log records (genkit's dev-mode log view) to `<server>/api/otlp` from the
/// same kind of tokio task as [`SpanSink`].
///
/// `LogSink(url, scope_name, scope_version, queue_capacity=1024, batch_max=64,
/// request_timeout=30.0, linger=0.1)`; `url` is the full `/api/otlp` URL. `submit(record)`
/// copies one `logRecords` item (a dict of JSON values) and returns False when it was dropped
/// (queue full) or the sink is shut down.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct LogSink {
    exporter: Exporter<Value>,
}

#[pymethods]
impl LogSink {
    #[new]
    #[pyo3(signature = (url, scope_name, scope_version, queue_capacity=1024, batch_max=64, request_timeout=30.0, linger=0.1))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn new(
        url: &str,
        scope_name: String,
        scope_version: String,
        queue_capacity: usize,
        batch_max: usize,
        request_timeout: f64,
        linger: f64,
    ) -> PyResult<Self> {
        if queue_capacity == 0
            || batch_max == 0
            || queue_capacity > MAX_QUEUE
            || batch_max > MAX_QUEUE
            || request_timeout.is_nan()
            || request_timeout <= 0.0
        {
            return Err(PyValueError::new_err(format!(
                "queue_capacity and batch_max must be between 1 and {MAX_QUEUE}, request_timeout positive"
            )));
        }
        let config = ExportConfig {
            url: url.to_owned(),
            queue_capacity,
            batch_max,
            request_timeout: seconds(request_timeout),
            linger: seconds(linger.clamp(0.0, 1.0)),
        };
        let encode = log_document_encoder(scope_name, scope_version);
        let exporter = Exporter::start_with(crate::runtime::runtime().handle(), config, encode)
            .map_err(PyValueError::new_err)?;
        Ok(LogSink { exporter })
    }

    /// Queues one log record; False if it was dropped or the sink is shut down.
    fn submit(&self, record: &Bound<'_, PyAny>) -> PyResult<bool> {
        let value = json_from_py(record, 0)?;
        Ok(self.exporter.submit(value) == Submit::Queued)
    }

    /// Waits (without the GIL) until everything queued so far is delivered, or `timeout`
    /// seconds pass.
    fn flush(&self, py: Python<'_>, timeout: f64) -> bool {
        let timeout = seconds(timeout);
        py.detach(|| self.exporter.flush(timeout))
    }

    /// Stops taking records and waits up to `timeout` seconds for the queued ones.
    fn shutdown(&self, py: Python<'_>, timeout: f64) -> bool {
        let timeout = seconds(timeout);
        py.detach(|| self.exporter.shutdown(timeout))
    }

    /// Counters: queued, dropped, processed, posts_ok, posts_failed, last_error.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.exporter.stats();
        let dict = PyDict::new(py);
        dict.set_item("queued", stats.queued)?;
        dict.set_item("dropped", stats.dropped)?;
        dict.set_item("processed", stats.processed)?;
        dict.set_item("posts_ok", stats.posts_ok)?;
        dict.set_item("posts_failed", stats.posts_failed)?;
        dict.set_item("last_error", stats.last_error)?;
        Ok(dict)
    }
}

/// A JSON value from plain Python data (what genkit's log records are made of); anything else
/// becomes its `str()`. Nesting is bounded so a cyclic structure cannot overflow the stack.
fn json_from_py(value: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    const MAX_DEPTH: usize = 64;
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned()));
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(i) = value.extract::<i64>() {
            return Ok(Value::from(i));
        }
        return Ok(Value::String(value.str()?.to_string()));
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        return Ok(serde_json::Number::from_f64(f.value()).map_or(Value::Null, Value::Number));
    }
    if depth < MAX_DEPTH {
        if let Ok(dict) = value.cast::<PyDict>() {
            let mut map = Map::with_capacity(dict.len());
            for (key, item) in dict.iter() {
                map.insert(key.str()?.to_string(), json_from_py(&item, depth + 1)?);
            }
            return Ok(Value::Object(map));
        }
        if let Ok(list) = value.cast::<PyList>() {
            return list
                .iter()
                .map(|item| json_from_py(&item, depth + 1))
                .collect::<PyResult<_>>()
                .map(Value::Array);
        }
        if let Ok(tuple) = value.cast::<PyTuple>() {
            return tuple
                .iter()
                .map(|item| json_from_py(&item, depth + 1))
                .collect::<PyResult<_>>()
                .map(Value::Array);
        }
    }
    Ok(Value::String(value.str()?.to_string()))
}
