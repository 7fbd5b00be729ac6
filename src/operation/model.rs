//! `Operation` as JS Genkit defines it: `{action?, id, done?, output?, error?, metadata?}`,
//! plus any extra fields (JS keeps them on round trips, e.g. `latencyMs`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::errors::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Fields beyond the schema, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{message, ...}`: a failed operation's error; extra fields are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationError {
    pub message: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Operation {
    /// Parses and checks an operation, naming the offending field on failure.
    pub fn from_json(json: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(json).map_err(|e| Error::InvalidOperation {
            detail: format!("not valid JSON: {e}"),
        })?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Object(object) = &value else {
            return Err(Error::InvalidOperation {
                detail: format!("expected an object, got {}", kind_of(&value)),
            });
        };
        match object.get("id") {
            None => return invalid("it is missing the required field 'id'"),
            Some(Value::String(id)) if id.is_empty() => return invalid("'id' is empty"),
            Some(Value::String(_)) => {}
            Some(other) => {
                return invalid(&format!("'id' must be a string, got {}", kind_of(other)));
            }
        }
        for (field, expected) in [
            ("action", "a string"),
            ("done", "a boolean"),
            ("metadata", "an object"),
        ] {
            let ok = match object.get(field) {
                None | Some(Value::Null) => true,
                Some(Value::String(_)) => field == "action",
                Some(Value::Bool(_)) => field == "done",
                Some(Value::Object(_)) => field == "metadata",
                Some(_) => false,
            };
            if !ok {
                return invalid(&format!(
                    "'{field}' must be {expected}, got {}",
                    kind_of(&object[field])
                ));
            }
        }
        match object.get("error") {
            None | Some(Value::Null) => {}
            Some(Value::Object(error))
                if matches!(error.get("message"), Some(Value::String(_))) => {}
            Some(_) => return invalid("'error' must be an object with a string 'message'"),
        }
        // Nulls mean "absent", as in genkit's pydantic model.
        let mut value = value;
        if let Value::Object(object) = &mut value {
            object.retain(|_, v| !v.is_null());
        }
        serde_json::from_value(value).map_err(|e| Error::InvalidOperation {
            detail: e.to_string(),
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("JSON values always serialise"))
    }

    /// Finished: `done` is true (with an output or an error).
    pub fn is_done(&self) -> bool {
        self.done == Some(true)
    }
}

fn invalid<T>(detail: &str) -> Result<T> {
    Err(Error::InvalidOperation {
        detail: detail.to_owned(),
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_extra_fields() {
        let json = r#"{"action":"/background-model/bg","id":"op1","done":true,"output":{"x":[1]},"metadata":{"p":1},"latencyMs":0.5}"#;
        let op = Operation::from_json(json).unwrap();
        assert!(op.is_done());
        assert_eq!(op.extra["latencyMs"], 0.5);
        assert_eq!(op.to_json(), json);
    }

    #[test]
    fn error_keeps_its_extra_fields() {
        let op =
            Operation::from_json(r#"{"id":"a","done":true,"error":{"message":"boom","code":7}}"#)
                .unwrap();
        let error = op.error.unwrap();
        assert_eq!(error.message, "boom");
        assert_eq!(error.extra["code"], 7);
    }

    #[test]
    fn nulls_are_absent() {
        let op = Operation::from_json(r#"{"id":"a","done":null,"action":null}"#).unwrap();
        assert_eq!(op.to_json(), r#"{"id":"a"}"#);
        assert!(!op.is_done());
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            ("[]", "expected an object"),
            ("{}", "missing the required field 'id'"),
            (r#"{"id":3}"#, "'id' must be a string, got a number"),
            (r#"{"id":""}"#, "'id' is empty"),
            (r#"{"id":"a","done":"yes"}"#, "'done' must be a boolean"),
            (r#"{"id":"a","action":5}"#, "'action' must be a string"),
            (
                r#"{"id":"a","metadata":[]}"#,
                "'metadata' must be an object",
            ),
            (r#"{"id":"a","error":"bad"}"#, "'error' must be an object"),
            (
                r#"{"id":"a","error":{}}"#,
                "'error' must be an object with a string 'message'",
            ),
            ("{", "not valid JSON"),
        ];
        for (json, expected) in cases {
            let err = Operation::from_json(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
