//! OTLP-JSON log export for the Dev UI's log view (`<server>/api/otlp`).
//!
//! genkit 0.12 in dev mode sends its log records (several per `generate()`) from a Python
//! worker thread that wakes for every record and POSTs with the GIL held, competing with the
//! app's own thread. Here the records go through the same bounded queue and tokio task as the
//! spans; a batch becomes one `resourceLogs` document, the shape genkit sends.

use std::sync::Arc;

use serde_json::{Value, json};

use super::exporter::Encode;

/// The encoder for a batch of log records: one `resourceLogs` document naming the scope.
pub fn log_document_encoder(scope_name: String, scope_version: String) -> Encode<Value> {
    Arc::new(move |records: Vec<Value>| {
        let document = json!({
            "resourceLogs": [{
                "resource": {"attributes": [], "droppedAttributesCount": 0},
                "scopeLogs": [{
                    "scope": {"name": scope_name, "version": scope_version},
                    "logRecords": records,
                }],
            }],
        });
        vec![serde_json::to_vec(&document).expect("JSON values always serialise")]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_one_resource_logs_document() {
        let encode = log_document_encoder("genkit-py".into(), "0.12.0".into());
        let bodies = encode(vec![
            json!({"body": {"stringValue": "a"}}),
            json!({"body": {"stringValue": "b"}}),
        ]);
        assert_eq!(bodies.len(), 1);
        let doc: Value = serde_json::from_slice(&bodies[0]).unwrap();
        let scope = &doc["resourceLogs"][0]["scopeLogs"][0];
        assert_eq!(
            scope["scope"],
            json!({"name": "genkit-py", "version": "0.12.0"})
        );
        assert_eq!(scope["logRecords"][1]["body"]["stringValue"], "b");
        assert_eq!(
            doc["resourceLogs"][0]["resource"]["droppedAttributesCount"],
            0
        );
    }
}
