//! Vector stores: the local on-disk store (JS dev-local-vectorstore semantics with an
//! incremental, crash-safe log), exact and approximate top-k search, and the JS file format.
//!
//! A plain list of modules; each has one job.

pub mod ann;
pub mod docid;
pub mod jsfile;
pub mod jsjson;
pub mod local;
pub mod log;
pub mod py;
pub mod topk;
