//! Vector stores: the local store, and pgvector queries.

pub mod pgvector;
