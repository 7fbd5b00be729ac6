//! SQL text for a pgvector table: DDL, upserts, k-NN queries, indexes and metadata filters.
//!
//! Identifiers are always quoted here; values never appear in SQL text, they travel as
//! parameters (filters included: JS pasted its filter string into `WHERE`).

use serde_json::Value;

use crate::errors::{Error, Result};

/// Quotes an identifier for PostgreSQL (`"a""b"`). Names with a NUL are refused.
pub fn quote_ident(name: &str) -> Result<String> {
    if name.is_empty() || name.contains('\0') {
        return Err(Error::InvalidArgument {
            detail: format!("invalid SQL identifier {name:?}"),
        });
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A column type as written in DDL: letters, digits, spaces, `_`, `(`, `)`, `,`, `[`, `]`.
pub fn check_type(data_type: &str) -> Result<&str> {
    let ok = data_type
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && data_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _(),[]".contains(c));
    if ok {
        Ok(data_type)
    } else {
        Err(Error::InvalidArgument {
            detail: format!("invalid column type {data_type:?}"),
        })
    }
}

/// How distances are computed (JS `DistanceStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distance {
    Cosine,
    Euclidean,
    InnerProduct,
}

impl Distance {
    pub fn parse(name: &str) -> Result<Distance> {
        match name.to_ascii_lowercase().as_str() {
            "cosine" | "cosine_distance" => Ok(Distance::Cosine),
            "l2" | "euclidean" => Ok(Distance::Euclidean),
            "inner_product" | "ip" | "dot" => Ok(Distance::InnerProduct),
            _ => Err(Error::InvalidArgument {
                detail: format!(
                    "unknown distance strategy {name:?} (use 'cosine', 'euclidean' or 'inner_product')"
                ),
            }),
        }
    }

    /// The ordering operator (`<#>` is the *negative* inner product, ascending).
    pub fn operator(self) -> &'static str {
        match self {
            Distance::Cosine => "<=>",
            Distance::Euclidean => "<->",
            Distance::InnerProduct => "<#>",
        }
    }

    pub fn ops_class(self) -> &'static str {
        match self {
            Distance::Cosine => "vector_cosine_ops",
            Distance::Euclidean => "vector_l2_ops",
            Distance::InnerProduct => "vector_ip_ops",
        }
    }
}

/// A metadata column of the table (JS `Column`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

/// Where a store's data lives in its table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub schema: String,
    pub table: String,
    pub id_column: String,
    pub content_column: String,
    pub embedding_column: String,
    /// The JSON column holding each document's whole metadata (None: not stored).
    pub metadata_json_column: Option<String>,
    pub metadata_columns: Vec<String>,
}

/// PostgreSQL's longest identifier (NAMEDATALEN - 1 bytes); a longer one is cut short in
/// DDL, after which the name given no longer finds the table.
const MAX_IDENT_BYTES: usize = 63;

/// `name` quoted, if PostgreSQL keeps it whole (not empty, no NUL, at most 63 bytes).
fn full_ident(what: &str, name: &str) -> Result<String> {
    if name.len() > MAX_IDENT_BYTES {
        return Err(Error::InvalidArgument {
            detail: format!(
                "{what} {name:?} is {} bytes long; PostgreSQL names hold at most {MAX_IDENT_BYTES}",
                name.len()
            ),
        });
    }
    quote_ident(name)
}

/// An index name as DDL names it: cut short by PostgreSQL, a long (default
/// `<table>genkitvectorindex`) name could match the table's or another index's.
fn index_ident(name: &str) -> Result<String> {
    full_ident("index name", name).map_err(|e| Error::InvalidArgument {
        detail: format!("{e} (pass a shorter name=)"),
    })
}

impl Layout {
    /// Each name is a usable identifier: not empty, no NUL, at most 63 bytes.
    pub fn check(&self) -> Result<()> {
        let mut names = [
            ("schema", &self.schema),
            ("table", &self.table),
            ("id_column", &self.id_column),
            ("content_column", &self.content_column),
            ("embedding_column", &self.embedding_column),
        ]
        .into_iter()
        .chain(
            self.metadata_json_column
                .iter()
                .map(|name| ("metadata_json_column", name)),
        )
        .chain(
            self.metadata_columns
                .iter()
                .map(|name| ("metadata column", name)),
        );
        names.try_for_each(|(what, name)| full_ident(what, name).map(drop))
    }

    pub fn qualified(&self) -> Result<String> {
        Ok(format!(
            "{}.{}",
            quote_ident(&self.schema)?,
            quote_ident(&self.table)?
        ))
    }

    /// Every column an upsert writes, in order: id, content, embedding, json, metadata.
    fn written_columns(&self) -> Vec<&str> {
        let mut columns = vec![
            self.id_column.as_str(),
            self.content_column.as_str(),
            self.embedding_column.as_str(),
        ];
        columns.extend(self.metadata_json_column.as_deref());
        columns.extend(self.metadata_columns.iter().map(String::as_str));
        columns
    }
}

/// JS's `initVectorstoreTable` DDL, with a default for the id (JS has none).
pub fn create_table(
    layout: &Layout,
    vector_size: u32,
    id_type: &str,
    columns: &[Column],
    overwrite: bool,
) -> Result<String> {
    if vector_size == 0 {
        return Err(Error::InvalidArgument {
            detail: "vector_size must be at least 1".into(),
        });
    }
    let table = layout.qualified()?;
    let id_type = check_type(id_type)?;
    let id_default = if id_type.eq_ignore_ascii_case("uuid") {
        " DEFAULT gen_random_uuid()"
    } else {
        ""
    };
    let mut ddl = String::from("CREATE EXTENSION IF NOT EXISTS vector;\n");
    if overwrite {
        ddl.push_str(&format!("DROP TABLE IF EXISTS {table};\n"));
    }
    ddl.push_str(&format!(
        "CREATE TABLE {table} (\n  {} {id_type} PRIMARY KEY{id_default},\n  {} TEXT NOT NULL,\n  {} vector({vector_size}) NOT NULL",
        quote_ident(&layout.id_column)?,
        quote_ident(&layout.content_column)?,
        quote_ident(&layout.embedding_column)?,
    ));
    for column in columns {
        ddl.push_str(&format!(
            ",\n  {} {}{}",
            quote_ident(&column.name)?,
            check_type(&column.data_type)?,
            if column.nullable { "" } else { " NOT NULL" }
        ));
    }
    if let Some(json) = &layout.metadata_json_column {
        ddl.push_str(&format!(",\n  {} JSON", quote_ident(json)?));
    }
    ddl.push_str("\n);");
    Ok(ddl)
}

/// The batch upsert, zipping typed arrays with `unnest`: `$1` ids (text, cast to the id
/// column's type `id_type`), `$2` contents, `$3` embeddings (binary `vector[]`), `$4` JSON
/// metadata (text), `$5` the metadata columns of each row as one JSON object (text), which
/// `jsonb_populate_record` converts to the columns' own types (only when there are any).
pub fn upsert(layout: &Layout, id_type: &str) -> Result<String> {
    let table = layout.qualified()?;
    let columns = layout.written_columns();
    let quoted: Vec<String> = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Result<_>>()?;
    let mut selected = vec![
        format!("u.id::{}", check_type(id_type)?),
        "u.content".to_owned(),
        "u.e".to_owned(),
    ];
    if layout.metadata_json_column.is_some() {
        selected.push("u.m::json".to_owned());
    }
    let mut from = String::from(
        "unnest($1::text[], $2::text[], $3::vector[], $4::text[], $5::text[]) AS u(id, content, e, m, c)",
    );
    if !layout.metadata_columns.is_empty() {
        for column in &layout.metadata_columns {
            selected.push(format!("p.{}", quote_ident(column)?));
        }
        from.push_str(&format!(
            " CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, u.c::jsonb) AS p"
        ));
    }
    let id = quote_ident(&layout.id_column)?;
    let updates: Vec<String> = quoted
        .iter()
        .filter(|c| **c != id)
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    Ok(format!(
        "INSERT INTO {table} ({}) SELECT {} FROM {from} ON CONFLICT ({id}) DO UPDATE SET {}",
        quoted.join(", "),
        selected.join(", "),
        updates.join(", ")
    ))
}

/// How a batch can be bulk-loaded with binary `COPY` straight into the table: the layout
/// has no metadata columns, the id column is `uuid` or `text`, and the JSON metadata
/// column (if any) is `json` or `jsonb`. Other layouts always take the upsert statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyPlan {
    /// `COPY "schema"."table" ("id", "content", "embedding"[, "json_metadata"]) FROM STDIN (FORMAT binary)`.
    pub sql: String,
    pub uuid_ids: bool,
    /// `None` without a JSON metadata column; `Some(true)` for `jsonb`.
    pub jsonb: Option<bool>,
}

/// The binary `COPY` of a batch into the table, if the layout allows one (see [`CopyPlan`]).
pub fn copy_plan(layout: &Layout, columns: &[CatalogColumn]) -> Result<Option<CopyPlan>> {
    if !layout.metadata_columns.is_empty() {
        return Ok(None);
    }
    let type_of = |name: &str| {
        columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.sql_type.as_str())
    };
    let uuid_ids = match type_of(&layout.id_column) {
        Some("uuid") => true,
        Some("text") => false,
        _ => return Ok(None),
    };
    let jsonb = match layout.metadata_json_column.as_deref().map(type_of) {
        None => None,
        Some(Some("json")) => Some(false),
        Some(Some("jsonb")) => Some(true),
        Some(_) => return Ok(None),
    };
    let quoted: Vec<String> = layout
        .written_columns()
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Result<_>>()?;
    Ok(Some(CopyPlan {
        sql: format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            layout.qualified()?,
            quoted.join(", ")
        ),
        uuid_ids,
        jsonb,
    }))
}

/// A column of the table as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogColumn {
    pub name: String,
    /// `format_type(...)`, e.g. `integer`, `vector(384)`, `character varying(20)`.
    pub sql_type: String,
    /// The vector column's dimensions (`None` for other columns or `vector` without size).
    pub dimensions: Option<u32>,
}

/// The columns of `schema.table`: `$1` schema, `$2` table.
pub const CATALOG_COLUMNS: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
     CASE WHEN t.typname = 'vector' AND a.atttypmod > 0 THEN a.atttypmod END \
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid \
     WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY a.attnum";

/// A compiled `WHERE` clause and its text parameters (numbered from `first_param`).
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    pub sql: String,
    pub params: Vec<String>,
}

/// Compiles a metadata filter (`{"field": value}`, `{"field": {"$gt": 1}}`, `$in`, `$nin`,
/// `$ne`, `$gte`, `$lte`, `$and`/`$or` lists) against the table's columns: a metadata
/// column is compared in its own type (so its indexes apply), any other field as a key of
/// the JSON metadata column, type-checked (`"10" > 9` is false, not an error).
pub struct FilterCompiler<'a> {
    layout: &'a Layout,
    columns: &'a [CatalogColumn],
    params: Vec<String>,
    first_param: usize,
}

impl<'a> FilterCompiler<'a> {
    pub fn new(layout: &'a Layout, columns: &'a [CatalogColumn], first_param: usize) -> Self {
        FilterCompiler {
            layout,
            columns,
            params: Vec::new(),
            first_param,
        }
    }

    pub fn compile(mut self, filter: &Value) -> Result<Filter> {
        let sql = self.node(filter)?;
        Ok(Filter {
            sql,
            params: self.params,
        })
    }

    fn param(&mut self, text: String) -> String {
        self.params.push(text);
        format!("${}::text", self.first_param + self.params.len() - 1)
    }

    fn node(&mut self, filter: &Value) -> Result<String> {
        let Value::Object(fields) = filter else {
            return Err(bad_filter(format!(
                "a filter must be an object, not {filter}"
            )));
        };
        if fields.is_empty() {
            return Ok("TRUE".into());
        }
        let mut parts = Vec::with_capacity(fields.len());
        for (key, value) in fields {
            parts.push(match key.as_str() {
                "$and" | "$or" => {
                    let Value::Array(items) = value else {
                        return Err(bad_filter(format!("{key} takes a list of filters")));
                    };
                    if items.is_empty() {
                        return Err(bad_filter(format!("{key} takes a non-empty list")));
                    }
                    let joined = items
                        .iter()
                        .map(|item| self.node(item))
                        .collect::<Result<Vec<_>>>()?
                        .join(if key == "$and" { " AND " } else { " OR " });
                    format!("({joined})")
                }
                op if op.starts_with('$') => {
                    return Err(bad_filter(format!(
                        "unknown operator {op} at the top level"
                    )));
                }
                field => self.field(field, value)?,
            });
        }
        Ok(parts.join(" AND "))
    }

    fn field(&mut self, field: &str, condition: &Value) -> Result<String> {
        match condition {
            Value::Object(ops) if ops.keys().all(|k| k.starts_with('$')) && !ops.is_empty() => {
                let parts = ops
                    .iter()
                    .map(|(op, value)| self.comparison(field, op, value))
                    .collect::<Result<Vec<_>>>()?;
                Ok(parts.join(" AND "))
            }
            value => self.comparison(field, "$eq", value),
        }
    }

    fn comparison(&mut self, field: &str, op: &str, value: &Value) -> Result<String> {
        let sql_op = match op {
            "$eq" => "=",
            "$ne" => "<>",
            "$gt" => ">",
            "$gte" => ">=",
            "$lt" => "<",
            "$lte" => "<=",
            "$in" | "$nin" => return self.membership(field, op == "$nin", value),
            other => {
                return Err(bad_filter(format!(
                    "unknown operator {other} on {field:?} (use $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin)"
                )));
            }
        };
        scalar(field, value)?;
        if let Some(column) = self.column(field)? {
            let (name, sql_type) = column;
            let param = self.param(json_scalar_text(value));
            return Ok(format!("{name} {sql_op} ({param})::{sql_type}"));
        }
        let target = self.json_key(field)?;
        let param = self.param(value.to_string());
        Ok(match op {
            "$eq" => format!("{target} = ({param})::jsonb"),
            "$ne" => format!("{target} IS DISTINCT FROM ({param})::jsonb"),
            _ => format!(
                "(jsonb_typeof({target}) = jsonb_typeof(({param})::jsonb) AND {target} {sql_op} ({param})::jsonb)"
            ),
        })
    }

    fn membership(&mut self, field: &str, negate: bool, value: &Value) -> Result<String> {
        let Value::Array(items) = value else {
            return Err(bad_filter(format!(
                "$in/$nin on {field:?} takes a list of values"
            )));
        };
        for item in items {
            scalar(field, item)?;
        }
        let sql = if let Some((name, sql_type)) = self.column(field)? {
            let texts: Vec<Value> = items
                .iter()
                .map(|v| Value::String(json_scalar_text(v)))
                .collect();
            let param = self.param(Value::Array(texts).to_string());
            format!(
                "{name} IN (SELECT x::{sql_type} FROM jsonb_array_elements_text(({param})::jsonb) AS x)"
            )
        } else {
            let target = self.json_key(field)?;
            let param = self.param(value.to_string());
            format!("{target} IN (SELECT jsonb_array_elements(({param})::jsonb))")
        };
        Ok(if negate {
            format!("NOT coalesce({sql}, false)")
        } else {
            sql
        })
    }

    /// The quoted column and its SQL type, when `field` is a column of the table.
    fn column(&self, field: &str) -> Result<Option<(String, String)>> {
        let is_column = field == self.layout.id_column
            || field == self.layout.content_column
            || self.layout.metadata_columns.iter().any(|c| c == field);
        if !is_column {
            return Ok(None);
        }
        let sql_type = self
            .columns
            .iter()
            .find(|c| c.name == field)
            .map_or_else(|| "text".to_owned(), |c| c.sql_type.clone());
        Ok(Some((quote_ident(field)?, sql_type)))
    }

    fn json_key(&mut self, field: &str) -> Result<String> {
        let Some(json) = &self.layout.metadata_json_column else {
            return Err(bad_filter(format!(
                "{field:?} is not a metadata column, and the table stores no JSON metadata"
            )));
        };
        let json = quote_ident(json)?;
        let key = self.param(field.to_owned());
        Ok(format!("({json}::jsonb -> {key})"))
    }
}

fn scalar(field: &str, value: &Value) -> Result<()> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(()),
        other => Err(bad_filter(format!(
            "the value for {field:?} must be a string, number or boolean, not {other}"
        ))),
    }
}

/// A scalar as the text PostgreSQL casts to the column type (`'abc'`, `12`, `true`).
fn json_scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn bad_filter(detail: String) -> Error {
    Error::InvalidArgument {
        detail: format!("invalid filter: {detail}"),
    }
}

/// The k-NN query. `$1` is the query vector, `$2` the limit, filter parameters from `$3`.
/// Each row: id (text), content, JSON metadata (text or NULL), metadata columns as one
/// JSON object (text or NULL), distance.
pub fn knn_query(layout: &Layout, distance: Distance, filter: Option<&str>) -> Result<String> {
    let table = layout.qualified()?;
    let embedding = quote_ident(&layout.embedding_column)?;
    let json = match &layout.metadata_json_column {
        Some(column) => format!("{}::text", quote_ident(column)?),
        None => "NULL::text".into(),
    };
    let columns = if layout.metadata_columns.is_empty() {
        "NULL::text".to_owned()
    } else {
        let pairs = layout
            .metadata_columns
            .iter()
            .map(|c| Ok(format!("'{}', {}", c.replace('\'', "''"), quote_ident(c)?)))
            .collect::<Result<Vec<_>>>()?;
        format!("json_build_object({})::text", pairs.join(", "))
    };
    let op = distance.operator();
    let filter = filter.map_or_else(String::new, |f| format!(" WHERE {f}"));
    Ok(format!(
        "SELECT {}::text, {}::text, {json}, {columns}, ({embedding} {op} $1)::float8 \
         FROM {table}{filter} ORDER BY {embedding} {op} $1 LIMIT $2",
        quote_ident(&layout.id_column)?,
        quote_ident(&layout.content_column)?,
    ))
}

/// A vector index (JS `HNSWIndex`, `IVFFlatIndex`).
#[derive(Clone, Debug, PartialEq)]
pub enum VectorIndex {
    Hnsw { m: u32, ef_construction: u32 },
    IvfFlat { lists: u32 },
}

/// `CREATE INDEX` for `index` (JS `applyVectorIndex`).
pub fn create_index(
    layout: &Layout,
    name: &str,
    index: &VectorIndex,
    distance: Distance,
    concurrently: bool,
) -> Result<String> {
    let (method, with) = match index {
        VectorIndex::Hnsw { m, ef_construction } => (
            "hnsw",
            format!("m = {m}, ef_construction = {ef_construction}"),
        ),
        VectorIndex::IvfFlat { lists } => ("ivfflat", format!("lists = {lists}")),
    };
    Ok(format!(
        "CREATE INDEX {}{} ON {} USING {method} ({} {}) WITH ({with})",
        if concurrently { "CONCURRENTLY " } else { "" },
        index_ident(name)?,
        layout.qualified()?,
        quote_ident(&layout.embedding_column)?,
        distance.ops_class()
    ))
}

pub fn drop_index(layout: &Layout, name: &str) -> Result<String> {
    Ok(format!(
        "DROP INDEX IF EXISTS {}.{}",
        quote_ident(&layout.schema)?,
        index_ident(name)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    fn catalog() -> Vec<CatalogColumn> {
        vec![CatalogColumn {
            name: "year".into(),
            sql_type: "integer".into(),
            dimensions: None,
        }]
    }

    #[test]
    fn identifiers_are_quoted_and_escaped() {
        assert_eq!(quote_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert!(quote_ident("").is_err());
        assert!(check_type("VARCHAR(20)").is_ok());
        assert!(check_type("int; DROP TABLE x").is_err());
    }

    #[test]
    fn ddl_is_jss_with_an_id_default() {
        let ddl = create_table(
            &layout(),
            3,
            "UUID",
            &[Column {
                name: "year".into(),
                data_type: "INTEGER".into(),
                nullable: false,
            }],
            false,
        )
        .unwrap();
        assert_eq!(
            ddl,
            "CREATE EXTENSION IF NOT EXISTS vector;\nCREATE TABLE \"public\".\"docs\" (\n  \"id\" UUID PRIMARY KEY DEFAULT gen_random_uuid(),\n  \"content\" TEXT NOT NULL,\n  \"embedding\" vector(3) NOT NULL,\n  \"year\" INTEGER NOT NULL,\n  \"json_metadata\" JSON\n);"
        );
    }

    #[test]
    fn filters_are_parameterised() {
        let columns = catalog();
        let filter = FilterCompiler::new(&layout(), &columns, 3)
            .compile(&json!({"year": {"$gte": 2020}, "tag": {"$in": ["a", "b"]}, "x": "1'; --"}))
            .unwrap();
        assert_eq!(
            filter.sql,
            "\"year\" >= ($3::text)::integer AND (\"json_metadata\"::jsonb -> $4::text) IN (SELECT jsonb_array_elements(($5::text)::jsonb)) AND (\"json_metadata\"::jsonb -> $6::text) = ($7::text)::jsonb"
        );
        assert_eq!(
            filter.params,
            ["2020", "tag", "[\"a\",\"b\"]", "x", "\"1'; --\""]
        );
    }

    #[test]
    fn bad_filters_are_refused() {
        let columns = catalog();
        for bad in [
            json!("year > 1"),
            json!({"year": {"$regex": "x"}}),
            json!({"a": {"$in": 3}}),
            json!({"a": null}),
            json!({"$or": []}),
        ] {
            let err = FilterCompiler::new(&layout(), &columns, 3)
                .compile(&bad)
                .unwrap_err();
            assert!(err.to_string().contains("invalid filter"), "{err}");
        }
    }

    #[test]
    fn query_orders_by_the_operator_and_limits() {
        let sql = knn_query(&layout(), Distance::InnerProduct, None).unwrap();
        assert!(
            sql.contains("ORDER BY \"embedding\" <#> $1 LIMIT $2"),
            "{sql}"
        );
        assert!(
            sql.contains("json_build_object('year', \"year\")::text"),
            "{sql}"
        );
    }

    #[test]
    fn copy_plan_only_for_layouts_copy_can_write() {
        let column = |name: &str, sql_type: &str| CatalogColumn {
            name: name.into(),
            sql_type: sql_type.into(),
            dimensions: None,
        };
        let plain = Layout {
            metadata_columns: vec![],
            ..layout()
        };
        let uuid_json = [column("id", "uuid"), column("json_metadata", "json")];
        let plan = copy_plan(&plain, &uuid_json).unwrap().unwrap();
        assert_eq!(
            plan.sql,
            "COPY \"public\".\"docs\" (\"id\", \"content\", \"embedding\", \"json_metadata\") FROM STDIN (FORMAT binary)"
        );
        assert!(plan.uuid_ids);
        assert_eq!(plan.jsonb, Some(false));
        let text_jsonb = [column("id", "text"), column("json_metadata", "jsonb")];
        let plan = copy_plan(&plain, &text_jsonb).unwrap().unwrap();
        assert!(!plan.uuid_ids);
        assert_eq!(plan.jsonb, Some(true));
        // Metadata columns, other id types, other metadata types: the upsert statement.
        assert_eq!(copy_plan(&layout(), &uuid_json).unwrap(), None);
        let int_ids = [column("id", "integer"), column("json_metadata", "json")];
        assert_eq!(copy_plan(&plain, &int_ids).unwrap(), None);
        let text_meta = [column("id", "uuid"), column("json_metadata", "text")];
        assert_eq!(copy_plan(&plain, &text_meta).unwrap(), None);
    }

    #[test]
    fn upsert_updates_every_column_but_the_id() {
        let sql = upsert(&layout(), "uuid").unwrap();
        assert!(sql.ends_with("ON CONFLICT (\"id\") DO UPDATE SET \"content\" = EXCLUDED.\"content\", \"embedding\" = EXCLUDED.\"embedding\", \"json_metadata\" = EXCLUDED.\"json_metadata\", \"year\" = EXCLUDED.\"year\""), "{sql}");
        assert!(
            sql.contains("SELECT u.id::uuid, u.content, u.e, u.m::json, p.\"year\" FROM unnest("),
            "{sql}"
        );
        assert!(upsert(&layout(), "uuid); DROP TABLE x; --").is_err());
    }

    #[test]
    fn index_ddl() {
        let sql = create_index(
            &layout(),
            "docsgenkitvectorindex",
            &VectorIndex::Hnsw {
                m: 16,
                ef_construction: 64,
            },
            Distance::Cosine,
            false,
        )
        .unwrap();
        assert_eq!(
            sql,
            "CREATE INDEX \"docsgenkitvectorindex\" ON \"public\".\"docs\" USING hnsw (\"embedding\" vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        );
    }
}
