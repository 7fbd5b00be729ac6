//! Python bindings for the config schemas and the normaliser (JSON text in, JSON text out).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::config::{common_config_schema, gemini_config_schema};
use super::normalize::normalize;

/// The Dev UI (draft-07, JS-shaped) form of a JSON Schema given as JSON text.
#[pyfunction]
pub fn normalize_json_schema(schema_json: &str) -> PyResult<String> {
    let schema = serde_json::from_str(schema_json)
        .map_err(|e| PyValueError::new_err(format!("schema is not valid JSON: {e}")))?;
    Ok(normalize(schema).to_string())
}

/// Genkit's common generation config schema (JSON text), as JS emits it.
#[pyfunction]
pub fn generation_common_config_schema() -> String {
    common_config_schema().to_string()
}

/// A Gemini-compatible config schema (JSON text).
#[pyfunction]
pub fn gemini_config_json_schema() -> String {
    gemini_config_schema().to_string()
}
