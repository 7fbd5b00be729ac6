//! genkit-parity's Rust core. This file only declares what Python sees as
//! `genkit_parity._native`; each feature lives in its own module.

pub mod dap;
pub mod engines;
pub mod errors;
pub mod operation;
pub mod partial_json;
pub mod runtime;
pub mod schema;
pub mod session;
pub mod telemetry;
pub mod timer;
pub mod vectorstore;

#[pyo3::pymodule(gil_used = false)]
mod _native {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::dap::py::{DapCache, DapSnapshot, FetchLease};
    #[pymodule_export]
    use crate::operation::py::{OperationPoller, OperationStoreCore, normalize_operation};
    #[pymodule_export]
    use crate::partial_json::py::{ArrayItemsStream, JsonStream, parse_strict_json};
    #[pymodule_export]
    use crate::runtime::{CompletionQueue, Ticket};
    #[pymodule_export]
    use crate::schema::py::{
        gemini_config_json_schema, generation_common_config_schema, normalize_json_schema,
    };
    #[pymodule_export]
    use crate::session::py::{
        DiskStoreCore, MemoryStoreCore, SharedStoreCore, py_validate_session_id,
    };
    #[pymodule_export]
    use crate::telemetry::py::{LogSink, SpanSink, adjust_span_attributes};
    #[pymodule_export]
    use crate::vectorstore::pgvector::py::{PgVectorEngine, PgVectorTable};
    #[pymodule_export]
    use crate::vectorstore::py::{LocalVectorIndex, js_document_id, js_json_text};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
