//! One span as the Genkit telemetry server stores it, and the `TraceData` documents sent.
//!
//! The JSON is what genkit 0.12's `TraceServerExporter` sends (see `devtools.md`): times in
//! float milliseconds, `endTime` 0 while a span is open, `status.code` a float, `timeEvents`
//! always present, trace-level `displayName`/`startTime`/`endTime` only with the root span.

use serde::Serialize;
use serde_json::{Map, Value};

/// Attribute genkit puts the action subtype in; `prompt` spans are never exported.
pub const SUBTYPE: &str = "genkit:metadata:subtype";
const ERROR_ATTR: &str = "genkit:error";
const STATUS_ERROR: f64 = 2.0;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    pub code: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Annotation {
    pub attributes: Map<String, Value>,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimeEvent {
    pub time: f64,
    pub annotation: Annotation,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimeEvents {
    #[serde(rename = "timeEvent")]
    pub time_event: Vec<TimeEvent>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstrumentationLibrary {
    pub name: &'static str,
    pub version: &'static str,
}

/// genkit's tracer, named on every span as genkit does.
pub const GENKIT_TRACER: InstrumentationLibrary = InstrumentationLibrary {
    name: "genkit-tracer",
    version: "v1",
};

/// `SpanData`, field for field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanRecord {
    pub span_id: String,
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    pub start_time: f64,
    /// 0 while the span is open.
    pub end_time: f64,
    pub attributes: Map<String, Value>,
    pub display_name: String,
    pub instrumentation_library: InstrumentationLibrary,
    pub span_kind: String,
    pub status: Status,
    pub time_events: TimeEvents,
}

impl SpanRecord {
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_none()
    }

    pub fn has_ended(&self) -> bool {
        self.end_time > 0.0
    }

    pub fn is_prompt(&self) -> bool {
        self.attributes.get(SUBTYPE).and_then(Value::as_str) == Some("prompt")
    }

    /// The Dev UI shows the first `exception` event's message: make sure a failed span has
    /// one (from the status message, else `genkit:error`), as genkit does.
    pub fn ensure_exception_message(&mut self) {
        if self.status.code != STATUS_ERROR {
            return;
        }
        let message = self.status.message.clone().or_else(|| {
            self.attributes
                .get(ERROR_ATTR)
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
        });
        let Some(message) = message.filter(|m| !m.is_empty()) else {
            return;
        };
        if self.status.message.as_deref().unwrap_or("").is_empty() {
            self.status.message = Some(message.clone());
        }
        let events = &mut self.time_events.time_event;
        if let Some(event) = events
            .iter_mut()
            .find(|e| e.annotation.description == "exception")
        {
            let attrs = &mut event.annotation.attributes;
            let has_message = attrs
                .get("exception.message")
                .is_some_and(|m| !m.is_null() && m.as_str() != Some(""));
            if !has_message {
                attrs.insert("exception.message".into(), Value::String(message));
            }
            return;
        }
        let mut attributes = Map::new();
        attributes.insert("exception.type".into(), "Error".into());
        attributes.insert("exception.message".into(), Value::String(message));
        events.push(TimeEvent {
            time: self.end_time,
            annotation: Annotation {
                attributes,
                description: "exception".into(),
            },
        });
    }
}

/// One POST body: the spans of one trace (`TraceData`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceDocument<'a> {
    pub trace_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    pub spans: indexmap::IndexMap<&'a str, &'a SpanRecord>,
}

impl<'a> TraceDocument<'a> {
    /// The document for `spans`, which all belong to one trace.
    pub fn new(trace_id: &'a str, spans: &[&'a SpanRecord]) -> Self {
        let mut doc = TraceDocument {
            trace_id,
            display_name: None,
            start_time: None,
            end_time: None,
            spans: spans.iter().map(|s| (s.span_id.as_str(), *s)).collect(),
        };
        if let Some(root) = spans.iter().find(|s| s.is_root()) {
            doc.display_name = Some(&root.display_name);
            doc.start_time = Some(root.start_time);
            doc.end_time = Some(root.end_time);
        }
        doc
    }
}

/// Nanoseconds since the epoch to the float milliseconds genkit sends.
pub fn ns_to_ms(ns: u64) -> f64 {
    (ns / 1_000_000) as f64 + (ns % 1_000_000) as f64 / 1e6
}
