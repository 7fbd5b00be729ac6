//! Background operations: the `Operation` data model and the polling policy that waits for
//! one to finish. Knows nothing of Python.

pub mod model;
pub mod poll;
pub mod py;
pub mod store;
