//! Embeddings as Python hands them to the vector-store bindings, read into `f32` rows.
//!
//! Embedders return lists of lists of floats, and this conversion runs with the GIL held
//! once per number of a batch (3.84 million numbers for 10k 384-dim documents), so a list
//! of lists is read item by item without the generic sequence protocol: an exact `float`
//! is read directly, anything else (ints, numpy scalars, tuples) takes PyO3's generic
//! conversion.

use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyList};

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
/// the millions of values, see [`Embedding`]).
pub fn embeddings_of(embeddings: &Bound<'_, PyAny>) -> PyResult<Vec<Embedding>> {
    read_rows(embeddings)
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

/// The rows of `embeddings`. Lists are read by index: one C call and a reference count per
/// value, where an iterator makes two calls.
fn read_rows<R: Row>(embeddings: &Bound<'_, PyAny>) -> PyResult<Vec<R>> {
    let Ok(rows) = embeddings.cast::<PyList>() else {
        let rows: Vec<Vec<f32>> = embeddings.extract()?;
        return Ok(rows.into_iter().map(R::from).collect());
    };
    let mut vectors = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        let row = rows.get_item(i)?;
        let Ok(values) = row.cast::<PyList>() else {
            vectors.push(R::from(row.extract::<Vec<f32>>()?));
            continue;
        };
        let dims = values.len();
        let mut vector = R::with_capacity(dims);
        for j in 0..dims {
            let value = values.get_item(j)?;
            match value.cast_exact::<PyFloat>() {
                Ok(float) => vector.push(float.value() as f32),
                Err(_) => vector.push(value.extract()?),
            }
        }
        vectors.push(vector);
    }
    Ok(vectors)
}
