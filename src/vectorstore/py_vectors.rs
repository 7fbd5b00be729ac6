//! Embeddings as Python hands them to the vector-store bindings, read into `f32` rows.
//!
//! Embedders return lists of lists of floats, and this conversion runs with the GIL held
//! once per number of a batch (3.84 million numbers for 10k 384-dim documents), so a list
//! of lists is read item by item without the generic sequence protocol: an exact `float`
//! is read directly, anything else (ints, numpy scalars, tuples) takes PyO3's generic
//! conversion.
//!
//! One of the crate's two modules that allow `unsafe` (`writeback.rs` is the other): an
//! exact float is read through the list's borrowed reference instead of an owned one. Taking and dropping a reference writes to
//! every float object, and for millions of them those writes (each dirtying a cache line
//! that would otherwise only be read) made the read of 10k x 384 floats 25 ms instead of
//! 18 ms here, and an index of 10k documents 68-78 ms instead of 58 ms.
#![allow(unsafe_code)]

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::local::Embedding;

/// Rows of floats, extracted by [`vectors_of`] (usable as a `#[pyfunction]` argument).
pub struct FloatRows(pub Vec<Vec<f32>>);

impl<'a, 'py> FromPyObject<'a, 'py> for FloatRows {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        vectors_of(&obj).map(FloatRows)
    }
}

/// `embeddings` (a sequence of sequences of numbers) as `f32` rows.
pub fn vectors_of(embeddings: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<f32>>> {
    read_rows(embeddings)
}

/// [`vectors_of`] with each row's checks gathered as its values are read (one pass over
/// the millions of values, see [`Embedding`]), handed to `batch` a few rows at a time as
/// they are read (so another thread can use them meanwhile); returns how many rows.
/// `before_python` is called before the first conversion that may run Python code.
pub fn embeddings_in_batches(
    embeddings: &Bound<'_, PyAny>,
    batch: impl FnMut(Vec<Embedding>),
    before_python: impl FnMut(),
) -> PyResult<usize> {
    read_rows_in_batches(embeddings, batch, before_python)
}

/// A row [`read_rows`] fills one value at a time: plain floats, or an [`Embedding`] that
/// checks them as they come (only the callers that check pay for it).
trait Row: From<Vec<f32>> {
    fn with_capacity(dims: usize) -> Self;
    fn push(&mut self, x: f32);
}

impl Row for Vec<f32> {
    fn with_capacity(dims: usize) -> Self {
        Vec::with_capacity(dims)
    }

    #[inline]
    fn push(&mut self, x: f32) {
        Vec::push(self, x);
    }
}

impl Row for Embedding {
    fn with_capacity(dims: usize) -> Self {
        Embedding::with_capacity(dims)
    }

    #[inline]
    fn push(&mut self, x: f32) {
        Embedding::push(self, x);
    }
}

/// Rows [`read_rows_in_batches`] hands on at a time: a few hundred KB of floats.
const BATCH_ROWS: usize = 256;

/// The rows of `embeddings`.
fn read_rows<R: Row>(embeddings: &Bound<'_, PyAny>) -> PyResult<Vec<R>> {
    let mut rows = Vec::new();
    read_rows_in_batches(embeddings, |batch| rows.extend(batch), || {})?;
    Ok(rows)
}

/// The rows of `embeddings`, [`BATCH_ROWS`] at a time, in order; returns how many. Lists
/// are read by index: one C call and a reference count per value, where an iterator makes
/// two calls. `before_python` is called before the first conversion that may run Python
/// code (a value that is neither a float nor an exact int, a row that is not a list).
fn read_rows_in_batches<R: Row>(
    embeddings: &Bound<'_, PyAny>,
    mut batch: impl FnMut(Vec<R>),
    mut before_python: impl FnMut(),
) -> PyResult<usize> {
    let Ok(rows) = embeddings.cast::<PyList>() else {
        before_python();
        let rows: Vec<Vec<f32>> = embeddings.extract()?;
        let count = rows.len();
        batch(rows.into_iter().map(R::from).collect());
        return Ok(count);
    };
    let mut count = 0;
    let mut vectors = Vec::with_capacity(BATCH_ROWS.min(rows.len()));
    for i in 0..rows.len() {
        let row = rows.get_item(i)?;
        let vector = match row.cast::<PyList>() {
            Ok(values) => {
                let dims = values.len();
                let mut vector = R::with_capacity(dims);
                for j in 0..dims {
                    let value = match float_at(values, j)? {
                        Read::Value(x) => x,
                        Read::Convert(item) => {
                            before_python();
                            item.extract()?
                        }
                    };
                    vector.push(value);
                }
                vector
            }
            Err(_) => {
                before_python();
                R::from(row.extract::<Vec<f32>>()?)
            }
        };
        vectors.push(vector);
        count += 1;
        if vectors.len() == BATCH_ROWS {
            batch(std::mem::replace(
                &mut vectors,
                Vec::with_capacity(BATCH_ROWS),
            ));
        }
    }
    if !vectors.is_empty() {
        batch(vectors);
    }
    Ok(count)
}

/// A list item, read or to be converted.
enum Read<'py> {
    Value(f32),
    /// Neither a float nor an exact int: its conversion may run Python code (`__float__`,
    /// `__index__`) that changes the list, so it is held by an owned reference.
    Convert(Bound<'py, PyAny>),
}

/// Item `j` of `values`: a float (or a float subclass, whose value is read the same way)
/// through the list's borrowed reference, no reference count touched; an exact int through
/// an owned one (its conversion is C code); anything else handed back to convert.
#[inline]
fn float_at<'py>(values: &Bound<'py, PyList>, j: usize) -> PyResult<Read<'py>> {
    let py = values.py();
    // SAFETY: we hold the GIL (`values` is bound to `py`) and `values` is a live list.
    // `PyList_GetItem` checks the index (an item removed meanwhile is an `IndexError`,
    // not a stale read) and lends the item, which stays alive while the list holds it.
    // Nothing runs Python code between lending and reading a float, so no other code can
    // take the item out of the list meanwhile. (An abi3 module does not load on
    // free-threaded CPython, where a lent item could go at any time.)
    let item = unsafe { ffi::PyList_GetItem(values.as_ptr(), j as ffi::Py_ssize_t) };
    if item.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `item` is a live object (above); a float's value (read from the object, for
    // a subclass too, without calling anything) cannot fail to read.
    if unsafe { ffi::PyFloat_Check(item) } != 0 {
        return Ok(Read::Value(unsafe { ffi::PyFloat_AsDouble(item) } as f32));
    }
    // SAFETY: `item` is a live object (above); the new reference owns it.
    let value = unsafe { Bound::from_borrowed_ptr(py, item) };
    // SAFETY: `item` is a live object.
    if unsafe { ffi::PyLong_CheckExact(item) } != 0 {
        return Ok(Read::Value(value.extract()?));
    }
    Ok(Read::Convert(value))
}
