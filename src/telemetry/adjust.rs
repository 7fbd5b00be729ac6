//! JS's `AdjustingTraceExporter` attribute rules (google-cloud plugin, `gcpOpenTelemetry.ts`),
//! for exporters that leave the machine: redact input and output, mark failures, name the
//! feature and model, and turn `:` in keys into `/`.

use serde_json::{Map, Value};

/// What to change besides the fixed rules.
#[derive(Clone, Copy, Debug)]
pub struct Adjust {
    /// Replace `genkit:input` and `genkit:output` (both, if either is present) by `<redacted>`.
    pub redact_input_output: bool,
}

/// The attributes a span is exported with, after the rules in JS's order.
pub fn adjust_attributes(
    mut attrs: Map<String, Value>,
    is_error: bool,
    options: Adjust,
) -> Map<String, Value> {
    let get_str = |attrs: &Map<String, Value>, key: &str| {
        attrs.get(key).and_then(Value::as_str).map(str::to_owned)
    };
    if attrs.contains_key("genkit:type")
        && attrs.get("genkit:isRoot") == Some(&Value::Bool(true))
        && let Some(state) = attrs.get("genkit:state").cloned()
    {
        attrs.insert("genkit:rootState".into(), state);
    }
    if options.redact_input_output
        && (attrs.contains_key("genkit:input") || attrs.contains_key("genkit:output"))
    {
        attrs.insert("genkit:input".into(), "<redacted>".into());
        attrs.insert("genkit:output".into(), "<redacted>".into());
    }
    if is_error {
        attrs.insert("/http/status_code".into(), "599".into());
    }
    if attrs.get("genkit:isFailureSource") == Some(&Value::Bool(true)) {
        if let Some(name) = get_str(&attrs, "genkit:name") {
            attrs.insert("genkit:failedSpan".into(), name.into());
        }
        if let Some(path) = get_str(&attrs, "genkit:path") {
            attrs.insert("genkit:failedPath".into(), path.into());
        }
    }
    if attrs.get("genkit:isRoot") == Some(&Value::Bool(true))
        && let Some(name) = get_str(&attrs, "genkit:name")
    {
        attrs.insert("genkit:feature".into(), name.into());
    }
    if attrs.get("genkit:metadata:subtype").and_then(Value::as_str) == Some("model")
        && let Some(name) = get_str(&attrs, "genkit:name")
    {
        attrs.insert("genkit:model".into(), name.into());
    }
    attrs
        .into_iter()
        .map(|(key, value)| (key.replace(':', "/"), value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn adjust(attrs: Value, is_error: bool) -> Value {
        let Value::Object(map) = attrs else { panic!() };
        Value::Object(adjust_attributes(
            map,
            is_error,
            Adjust {
                redact_input_output: true,
            },
        ))
    }

    #[test]
    fn failed_step_names_the_failure() {
        let out = adjust(
            json!({"genkit:name": "badStep", "genkit:type": "flowStep", "genkit:isFailureSource": true,
                   "genkit:path": "/{badFlow,t:flow}/{badStep,t:flowStep}", "genkit:state": "error"}),
            true,
        );
        assert_eq!(out["genkit/failedSpan"], "badStep");
        assert_eq!(
            out["genkit/failedPath"],
            "/{badFlow,t:flow}/{badStep,t:flowStep}"
        );
        assert_eq!(out["/http/status_code"], "599");
    }

    #[test]
    fn root_gets_feature_and_root_state_and_io_is_redacted() {
        let out = adjust(
            json!({"genkit:name": "niceFlow", "genkit:type": "action", "genkit:isRoot": true,
                   "genkit:state": "success", "genkit:input": "\"secret\""}),
            false,
        );
        assert_eq!(out["genkit/feature"], "niceFlow");
        assert_eq!(out["genkit/rootState"], "success");
        assert_eq!(out["genkit/input"], "<redacted>");
        assert_eq!(out["genkit/output"], "<redacted>");
        assert!(out.get("genkit/failedSpan").is_none());
    }

    #[test]
    fn model_spans_name_the_model_and_plain_spans_keep_three_keys() {
        let out = adjust(
            json!({"genkit:name": "echoModel", "genkit:metadata:subtype": "model"}),
            false,
        );
        assert_eq!(out["genkit/model"], "echoModel");
        let out = adjust(
            json!({"genkit:name": "appended", "label_key": "v", "genkit:metadata:metadata_key": "m"}),
            false,
        );
        assert_eq!(out.as_object().unwrap().len(), 3);
        assert!(out.get("genkit/metadata/metadata_key").is_some());
    }
}
