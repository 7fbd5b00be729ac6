//! Vector stores: the local on-disk store (JS dev-local-vectorstore semantics with an
//! incremental, crash-safe log), exact and approximate top-k search, the JS file format, and pgvector
//! queries for PostgreSQL (`pgvector/`).
//!
//! A plain list of modules; each has one job.

pub mod ann;
pub mod docid;
pub mod floats;
pub mod jsfile;
pub mod jsjson;
pub mod local;
pub mod log;
pub mod pgvector;
pub mod pool;
pub mod py;
pub mod py_vectors;
pub mod topk;
pub mod writeback;
