//! Python binding of the local vector index. Converts and bridges; the logic is in
//! [`super::local`].
//!
//! Documents and metadata cross as JSON text; vectors as sequences of floats or as one
//! `bytes` of little-endian float32 values (row-major, `n × dims`), which numpy gives
//! with `.astype('<f4').tobytes()` and which costs no per-value conversion. Every method
//! releases the GIL for the scan and the disk I/O; the `start_*` variants run on the core's
//! blocking pool and report through a ticket (`genkit_parity._runtime.call`).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::local::{Arrival, Filter, Hit, LocalIndex, NewRow, SpareSlot, StreamedAdd};
use super::py_vectors::{FloatRows, embeddings_in_batches};
use super::{docid, jsfile};
use crate::errors::{Error, Result};
use crate::runtime::Ticket;

/// Vectors as Python passes them: rows of floats, or flat values (a sequence of floats or
/// `bytes` of float32) split by [`Split`].
#[derive(FromPyObject)]
enum Vectors<'py> {
    Bytes(Bound<'py, PyBytes>),
    Rows(FloatRows),
    Flat(Vec<f32>),
}

/// How flat values split into rows.
#[derive(Clone, Copy)]
enum Split {
    /// Into this many rows (one per document).
    Rows(usize),
    /// Into rows of this width (`None`: one row holding everything).
    Dims(Option<usize>),
}

impl Vectors<'_> {
    fn into_rows(self, index: &str, split: Split) -> Result<Vec<Vec<f32>>> {
        let floats = match self {
            Vectors::Rows(FloatRows(rows)) => return Ok(rows),
            Vectors::Flat(floats) => floats,
            Vectors::Bytes(bytes) => {
                let raw = bytes.as_bytes();
                if raw.len() % 4 != 0 {
                    return Err(Error::VectorInvalid {
                        index: index.to_owned(),
                        detail: format!("{} bytes are not whole float32 values", raw.len()),
                    });
                }
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            }
        };
        let dims = match split {
            Split::Rows(0) => return Ok(Vec::new()),
            Split::Rows(n) => floats.len() / n,
            Split::Dims(d) => d.unwrap_or(floats.len()),
        };
        if dims == 0 || !floats.len().is_multiple_of(dims) {
            return Err(Error::VectorInvalid {
                index: index.to_owned(),
                detail: format!(
                    "{} values are not whole vectors of {dims} dimensions",
                    floats.len()
                ),
            });
        }
        Ok(floats.chunks_exact(dims).map(<[f32]>::to_vec).collect())
    }
}

type PyHits = Vec<(String, f32)>;

fn to_py_hits(hits: Vec<Hit>) -> PyHits {
    hits.into_iter().map(|h| (h.doc_json, h.score)).collect()
}

/// A persistent local vector index (`<directory>/<name>.gkvec`), loaded once per process.
#[pyclass(frozen, module = "genkit_parity._native")]
pub struct LocalVectorIndex {
    /// The index as opened, by process `opened_by`.
    index: Arc<LocalIndex>,
    opened_by: u32,
    /// In a child made by `fork()`: that process's own index (see [`Self::current`]).
    forked: Mutex<Option<(u32, Arc<LocalIndex>)>>,
}

impl LocalVectorIndex {
    /// The index for this process: the one opened or, in a child made by `fork()`, one of
    /// its own, loaded from the file on first use (an inherited one may hold the locks of a
    /// writer thread the child does not have).
    fn current(&self, py: Python<'_>) -> PyResult<Arc<LocalIndex>> {
        let pid = std::process::id();
        if pid == self.opened_by {
            return Ok(Arc::clone(&self.index));
        }
        let reopened = py.detach(|| {
            let mut forked = self.forked.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((owner, index)) = &*forked
                && *owner == pid
            {
                return Ok(Arc::clone(index));
            }
            let index = Arc::new(LocalIndex::open(
                self.index.directory(),
                self.index.name(),
                false,
            )?);
            *forked = Some((pid, Arc::clone(&index)));
            Ok::<_, Error>(index)
        })?;
        Ok(reopened)
    }
}

fn rows_of(
    index: &str,
    docs: Vec<String>,
    vectors: Vec<Vec<f32>>,
    embed_metadata: Option<Vec<Option<String>>>,
) -> Result<Vec<NewRow>> {
    let invalid = |detail: String| Error::VectorInvalid {
        index: index.to_owned(),
        detail,
    };
    if vectors.len() != docs.len() {
        return Err(invalid(format!(
            "{} documents but {} embeddings",
            docs.len(),
            vectors.len()
        )));
    }
    let metas = embed_metadata.unwrap_or_else(|| vec![None; docs.len()]);
    if metas.len() != docs.len() {
        return Err(invalid(format!(
            "{} documents but {} embedding metadata entries",
            docs.len(),
            metas.len()
        )));
    }
    Ok(docs
        .into_iter()
        .zip(vectors)
        .zip(metas)
        .map(|((doc_json, vector), embed_meta_json)| NewRow {
            doc_json,
            embed_meta_json,
            vector,
        })
        .collect())
}

/// A search's `k` from Python: an int of at least 0 (one past the rows means every row).
/// Taken as any object so that `-1` or `2.5` get an error naming `k`, not a bare
/// `OverflowError` from the conversion.
struct NeighbourCount(usize);

impl<'py> FromPyObject<'_, 'py> for NeighbourCount {
    type Error = PyErr;

    fn extract(value: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        let not_an_int = || {
            Ok::<_, PyErr>(pyo3::exceptions::PyTypeError::new_err(format!(
                "k must be an int, not {}",
                value.get_type().name()?
            )))
        };
        if value.is_instance_of::<pyo3::types::PyBool>() {
            return Err(not_an_int()?);
        }
        // The usual case, numpy ints included (through `__index__`).
        if let Ok(k) = value.extract::<u64>() {
            return Ok(NeighbourCount(usize::try_from(k).unwrap_or(usize::MAX)));
        }
        let py = value.py();
        let Ok(index) = py.import("operator")?.call_method1("index", (value,)) else {
            return Err(not_an_int()?);
        };
        if index.lt(0)? {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "k must be at least 0, not {}",
                index.str()?
            )));
        }
        Ok(NeighbourCount(usize::MAX)) // past u64: every row
    }
}

fn search_job(
    index: &LocalIndex,
    queries: Vec<Vec<f32>>,
    k: usize,
    where_json: Option<&str>,
    approximate: bool,
) -> Result<Vec<PyHits>> {
    let filter = where_json
        .map(|text| Filter::from_json(index.name(), text))
        .transpose()?;
    let dims = queries.first().map_or(0, Vec::len);
    if let Some(q) = queries.iter().find(|q| q.len() != dims) {
        return Err(Error::VectorInvalid {
            index: index.name().to_owned(),
            detail: format!(
                "queries differ in length ({} and {dims} dimensions)",
                q.len()
            ),
        });
    }
    let flat = queries.concat();
    let results = index.search_many(&flat, dims, k, filter.as_ref(), approximate)?;
    Ok(results.into_iter().map(to_py_hits).collect())
}

#[pymethods]
impl LocalVectorIndex {
    /// Opens index `name` in `directory` (nothing is written until the first `add`). With
    /// `must_exist`, a missing index raises `VectorIndexNotFoundError`.
    #[new]
    #[pyo3(signature = (directory, name, *, must_exist = false))]
    fn new(py: Python<'_>, directory: PathBuf, name: String, must_exist: bool) -> PyResult<Self> {
        let index = py.detach(|| LocalIndex::open(&directory, &name, must_exist))?;
        Ok(LocalVectorIndex {
            index: Arc::new(index),
            opened_by: std::process::id(),
            forked: Mutex::new(None),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        self.index.name()
    }

    /// The index's log file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.index.path().to_owned()
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let index = self.current(py)?;
        Ok(py.detach(|| index.len())?)
    }

    /// The stored vectors' dimension; `None` while the index is empty.
    fn dimensions(&self, py: Python<'_>) -> PyResult<Option<usize>> {
        let index = self.current(py)?;
        Ok(py.detach(|| index.dims())?)
    }

    /// Stores rows (document JSON, embedding, optional embedding-metadata JSON); returns
    /// how many were new. Durable (fsynced) when it returns.
    #[pyo3(signature = (docs, embeddings, embed_metadata = None))]
    fn add(
        &self,
        py: Python<'_>,
        docs: Vec<String>,
        embeddings: Vectors<'_>,
        embed_metadata: Option<Vec<Option<String>>>,
    ) -> PyResult<usize> {
        let vectors = embeddings.into_rows(self.index.name(), Split::Rows(docs.len()))?;
        let rows = rows_of(self.index.name(), docs, vectors, embed_metadata)?;
        let index = self.current(py)?;
        Ok(py.detach(|| index.add(rows))?)
    }

    /// `add` on the core's blocking pool; the count arrives through `ticket`.
    #[pyo3(signature = (ticket, docs, embeddings, embed_metadata = None))]
    fn start_add(
        &self,
        py: Python<'_>,
        ticket: &Ticket,
        docs: Vec<String>,
        embeddings: Vectors<'_>,
        embed_metadata: Option<Vec<Option<String>>>,
    ) -> PyResult<()> {
        let vectors = embeddings.into_rows(self.index.name(), Split::Rows(docs.len()))?;
        let rows = rows_of(self.index.name(), docs, vectors, embed_metadata)?;
        let index = self.current(py)?;
        ticket.run_blocking(move || index.add(rows))
    }

    /// `start_add` with the documents as one JSON array (row `i` is element `i`, no
    /// embedding metadata): one string crosses instead of one per document (Python makes
    /// it with one serialiser call). The add runs while this thread reads the vectors (which
    /// needs the GIL): another thread hashes the documents, takes the index's locks and
    /// writes each row as its vector arrives (see `local::streamed`), so little is left to
    /// write and sync once the reading is done.
    fn start_add_array(
        &self,
        ticket: &Ticket,
        docs_json: &str,
        embeddings: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = embeddings.py();
        let docs = docid::split_doc_array(docs_json).map_err(|detail| Error::InvalidJson {
            what: "the documents".into(),
            detail,
        })?;
        let count = docs.len();
        let index = &self.current(py)?;
        // Anything but rows of numbers (bytes, flat values) takes the general conversion
        // and the add that follows it.
        let general = |docs: Vec<String>| -> PyResult<()> {
            let vectors = general_rows(embeddings, index.name(), count)?;
            let rows = rows_of(index.name(), docs, vectors, None)?;
            let index = Arc::clone(index);
            ticket.run_blocking(move || index.add(rows))
        };
        if embeddings.cast::<PyBytes>().is_ok() {
            return general(docs);
        }
        // The rows' width, to make room for their floats ahead (a wrong guess only means
        // no room is made ahead).
        let dims = embeddings
            .cast::<PyList>()
            .ok()
            .and_then(|rows| rows.get_item(0).ok())
            .and_then(|row| row.len().ok());
        let spare = SpareSlot::default();
        let (sender, arrivals) = mpsc::channel();
        // The writer starts with the first batch, so that input this reading cannot take
        // still finds the general conversion free to take it.
        let mut waiting = Some((docs, arrivals));
        let mut started: PyResult<()> = Ok(());
        let mut writer_stopped = false;
        // Before Python code runs to convert a value, the writer lets go of the index's
        // locks (that code may wait for them, through another thread or process).
        let python_ran = Cell::new(false);
        let read = embeddings_in_batches(
            embeddings,
            |batch| {
                if let Some((docs, arrivals)) = waiting.take() {
                    let add = StreamedAdd {
                        docs,
                        dims,
                        arrivals,
                        spare: Arc::clone(&spare),
                    };
                    let index = Arc::clone(index);
                    started = ticket.run_blocking(move || index.add_streamed(add));
                }
                // A writer that stopped (bad documents, a failed write) reports through the
                // ticket; the rest of the vectors are read for nothing.
                writer_stopped |= sender.send(Arrival::Rows(batch)).is_err();
            },
            || {
                if !python_ran.replace(true) {
                    // Queued before any rows if no writer runs yet: it is told as it starts.
                    let _ = sender.send(Arrival::Slow);
                }
            },
        );
        started?;
        let rows = match (read, waiting) {
            (Ok(rows), None) => rows,
            // Nothing was sent: no writer started.
            (_, Some((docs, _))) => return general(docs),
            // The writer sees the stream stop without an end and writes nothing; the error
            // raised is the general conversion's, which names the bad value as `add` does.
            (Err(e), None) => {
                drop(sender);
                return Err(general_rows(embeddings, index.name(), count)
                    .err()
                    .unwrap_or(e));
            }
        };
        py.detach(move || {
            // Help fault in the memory the rows move to, unless they will not.
            if let (false, Some(Some(room))) = (writer_stopped, spare.get()) {
                room.fault_in();
            }
            drop(spare);
            let _ = sender.send(Arrival::End { rows });
        });
        Ok(())
    }

    /// The `k` nearest documents as `(doc_json, cosine)`, best first; ties keep indexing
    /// order. `where_json` is a JSON object of metadata equalities.
    #[pyo3(signature = (query, k, *, where_json = None, approximate = false))]
    fn search(
        &self,
        py: Python<'_>,
        query: Vectors<'_>,
        k: NeighbourCount,
        where_json: Option<String>,
        approximate: bool,
    ) -> PyResult<PyHits> {
        let queries = query.into_rows(self.index.name(), Split::Dims(None))?;
        let index = self.current(py)?;
        let mut results =
            py.detach(|| search_job(&index, queries, k.0, where_json.as_deref(), approximate))?;
        Ok(results.pop().unwrap_or_default())
    }

    /// `search` on the core's blocking pool; the hits arrive through `ticket`.
    #[pyo3(signature = (ticket, query, k, *, where_json = None, approximate = false))]
    fn start_search(
        &self,
        py: Python<'_>,
        ticket: &Ticket,
        query: Vectors<'_>,
        k: NeighbourCount,
        where_json: Option<String>,
        approximate: bool,
    ) -> PyResult<()> {
        let queries = query.into_rows(self.index.name(), Split::Dims(None))?;
        let index = self.current(py)?;
        ticket.run_blocking(move || {
            search_job(&index, queries, k.0, where_json.as_deref(), approximate)
                .map(|mut r| r.pop().unwrap_or_default())
        })
    }

    /// `search` for several queries at once (a list of vectors, or `bytes` of
    /// `n × dims` float32 with `dims` given), in one pass over the stored vectors.
    #[pyo3(signature = (queries, k, *, dims = None, where_json = None, approximate = false))]
    fn search_many(
        &self,
        py: Python<'_>,
        queries: Vectors<'_>,
        k: NeighbourCount,
        dims: Option<usize>,
        where_json: Option<String>,
        approximate: bool,
    ) -> PyResult<Vec<PyHits>> {
        let queries = queries.into_rows(self.index.name(), Split::Dims(dims))?;
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let index = self.current(py)?;
        Ok(py.detach(|| search_job(&index, queries, k.0, where_json.as_deref(), approximate))?)
    }

    /// Adds the entries of a JS `__db_<name>.json` file (keeping their ids); returns how
    /// many were new.
    fn import_js(&self, py: Python<'_>, path: PathBuf) -> PyResult<usize> {
        let index = self.current(py)?;
        Ok(py.detach(|| jsfile::import_js(&index, Path::new(&path)))?)
    }

    /// Writes the index as a JS `__db_<name>.json` file (atomically); returns the entry count.
    fn export_js(&self, py: Python<'_>, path: PathBuf) -> PyResult<usize> {
        let index = self.current(py)?;
        Ok(py.detach(|| jsfile::export_js(&index, Path::new(&path)))?)
    }

    fn __repr__(&self) -> String {
        format!(
            "LocalVectorIndex(name={:?}, path={:?})",
            self.index.name(),
            self.index.path().display().to_string()
        )
    }
}

/// `embeddings` (any form `add` takes) as `count` rows, or the error `add` raises.
fn general_rows(
    embeddings: &Bound<'_, PyAny>,
    index: &str,
    count: usize,
) -> PyResult<Vec<Vec<f32>>> {
    Ok(embeddings
        .extract::<Vectors<'_>>()?
        .into_rows(index, Split::Rows(count))?)
}

/// `json_text` re-written as JS's `JSON.stringify` writes it (compact, keys in order, `1`
/// for `1.0`): the bytes JS plugins hash and send, shared by every store.
#[pyfunction]
pub fn js_json_text(json_text: &str) -> PyResult<String> {
    let value: serde_json::Value =
        serde_json::from_str(json_text).map_err(|e| Error::InvalidJson {
            what: "the value".into(),
            detail: e.to_string(),
        })?;
    Ok(super::jsjson::to_compact(&value))
}

/// JS's document id: the md5 (hex) of the document's `JSON.stringify` text.
#[pyfunction]
pub fn js_document_id(doc_json: &str) -> PyResult<String> {
    let (canonical, _) =
        docid::canonical_doc_json(doc_json).map_err(|detail| Error::InvalidJson {
            what: "the document".into(),
            detail,
        })?;
    Ok(docid::to_hex(&docid::doc_id(&canonical)))
}
