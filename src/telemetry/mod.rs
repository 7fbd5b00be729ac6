//! Live tracing for the Genkit Dev UI: span records, the telemetry-server exporter, and the
//! attribute rules of JS's AdjustingTraceExporter.
//!
//! The Python span processor copies each OpenTelemetry span into a [`record::SpanRecord`] on
//! the calling thread (`py.rs`) and hands it to the [`exporter::Exporter`], whose tokio task
//! batches, serialises and POSTs to `<server>/api/traces` without ever touching Python; genkit's
//! dev-mode log records take the same path to `<server>/api/otlp` ([`logs`]).

pub mod adjust;
pub mod exporter;
pub mod logs;
pub mod py;
pub mod record;
