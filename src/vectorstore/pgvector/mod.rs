//! pgvector: a PostgreSQL table as a vector store (`genkit_parity.postgres`).
//!
//! [`sql`] writes the SQL (DDL, upserts, k-NN queries, indexes, parameterised metadata
//! filters), [`vector`] the binary `vector` wire format, [`store`] runs them through the
//! shared connection layer (`crate::engines::postgres`); [`py`] is the Python binding.

pub mod py;
pub mod sql;
pub mod store;
pub mod vector;

pub use sql::{Column, Distance, Layout, VectorIndex};
pub use store::{Hit, PgVectorStore, Query, Rows};
