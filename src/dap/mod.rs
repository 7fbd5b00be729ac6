//! Dynamic action providers: a TTL cache with single-flight fetch, and indexed lookups over
//! what a provider returned. Knows nothing of Python: entries are generic.

pub mod cache;
pub mod index;
pub mod py;
