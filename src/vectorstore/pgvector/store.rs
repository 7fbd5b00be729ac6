//! A pgvector table as a vector store: batch upserts, k-NN queries, vector indexes.
//!
//! Every call goes through the shared PostgreSQL connection layer ([`Postgres`]): pooled
//! connections, retries across server restarts, `UNAVAILABLE` when the server stays down.
//! Errors are reported as [`Error::VectorStore`] naming the store (`postgres/<table>`).

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio_postgres::IsolationLevel;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::sql::{self, CatalogColumn, Distance, Layout, VectorIndex};
use super::vector::{JsonText, Uuid, Vector};
use crate::engines::postgres::Postgres;
use crate::errors::{Error, Result};

/// Query-time settings pgvector reads (applied with `SET LOCAL` semantics).
const QUERY_SETTINGS: &[&str] = &["hnsw.ef_search", "ivfflat.probes", "hnsw.iterative_scan"];

/// After a `COPY` of a batch hit an existing id, this many batches go straight to the upsert
/// statement before `COPY` is tried again.
const UPSERT_BATCHES_AFTER_CONFLICT: u32 = 8;

/// One row found by a query.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub id: String,
    pub content: String,
    /// The JSON metadata column's text (None when NULL or not stored).
    pub metadata_json: Option<String>,
    /// The metadata columns as one JSON object's text (None when there are none).
    pub columns_json: Option<String>,
    /// The store's distance (`<=>`, `<->`, or the inner product itself for `InnerProduct`).
    pub distance: f64,
}

/// One batch of rows to upsert, column by column.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    pub ids: Vec<String>,
    pub contents: Vec<String>,
    pub embeddings: Vec<Vec<f32>>,
    /// Each row's whole metadata as JSON text (ignored when the table stores none).
    pub metadata_json: Vec<Option<String>>,
    /// Each row's metadata-column values as one JSON object (ignored when there are none).
    pub columns_json: Vec<Option<String>>,
}

/// The knobs of one query.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub embedding: Vec<f32>,
    pub k: i64,
    pub filter: Option<Value>,
    /// A raw SQL condition the caller asked for explicitly (`unsafe_sql_filter=`).
    pub unsafe_sql_filter: Option<String>,
    /// `(setting, value)` pairs such as `("hnsw.ef_search", "100")`.
    pub settings: Vec<(String, String)>,
}

pub struct PgVectorStore {
    pg: Postgres,
    layout: Layout,
    distance: Distance,
    name: String,
    /// The upsert statement, written once the id column's type is known.
    upsert_sql: Mutex<Option<Arc<String>>>,
    /// The table's columns, read once (and again after the table was reported missing).
    catalog: Mutex<Option<Arc<Vec<CatalogColumn>>>>,
    /// Batches left to send as upserts without trying `COPY` first (see `copy_fresh_rows`).
    upserts_only: AtomicU32,
}

impl PgVectorStore {
    pub fn new(pg: Postgres, name: String, layout: Layout, distance: Distance) -> Result<Self> {
        Ok(PgVectorStore {
            pg,
            layout,
            distance,
            name,
            upsert_sql: Mutex::new(None),
            catalog: Mutex::new(None),
            upserts_only: AtomicU32::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn fail(&self, status: &'static str, detail: impl Into<String>) -> Error {
        Error::VectorStore {
            store: self.name.clone(),
            status,
            detail: detail.into(),
        }
    }

    /// A core or engine error as this store's error, with the status a caller can act on.
    fn wrap(&self, err: Error) -> Error {
        match err {
            Error::VectorStore { .. } => err,
            Error::Unavailable { .. } => self.fail("UNAVAILABLE", err.to_string()),
            Error::Engine { ref code, .. } => self.fail(engine_status(code), err.to_string()),
            Error::InvalidArgument { detail } => self.fail("INVALID_ARGUMENT", detail),
            other => self.fail("INTERNAL", other.to_string()),
        }
    }

    /// The table's columns, checked against the layout (JS `checkColumns`, awaited).
    pub async fn catalog(&self) -> Result<Arc<Vec<CatalogColumn>>> {
        if let Some(columns) = self
            .catalog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(columns);
        }
        let (schema, table) = (&self.layout.schema, &self.layout.table);
        let rows = self
            .pg
            .run(async |client| {
                let statement = client.prepare_cached(sql::CATALOG_COLUMNS).await?;
                Ok(client.query(&statement, &[schema, table]).await?)
            })
            .await
            .map_err(|e| self.wrap(e))?;
        let columns: Vec<CatalogColumn> = rows
            .iter()
            .map(|row| CatalogColumn {
                name: row.get(0),
                sql_type: row.get(1),
                dimensions: row
                    .get::<_, Option<i32>>(2)
                    .and_then(|d| u32::try_from(d).ok()),
            })
            .collect();
        if columns.is_empty() {
            return Err(self.fail(
                "NOT_FOUND",
                format!(
                    "table \"{schema}\".\"{table}\" does not exist (create it with init_vectorstore_table)"
                ),
            ));
        }
        self.check_layout(&columns)?;
        let columns = Arc::new(columns);
        *self.catalog.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&columns));
        Ok(columns)
    }

    fn check_layout(&self, columns: &[CatalogColumn]) -> Result<()> {
        let find = |name: &str| columns.iter().find(|c| c.name == name);
        let mut wanted = vec![&self.layout.id_column, &self.layout.content_column];
        wanted.extend(self.layout.metadata_json_column.iter());
        wanted.extend(self.layout.metadata_columns.iter());
        let missing: Vec<&str> = wanted
            .into_iter()
            .filter(|c| find(c).is_none())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(self.fail(
                "FAILED_PRECONDITION",
                format!("table {} has no column(s) {missing:?}", self.layout.table),
            ));
        }
        match find(&self.layout.embedding_column) {
            Some(c) if c.sql_type.starts_with("vector") => Ok(()),
            Some(c) => Err(self.fail(
                "FAILED_PRECONDITION",
                format!(
                    "column {:?} is {}, not a pgvector vector",
                    c.name, c.sql_type
                ),
            )),
            None => Err(self.fail(
                "FAILED_PRECONDITION",
                format!(
                    "table {} has no embedding column {:?}",
                    self.layout.table, self.layout.embedding_column
                ),
            )),
        }
    }

    fn forget_catalog_if_missing(&self, err: &Error) {
        if matches!(
            err,
            Error::VectorStore {
                status: "NOT_FOUND" | "FAILED_PRECONDITION",
                ..
            }
        ) {
            *self.catalog.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    fn check_dimensions(&self, columns: &[CatalogColumn], vector: &[f32]) -> Result<()> {
        let expected = columns
            .iter()
            .find(|c| c.name == self.layout.embedding_column)
            .and_then(|c| c.dimensions);
        match expected {
            Some(dims) if dims as usize != vector.len() => Err(self.fail(
                "INVALID_ARGUMENT",
                format!(
                    "embedding has {} dimensions but column {:?} holds vector({dims})",
                    vector.len(),
                    self.layout.embedding_column
                ),
            )),
            _ if vector.iter().any(|v| !v.is_finite()) => {
                Err(self.fail("INVALID_ARGUMENT", "embedding contains NaN or infinity"))
            }
            // A zero vector has no direction: its cosine distance to anything is NaN, which
            // sorts after every real distance and scores nothing.
            _ if self.distance == Distance::Cosine && vector.iter().all(|&v| v == 0.0) => Err(self
                .fail(
                    "INVALID_ARGUMENT",
                    "embedding is all zeros, which has no cosine distance to anything",
                )),
            _ => Ok(()),
        }
    }

    fn upsert_sql(&self, columns: &[CatalogColumn]) -> Result<Arc<String>> {
        let mut slot = self
            .upsert_sql
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(text) = slot.as_ref() {
            return Ok(Arc::clone(text));
        }
        let id_type = columns
            .iter()
            .find(|c| c.name == self.layout.id_column)
            .map_or("text", |c| c.sql_type.as_str());
        let text = Arc::new(sql::upsert(&self.layout, id_type).map_err(|e| self.wrap(e))?);
        *slot = Some(Arc::clone(&text));
        Ok(text)
    }

    /// Upserts one batch in one statement and one transaction. Row `i` is `rows.ids[i]`,
    /// `rows.contents[i]`, `rows.embeddings[i]`, its JSON metadata and its metadata columns
    /// (one JSON object). A repeated id keeps its last row. Nothing of a failed batch is written.
    pub async fn upsert(&self, rows: Rows) -> Result<u64> {
        let n = rows.ids.len();
        if [
            rows.contents.len(),
            rows.embeddings.len(),
            rows.metadata_json.len(),
            rows.columns_json.len(),
        ]
        .iter()
        .any(|len| *len != n)
        {
            return Err(self.fail("INVALID_ARGUMENT", "the row arrays differ in length"));
        }
        let columns = self.catalog().await?;
        for embedding in &rows.embeddings {
            self.check_dimensions(&columns, embedding)?;
        }
        let statement_sql = self.upsert_sql(&columns)?;
        // Last write wins within a batch (ON CONFLICT cannot touch a row twice), and rows go
        // in id order so concurrent batches lock rows in the same order (no deadlocks).
        let mut latest: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (position, id) in rows.ids.iter().enumerate() {
            latest.insert(id.as_str(), position);
        }
        let mut order: Vec<usize> = latest.into_values().collect();
        if order.is_empty() {
            return Ok(0);
        }
        order.sort_by(|a, b| rows.ids[*a].cmp(&rows.ids[*b]));
        let pick = |values: &[String]| -> Vec<String> {
            order.iter().map(|i| values[*i].clone()).collect()
        };
        let pick_optional = |values: &[Option<String>]| -> Vec<Option<String>> {
            order.iter().map(|i| values[*i].clone()).collect()
        };
        let ids = pick(&rows.ids);
        let contents = pick(&rows.contents);
        let metadata = pick_optional(&rows.metadata_json);
        let cols = pick_optional(&rows.columns_json);
        let mut embeddings = rows.embeddings;
        let vectors: Vec<Vector> = order
            .iter()
            .map(|i| Vector(std::mem::take(&mut embeddings[*i])))
            .collect();
        if let Some(written) = self
            .copy_fresh_rows(&columns, &ids, &contents, &vectors, &metadata)
            .await?
        {
            return Ok(written);
        }
        let statement_sql = statement_sql.as_str();
        let result = self
            .pg
            .transaction(async |tx| {
                let statement = tx.prepare_cached(statement_sql).await?;
                Ok(tx
                    .execute(&statement, &[&ids, &contents, &vectors, &metadata, &cols])
                    .await?)
            })
            .await
            .map_err(|e| self.wrap(e));
        if let Err(err) = &result {
            self.forget_catalog_if_missing(err);
        }
        result
    }

    /// Bulk-loads a batch of rows that are all new with one binary `COPY` (the fastest way
    /// into PostgreSQL), when the layout allows it ([`sql::copy_plan`]). Returns `None` when
    /// the batch must take the upsert statement instead: the layout cannot be copied, an id
    /// is not a canonical uuid, or some id already exists (the `COPY` fails on the primary
    /// key, its transaction rolls back, and nothing of it is written).
    async fn copy_fresh_rows(
        &self,
        columns: &[CatalogColumn],
        ids: &[String],
        contents: &[String],
        vectors: &[Vector],
        metadata: &[Option<String>],
    ) -> Result<Option<u64>> {
        if self.upserts_only.load(Ordering::Relaxed) > 0 {
            // A recent batch overlapped existing rows: re-indexing, most likely; skip the
            // COPY attempt for a while rather than fail it batch after batch.
            self.upserts_only.fetch_sub(1, Ordering::Relaxed);
            return Ok(None);
        }
        let Some(plan) = sql::copy_plan(&self.layout, columns).map_err(|e| self.wrap(e))? else {
            return Ok(None);
        };
        let uuids: Vec<Uuid> = if plan.uuid_ids {
            match ids
                .iter()
                .map(|id| Uuid::parse(id))
                .collect::<Option<Vec<Uuid>>>()
            {
                Some(uuids) => uuids,
                None => return Ok(None),
            }
        } else {
            Vec::new()
        };
        let (plan, uuids) = (&plan, &uuids);
        let result = self
            .pg
            .transaction(async |tx| {
                let vector_type = tx.prepare_cached("SELECT $1::vector").await?.params()[0].clone();
                let mut types = vec![
                    if plan.uuid_ids {
                        Type::UUID
                    } else {
                        Type::TEXT
                    },
                    Type::TEXT,
                    vector_type,
                ];
                match plan.jsonb {
                    Some(true) => types.push(Type::JSONB),
                    Some(false) => types.push(Type::JSON),
                    None => {}
                }
                let sink = tx.copy_in(plan.sql.as_str()).await?;
                let writer = BinaryCopyInWriter::new(sink, &types);
                let mut writer = pin!(writer);
                for row in 0..ids.len() {
                    let id: &(dyn ToSql + Sync) = if plan.uuid_ids {
                        &uuids[row]
                    } else {
                        &ids[row]
                    };
                    let json = metadata[row].as_deref().map(JsonText);
                    if plan.jsonb.is_some() {
                        writer
                            .as_mut()
                            .write(&[id, &contents[row], &vectors[row], &json])
                            .await?;
                    } else {
                        writer
                            .as_mut()
                            .write(&[id, &contents[row], &vectors[row]])
                            .await?;
                    }
                }
                Ok(writer.finish().await?)
            })
            .await;
        match result {
            Ok(written) => Ok(Some(written)),
            Err(Error::Engine { ref code, .. }) if code == "23505" => {
                self.upserts_only
                    .store(UPSERT_BATCHES_AFTER_CONFLICT, Ordering::Relaxed);
                Ok(None)
            }
            Err(err) => {
                let err = self.wrap(err);
                self.forget_catalog_if_missing(&err);
                Err(err)
            }
        }
    }

    /// The `k` nearest rows to `query.embedding`, nearest first.
    pub async fn query(&self, query: Query) -> Result<Vec<Hit>> {
        let columns = self.catalog().await?;
        self.check_dimensions(&columns, &query.embedding)?;
        if query.k < 1 {
            return Err(self.fail("INVALID_ARGUMENT", "k must be at least 1"));
        }
        for (setting, _) in &query.settings {
            if !QUERY_SETTINGS.contains(&setting.as_str()) {
                return Err(self.fail(
                    "INVALID_ARGUMENT",
                    format!("unknown query setting {setting:?} (use one of {QUERY_SETTINGS:?})"),
                ));
            }
        }
        let filter = match &query.filter {
            Some(filter) => Some(
                sql::FilterCompiler::new(&self.layout, &columns, 3)
                    .compile(filter)
                    .map_err(|e| self.wrap(e))?,
            ),
            None => None,
        };
        let mut conditions = Vec::new();
        if let Some(filter) = &filter {
            conditions.push(filter.sql.clone());
        }
        if let Some(raw) = &query.unsafe_sql_filter {
            conditions.push(format!("({raw})"));
        }
        let condition = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        let text = sql::knn_query(&self.layout, self.distance, condition.as_deref())
            .map_err(|e| self.wrap(e))?;
        let vector = Vector(query.embedding);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&vector, &query.k];
        if let Some(filter) = &filter {
            params.extend(filter.params.iter().map(|p| p as &(dyn ToSql + Sync)));
        }
        let params = &params;
        let text = &text;
        let settings = &query.settings;
        let rows = if settings.is_empty() {
            self.pg
                .run(async |client| {
                    let statement = client.prepare_cached(text).await?;
                    Ok(client.query(&statement, params).await?)
                })
                .await
        } else {
            // pgvector's settings must hold for this query only: set them transaction-locally
            // (`set_config(.., true)` = SET LOCAL) inside the query's own transaction.
            self.pg
                .transaction_with(IsolationLevel::ReadCommitted, true, async |tx| {
                    for (setting, value) in settings {
                        tx.execute("SELECT set_config($1, $2, true)", &[setting, value])
                            .await?;
                    }
                    let statement = tx.prepare_cached(text).await?;
                    Ok(tx.query(&statement, params).await?)
                })
                .await
        };
        let rows = rows.map_err(|e| {
            let err = self.wrap(e);
            self.forget_catalog_if_missing(&err);
            err
        })?;
        let flip = self.distance == Distance::InnerProduct;
        let mut hits = Vec::with_capacity(rows.len());
        for row in &rows {
            let column_error = |column: usize, e: tokio_postgres::Error| {
                self.fail(
                    "DATA_LOSS",
                    format!("a row cannot be read (column {column}): {e}"),
                )
            };
            // A row with no embedding has no distance: it is no neighbour of anything (an
            // index scan would not return it either). NULLs sort last, so only rows past the
            // nearest ones are skipped.
            let Some(distance) = row
                .try_get::<_, Option<f64>>(4)
                .map_err(|e| column_error(4, e))?
            else {
                continue;
            };
            let id: Option<String> = row.try_get(0).map_err(|e| column_error(0, e))?;
            let id = id.ok_or_else(|| {
                self.fail(
                    "DATA_LOSS",
                    format!(
                        "a row has NULL in its id column {:?}",
                        self.layout.id_column
                    ),
                )
            })?;
            let content: Option<String> = row.try_get(1).map_err(|e| column_error(1, e))?;
            let content = content.ok_or_else(|| {
                self.fail(
                    "DATA_LOSS",
                    format!(
                        "row {id} has NULL in its content column {:?}",
                        self.layout.content_column
                    ),
                )
            })?;
            hits.push(Hit {
                id,
                content,
                metadata_json: row.try_get(2).map_err(|e| column_error(2, e))?,
                columns_json: row.try_get(3).map_err(|e| column_error(3, e))?,
                distance: if flip { -distance } else { distance },
            });
        }
        Ok(hits)
    }

    /// Builds a vector index (replacing one of the same name), JS `applyVectorIndex`.
    pub async fn apply_index(
        &self,
        name: &str,
        index: &VectorIndex,
        concurrently: bool,
    ) -> Result<()> {
        self.catalog().await?;
        let drop = sql::drop_index(&self.layout, name).map_err(|e| self.wrap(e))?;
        let create = sql::create_index(&self.layout, name, index, self.distance, concurrently)
            .map_err(|e| self.wrap(e))?;
        let (drop, create) = (&drop, &create);
        if concurrently {
            // CREATE INDEX CONCURRENTLY cannot run inside a transaction.
            self.pg
                .run(async |client| {
                    client.batch_execute(drop).await?;
                    client.batch_execute(create).await?;
                    Ok(())
                })
                .await
        } else {
            self.pg
                .transaction(async |tx| {
                    tx.batch_execute(drop).await?;
                    tx.batch_execute(create).await?;
                    Ok(())
                })
                .await
        }
        .map_err(|e| self.wrap(e))
    }

    /// Drops the vector index `name` (JS `dropVectorIndex`; exact search afterwards).
    pub async fn drop_index(&self, name: &str) -> Result<()> {
        let drop = sql::drop_index(&self.layout, name).map_err(|e| self.wrap(e))?;
        let drop = &drop;
        self.pg
            .run(async |client| {
                client.batch_execute(drop).await?;
                Ok(())
            })
            .await
            .map_err(|e| self.wrap(e))
    }

    /// How many rows the table holds.
    pub async fn count(&self) -> Result<i64> {
        let text = format!("SELECT count(*) FROM {}", self.layout.qualified()?);
        let text = &text;
        self.pg
            .run(async |client| {
                let row = client.query_one(text.as_str(), &[]).await?;
                Ok(row.get::<_, i64>(0))
            })
            .await
            .map_err(|e| self.wrap(e))
    }
}

/// Runs DDL for table `name` under an advisory lock (concurrent `init` calls take turns).
pub async fn run_ddl(pg: &Postgres, name: &str, ddl: &str) -> Result<()> {
    let lock_key = lock_key(name);
    let result = pg.ensure_schema(lock_key, ddl).await;
    result.map_err(|err| {
        let (status, hint) = match &err {
            Error::Unavailable { .. } => ("UNAVAILABLE", ""),
            // `CREATE EXTENSION vector` on a server without pgvector's files.
            Error::Engine { code, .. } if code == "0A000" || code == "58P01" => (
                "FAILED_PRECONDITION",
                " (is pgvector installed on the server? tools/install_pgvector.sh builds it)",
            ),
            // A column type that does not exist: `vector` without the extension in the
            // search path, or a metadata column's `data_type` misspelt.
            Error::Engine { code, .. } if code == "42704" => (
                "FAILED_PRECONDITION",
                " (is pgvector installed in this database, and is every Column data_type a PostgreSQL type?)",
            ),
            Error::Engine { code, .. } => (engine_status(code), ""),
            Error::InvalidArgument { .. } => ("INVALID_ARGUMENT", ""),
            _ => ("INTERNAL", ""),
        };
        Error::VectorStore {
            store: name.to_owned(),
            status,
            detail: format!("{err}{hint}"),
        }
    })
}

/// The Genkit status of a PostgreSQL error, by SQLSTATE: what a caller can act on.
fn engine_status(code: &str) -> &'static str {
    match code {
        // A missing table, schema or type.
        "42P01" | "3F000" | "42704" => "NOT_FOUND",
        "42P07" | "23505" => "ALREADY_EXISTS",
        "42501" => "PERMISSION_DENIED",
        // A syntax error: an `unsafe_sql_filter` that is not SQL.
        "42601" => "INVALID_ARGUMENT",
        c if c.starts_with("22") || c.starts_with("23") || c == "42804" => "INVALID_ARGUMENT",
        c if c.starts_with("42") => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

fn lock_key(name: &str) -> i64 {
    // FNV-1a: stable across processes (the advisory lock must be the same key everywhere).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    //! Against the machine's shared PostgreSQL, in a fresh database of this test's own
    //! (pgvector installed by `make pgvector`); the database is dropped at the end.

    use super::*;
    use crate::engines::block_on;
    use crate::engines::postgres::PgOptions;
    use serde_json::json;

    const ADMIN: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

    async fn admin(sql: &str) {
        let pg = Postgres::open(ADMIN, PgOptions::default()).unwrap();
        let sql = sql.to_owned();
        let sql = &sql;
        pg.run(async |client| Ok(client.batch_execute(sql).await?))
            .await
            .unwrap();
    }

    fn layout() -> Layout {
        Layout {
            schema: "public".into(),
            table: "docs".into(),
            id_column: "id".into(),
            content_column: "content".into(),
            embedding_column: "embedding".into(),
            metadata_json_column: Some("json_metadata".into()),
            metadata_columns: vec!["year".into()],
        }
    }

    fn rows(items: &[(&str, &str, [f32; 3], i64)]) -> Rows {
        Rows {
            ids: items.iter().map(|r| r.0.to_owned()).collect(),
            contents: items.iter().map(|r| r.1.to_owned()).collect(),
            embeddings: items.iter().map(|r| r.2.to_vec()).collect(),
            metadata_json: items
                .iter()
                .map(|r| Some(json!({"year": r.3, "text": r.1}).to_string()))
                .collect(),
            columns_json: items
                .iter()
                .map(|r| Some(json!({"year": r.3}).to_string()))
                .collect(),
        }
    }

    #[test]
    fn upserts_queries_filters_and_typed_errors_on_a_real_table() {
        let db = format!("gp_rs_{}", std::process::id());
        block_on(async {
            admin(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
            admin(&format!("CREATE DATABASE {db}")).await;
            let pg = Postgres::open(
                &format!("postgresql://postgres@127.0.0.1:5432/{db}"),
                PgOptions::default(),
            )
            .unwrap();
            let columns = [sql::Column {
                name: "year".into(),
                data_type: "INTEGER".into(),
                nullable: true,
            }];
            let ddl = sql::create_table(&layout(), 3, "TEXT", &columns, false).unwrap();
            run_ddl(&pg, "postgres/docs", &ddl).await.unwrap();
            let store = PgVectorStore::new(
                pg.clone(),
                "postgres/docs".into(),
                layout(),
                Distance::Cosine,
            )
            .unwrap();

            let written = store
                .upsert(rows(&[
                    ("a", "aaa", [3.0, 0.0, 0.0], 2020),
                    ("b", "aab", [2.0, 1.0, 0.0], 2024),
                    ("a", "aaa again", [3.0, 0.0, 0.0], 2021),
                ]))
                .await
                .unwrap();
            assert_eq!(written, 2, "a repeated id in one batch keeps its last row");
            assert_eq!(store.count().await.unwrap(), 2);

            let query = |filter: Option<Value>| Query {
                embedding: vec![1.0, 0.0, 0.0],
                k: 10,
                filter,
                ..Query::default()
            };
            let hits = store.query(query(None)).await.unwrap();
            assert_eq!(
                hits.iter().map(|h| h.content.as_str()).collect::<Vec<_>>(),
                ["aaa again", "aab"]
            );
            assert!(hits[0].distance.abs() < 1e-9);
            assert_eq!(hits[0].columns_json.as_deref(), Some(r#"{"year" : 2021}"#));

            let newer = store
                .query(query(Some(json!({"year": {"$gte": 2022}}))))
                .await
                .unwrap();
            assert_eq!(newer.len(), 1);
            assert_eq!(newer[0].id, "b");
            let by_json = store
                .query(query(Some(json!({"text": {"$in": ["aab"]}}))))
                .await
                .unwrap();
            assert_eq!(by_json[0].id, "b");

            let mut wrong = rows(&[("c", "abc", [1.0, 1.0, 1.0], 2025)]);
            wrong.embeddings[0].push(1.0);
            let err = store.upsert(wrong).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::VectorStore {
                        status: "INVALID_ARGUMENT",
                        ..
                    }
                ),
                "{err}"
            );

            let missing = PgVectorStore::new(
                pg,
                "postgres/nope".into(),
                Layout {
                    table: "nope".into(),
                    ..layout()
                },
                Distance::Cosine,
            )
            .unwrap();
            let err = missing.query(query(None)).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::VectorStore {
                        status: "NOT_FOUND",
                        ..
                    }
                ),
                "{err}"
            );
            admin(&format!("DROP DATABASE {db} WITH (FORCE)")).await;
        });
    }
}
