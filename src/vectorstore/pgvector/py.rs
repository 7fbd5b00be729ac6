//! Python binding of the pgvector store (`genkit_parity.postgres` drives it).
//!
//! Every database call runs on the core's blocking pool through a [`Ticket`] (the GIL is
//! released for its whole duration) and completes on the caller's event loop.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use super::sql::{self, Column, Distance, Layout, VectorIndex};
use super::store::{self, PgVectorStore, Query, Rows};
use crate::engines::RetryPolicy;
use crate::engines::block_on;
use crate::engines::postgres::{PgOptions, Postgres};
use crate::errors::Error;
use crate::runtime::Ticket;
use crate::vectorstore::py_vectors::vectors_of;

/// A PostgreSQL server reached through the shared pool for its DSN.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct PgVectorEngine {
    pg: Postgres,
}

#[pymethods]
impl PgVectorEngine {
    #[new]
    #[pyo3(signature = (dsn, /, *, pool_size = 8, connect_timeout = 2.0, retry_seconds = 5.0))]
    fn new(
        dsn: &str,
        pool_size: usize,
        connect_timeout: f64,
        retry_seconds: f64,
    ) -> PyResult<Self> {
        let seconds = |value: f64, what: &str| {
            if value.is_finite() && value >= 0.0 {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(Error::InvalidArgument {
                    detail: format!("{what} must be a non-negative number of seconds"),
                })
            }
        };
        let options = PgOptions {
            pool_size,
            connect_timeout: seconds(connect_timeout, "connect_timeout")?,
            retry: RetryPolicy::with_budget(seconds(retry_seconds, "retry_seconds")?),
            ..PgOptions::default()
        };
        Ok(PgVectorEngine {
            pg: Postgres::open(dsn, options)?,
        })
    }

    /// `host:port` of the server.
    #[getter]
    fn target(&self) -> &str {
        self.pg.target()
    }

    /// Creates the table of a vector store (JS `initVectorstoreTable`).
    #[pyo3(signature = (ticket, /, *, name, schema, table, vector_size, id_column, id_type, content_column, embedding_column, metadata_json_column, metadata_columns, overwrite_existing))]
    #[allow(clippy::too_many_arguments)]
    fn init_table(
        &self,
        ticket: &Ticket,
        name: String,
        schema: String,
        table: String,
        vector_size: u32,
        id_column: String,
        id_type: String,
        content_column: String,
        embedding_column: String,
        metadata_json_column: Option<String>,
        metadata_columns: Vec<(String, String, bool)>,
        overwrite_existing: bool,
    ) -> PyResult<()> {
        let columns: Vec<Column> = metadata_columns
            .into_iter()
            .map(|(name, data_type, nullable)| Column {
                name,
                data_type,
                nullable,
            })
            .collect();
        let layout = Layout {
            schema,
            table,
            id_column,
            content_column,
            embedding_column,
            metadata_json_column,
            metadata_columns: columns.iter().map(|c| c.name.clone()).collect(),
        };
        layout.check()?;
        let ddl = sql::create_table(&layout, vector_size, &id_type, &columns, overwrite_existing)?;
        let pg = self.pg.clone();
        ticket.run_blocking(move || block_on(store::run_ddl(&pg, &name, &ddl)))
    }
}

/// One vector-store table: upserts, queries, indexes.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct PgVectorTable {
    store: Arc<PgVectorStore>,
}

fn index_of(kind: &str, m: u32, ef_construction: u32, lists: u32) -> PyResult<VectorIndex> {
    match kind {
        "hnsw" => Ok(VectorIndex::Hnsw { m, ef_construction }),
        "ivfflat" => Ok(VectorIndex::IvfFlat { lists }),
        other => Err(Error::InvalidArgument {
            detail: format!("unknown index kind {other:?} (use 'hnsw' or 'ivfflat')"),
        }
        .into()),
    }
}

#[pymethods]
impl PgVectorTable {
    #[new]
    #[pyo3(signature = (engine, /, *, name, schema, table, id_column, content_column, embedding_column, metadata_json_column, metadata_columns, distance))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        engine: &PgVectorEngine,
        name: String,
        schema: String,
        table: String,
        id_column: String,
        content_column: String,
        embedding_column: String,
        metadata_json_column: Option<String>,
        metadata_columns: Vec<String>,
        distance: &str,
    ) -> PyResult<Self> {
        let layout = Layout {
            schema,
            table,
            id_column,
            content_column,
            embedding_column,
            metadata_json_column,
            metadata_columns,
        };
        layout.check()?;
        let store =
            PgVectorStore::new(engine.pg.clone(), name, layout, Distance::parse(distance)?)?;
        Ok(PgVectorTable {
            store: Arc::new(store),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        self.store.name()
    }

    /// Upserts one batch (one statement, one transaction); resolves to the rows written.
    #[pyo3(signature = (ticket, /, *, ids, contents, embeddings, metadata_json, columns_json))]
    fn upsert(
        &self,
        ticket: &Ticket,
        ids: Vec<String>,
        contents: Vec<String>,
        embeddings: &Bound<'_, PyAny>,
        metadata_json: Vec<Option<String>>,
        columns_json: Vec<Option<String>>,
    ) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        let rows = Rows {
            ids,
            contents,
            embeddings: vectors_of(embeddings)?,
            metadata_json,
            columns_json,
        };
        ticket.run_blocking(move || block_on(store.upsert(rows)))
    }

    /// The `k` nearest rows as `(id, content, metadata_json, columns_json, distance)`.
    #[pyo3(signature = (ticket, embedding, k, /, *, filter_json = None, unsafe_sql_filter = None, settings = Vec::new()))]
    fn query(
        &self,
        ticket: &Ticket,
        embedding: Vec<f32>,
        k: i64,
        filter_json: Option<String>,
        unsafe_sql_filter: Option<String>,
        settings: Vec<(String, String)>,
    ) -> PyResult<()> {
        let filter = filter_json
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| Error::InvalidJson {
                    what: "filter".into(),
                    detail: e.to_string(),
                })
            })
            .transpose()?;
        let store = Arc::clone(&self.store);
        let query = Query {
            embedding,
            k,
            filter,
            unsafe_sql_filter,
            settings,
        };
        ticket.run_blocking(move || {
            let hits = block_on(store.query(query))?;
            Ok(hits
                .into_iter()
                .map(|h| (h.id, h.content, h.metadata_json, h.columns_json, h.distance))
                .collect::<Vec<_>>())
        })
    }

    /// Builds (or rebuilds) the vector index `index_name`.
    #[pyo3(signature = (ticket, /, *, index_name, kind, m = 16, ef_construction = 64, lists = 100, concurrently = false))]
    #[allow(clippy::too_many_arguments)]
    fn apply_index(
        &self,
        ticket: &Ticket,
        index_name: String,
        kind: &str,
        m: u32,
        ef_construction: u32,
        lists: u32,
        concurrently: bool,
    ) -> PyResult<()> {
        let index = index_of(kind, m, ef_construction, lists)?;
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || block_on(store.apply_index(&index_name, &index, concurrently)))
    }

    fn drop_index(&self, ticket: &Ticket, index_name: String) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || block_on(store.drop_index(&index_name)))
    }

    fn count(&self, ticket: &Ticket) -> PyResult<()> {
        let store = Arc::clone(&self.store);
        ticket.run_blocking(move || block_on(store.count()))
    }
}
