//! Sessions: the data model, id rules and the built-in stores. Knows nothing of Python.

pub mod data;
pub mod file;
pub mod id;
pub mod memory;
pub mod postgres;
pub mod py;
mod py_messages;
pub mod redis;
pub mod sqlite;
pub mod store;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod model_check;
#[cfg(test)]
mod shared_conformance;
