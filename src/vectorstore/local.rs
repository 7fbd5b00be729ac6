//! The local vector index: one append-only log per (directory, index name), loaded once per
//! process and caught up incrementally, with JS dev-local-vectorstore's ids and semantics.
//!
//! Files in the directory, per index `<name>`:
//! - `<name>.gkvec`: the record log (format in [`super::log`]).
//! - `<name>.gkvec.lock`: an advisory lock. Writers hold it exclusively while they catch up,
//!   drop duplicates and append (so two processes never store the same id twice); readers
//!   hold it shared while they read a tail that grew.
//!
//! A search first compares the file's size (and inode) with what this process has read;
//! only new bytes are read, under the shared lock. Every write is fsynced before it returns.
//! No file handle outlives a call, and a child made by `fork()` opens the index afresh
//! (`py.rs`), so an index survives `fork()`.
//!
//! Every call that takes the file lock first takes `appending`, which lets one thread of
//! this process at a time hold the file lock; within it, the file lock and the in-memory
//! state may be taken in either order. A writer whose vectors are still arriving
//! ([`streamed`]) holds `appending` and the file lock while it waits for them, with the
//! state unlocked and marked `streaming`: a search meanwhile finds the file grown by that
//! writer's unacknowledged bytes and answers from the state as it is, without waiting.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::ops::DerefMut;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{Map, Value};

use super::ann::BinaryCodes;
use super::docid::{self, DocId};
use super::floats::{Floats, Spare};
use super::jsjson;
use super::log::{self, RecordWriter, RowOut, RowView};
use super::pool;
use super::topk::{self, Matrix, Scored};
use super::writeback;
use crate::errors::{Error, Result};

mod streamed;
pub use streamed::{Arrival, SpareSlot, StreamedAdd};

/// From this many rows per core, `prepare` runs on several threads.
const PARALLEL_PREPARE_MIN_ROWS: usize = 2048;

/// A row to add: a document (any JSON text of it), its embedding, and the embedding's
/// metadata (JSON text) when the embedder returned some.
pub struct NewRow {
    pub doc_json: String,
    pub embed_meta_json: Option<String>,
    pub vector: Vec<f32>,
}

/// A search result: the stored document's JSON (JS's compact text) and its cosine.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub doc_json: String,
    pub score: f32,
}

/// Metadata equality filter: every `(key, value)` must equal the document's
/// `metadata[key]` (numbers compare by value, so `1` equals `1.0`).
#[derive(Debug, Clone, Default)]
pub struct Filter(Vec<(String, Value)>);

impl Filter {
    pub fn from_json(index: &str, text: &str) -> Result<Self> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Filter(map.into_iter().collect())),
            _ => Err(invalid(
                index,
                "`where` must be an object of metadata key -> value",
            )),
        }
    }

    fn matches(&self, metadata: Option<&Map<String, Value>>) -> bool {
        self.0.iter().all(|(key, want)| {
            metadata
                .and_then(|m| m.get(key))
                .is_some_and(|have| json_eq(have, want))
        })
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn invalid(index: &str, detail: impl Into<String>) -> Error {
    Error::VectorInvalid {
        index: index.to_owned(),
        detail: detail.into(),
    }
}

/// Rejects names that could leave the directory or that no file system takes.
pub fn validate_index_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("an index name must not be empty")
    } else if name.len() > 200 {
        Some("an index name must be at most 200 bytes")
    } else if name.contains(['/', '\\']) {
        Some("an index name must not contain path separators")
    } else if name.starts_with('.') {
        Some("an index name must not start with '.'")
    } else if name.chars().any(char::is_control) {
        Some("an index name must not contain control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(invalid(name, reason)),
        None => Ok(()),
    }
}

/// What this process has read of the log.
#[derive(Clone, Copy, Debug)]
struct FileMark {
    dev: u64,
    ino: u64,
    /// File size when last read (torn bytes included).
    seen_len: u64,
    /// End of the last complete record.
    good_end: u64,
}

/// The rows in memory, column by column; row `i` is at position `i` of each.
#[derive(Default)]
struct Rows {
    dims: usize,
    ids: Vec<DocId>,
    docs: Vec<Box<str>>,
    embed_meta: Vec<Option<Box<str>>>,
    /// Each document's `metadata`, parsed once, for `where` filters.
    metadata: Vec<Option<Map<String, Value>>>,
    vectors: Floats,
    inv_norms: Vec<f32>,
    by_id: HashMap<DocId, u32>,
}

impl Rows {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn matrix(&self) -> Matrix<'_> {
        Matrix {
            data: self.vectors.as_slice(),
            inv_norms: &self.inv_norms,
            dims: self.dims,
        }
    }

    /// Room for `additional` more rows, so a batch grows each buffer once (the floats into
    /// `spare` if it fits, see [`LocalIndex::room_for`]).
    fn reserve(&mut self, additional: usize, spare: Option<Spare>) {
        self.ids.reserve(additional);
        self.docs.reserve(additional);
        self.embed_meta.reserve(additional);
        self.metadata.reserve(additional);
        self.inv_norms.reserve(additional);
        self.by_id.reserve(additional);
        self.vectors.reserve_with(additional * self.dims, spare);
    }

    /// Adds a row; a known id is skipped (first write wins).
    fn push(
        &mut self,
        id: DocId,
        doc: Box<str>,
        metadata: Option<Map<String, Value>>,
        embed_meta: Option<Box<str>>,
        vector: &[f32],
        inv_norm: f32,
    ) {
        if self.by_id.contains_key(&id) {
            return;
        }
        self.by_id.insert(id, self.ids.len() as u32);
        self.ids.push(id);
        self.docs.push(doc);
        self.metadata.push(metadata);
        self.embed_meta.push(embed_meta);
        self.vectors.extend_from_slice(vector);
        self.inv_norms.push(inv_norm);
    }

    /// The vectors' width, once a row is stored.
    fn stored_dims(&self) -> Option<usize> {
        (self.len() > 0).then_some(self.dims)
    }

    /// Positions of the `ids` that would be new rows: not stored, and not repeated earlier
    /// in `ids` (first write wins).
    fn new_positions<'a>(&self, ids: impl Iterator<Item = &'a DocId>) -> Vec<usize> {
        let mut seen = HashSet::new();
        ids.enumerate()
            .filter(|(_, id)| !self.by_id.contains_key(*id) && seen.insert(**id))
            .map(|(i, _)| i)
            .collect()
    }

    /// Drops rows past `len` (undoes a partly applied record).
    fn truncate(&mut self, len: usize) {
        for id in self.ids.drain(len..) {
            self.by_id.remove(&id);
        }
        self.docs.truncate(len);
        self.metadata.truncate(len);
        self.embed_meta.truncate(len);
        self.vectors.truncate(len * self.dims);
        self.inv_norms.truncate(len);
        if len == 0 {
            self.dims = 0;
        }
    }

    /// Adds a row read from the log, checking what a writer checked.
    fn push_stored(&mut self, row: RowView<'_>) -> std::result::Result<(), String> {
        let dims = row.dims();
        if dims == 0 || (self.dims != 0 && dims != self.dims) {
            return Err(format!(
                "row with {dims} dimensions in a store of {}",
                self.dims
            ));
        }
        let floats: Vec<f32> = row.floats().collect();
        let inv_norm = topk::inverse_norm(&floats)
            .filter(|_| floats.iter().all(|x| x.is_finite()))
            .ok_or("stored vector is zero or not finite")?;
        let metadata = doc_metadata(row.doc).map_err(|e| format!("stored document: {e}"))?;
        self.dims = dims;
        self.push(
            row.id,
            row.doc.into(),
            metadata,
            row.embed_meta.map(Into::into),
            &floats,
            inv_norm,
        );
        Ok(())
    }
}

/// A document's `metadata` object, if it has one.
fn doc_metadata(doc_json: &str) -> std::result::Result<Option<Map<String, Value>>, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(default)]
        metadata: Option<Map<String, Value>>,
    }
    serde_json::from_str::<Doc>(doc_json)
        .map(|d| d.metadata)
        .map_err(|e| e.to_string())
}

struct State {
    rows: Rows,
    mark: Option<FileMark>,
    ann: Option<BinaryCodes>,
    /// Set while a writer of this process, caught up and holding the file lock, waits for
    /// its rows ([`streamed`]): whatever the file holds past `mark` is that writer's.
    streaming: bool,
}

/// A row ready to store: id computed, document canonical, vector checked.
pub struct Prepared {
    id: DocId,
    doc: String,
    metadata: Option<Map<String, Value>>,
    embed_meta: Option<String>,
    vector: Vec<f32>,
    inv_norm: f32,
}

impl Prepared {
    fn out(&self) -> RowOut<'_> {
        RowOut {
            id: &self.id,
            doc: &self.doc,
            embed_meta: self.embed_meta.as_deref(),
            vector: &self.vector,
        }
    }
}

/// A new row on its way into memory ([`LocalIndex::publish_once_durable`]).
struct RowIn<'a> {
    out: RowOut<'a>,
    metadata: &'a Option<Map<String, Value>>,
    inv_norm: f32,
}

/// A document checked and hashed, waiting for its vector ([`LocalIndex::prepare_docs`]).
pub struct PreparedDoc {
    id: DocId,
    doc: String,
    metadata: Option<Map<String, Value>>,
    embed_meta: Option<String>,
}

impl PreparedDoc {
    /// The row of this document and a vector already checked (`inv_norm` is its `1/‖v‖`).
    fn with_checked_vector(self, vector: Vec<f32>, inv_norm: f32) -> Prepared {
        Prepared {
            id: self.id,
            doc: self.doc,
            metadata: self.metadata,
            embed_meta: self.embed_meta,
            vector,
            inv_norm,
        }
    }
}

/// `[f(0, items[0]), f(1, items[1]), …]`, in order, the first error winning; large batches
/// are split across the scan pool.
fn in_parallel<I: Send, T: Send>(
    items: Vec<I>,
    f: impl Fn(usize, I) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let threads = topk::cores()
        .min(items.len() / PARALLEL_PREPARE_MIN_ROWS)
        .max(1);
    let per_thread = items.len().div_ceil(threads).max(1);
    let mut chunks: Vec<(usize, Vec<I>)> = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    loop {
        let chunk: Vec<I> = items.by_ref().take(per_thread).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push((chunks.len() * per_thread, chunk));
    }
    let parts = pool::map(chunks, |(first, chunk)| {
        chunk
            .into_iter()
            .enumerate()
            .map(|(i, item)| f(first + i, item))
            .collect::<Result<Vec<_>>>()
    });
    let mut done = Vec::with_capacity(per_thread * threads);
    for part in parts {
        done.extend(part?);
    }
    Ok(done)
}

/// A search's rows for the scan pool: `try_read`, never `read`, because the searching
/// thread already holds a read lock, and a pool thread queueing behind a waiting writer
/// would wait for that search to finish, which waits for the pool thread.
impl topk::Source for RwLock<State> {
    fn try_rows(&self, f: &mut dyn FnMut(Matrix<'_>)) -> bool {
        match self.try_read() {
            Ok(st) => {
                f(st.rows.matrix());
                true
            }
            Err(_) => false,
        }
    }
}

/// One persistent vector index.
pub struct LocalIndex {
    name: String,
    log_path: PathBuf,
    lock_path: PathBuf,
    directory: PathBuf,
    /// Shared with the scan pool's threads while a search runs (see [`topk::Source`]).
    state: Arc<RwLock<State>>,
    /// Held around every use of the file lock (see the module doc).
    appending: Mutex<()>,
}

impl LocalIndex {
    /// Opens (and loads) the index `name` in `directory`. Nothing is created on disk until
    /// the first write. With `must_exist`, a missing index is [`Error::VectorNotFound`].
    pub fn open(directory: &Path, name: &str, must_exist: bool) -> Result<Self> {
        validate_index_name(name)?;
        let index = LocalIndex {
            name: name.to_owned(),
            log_path: directory.join(format!("{name}.gkvec")),
            lock_path: directory.join(format!("{name}.gkvec.lock")),
            directory: directory.to_owned(),
            state: Arc::new(RwLock::new(State {
                rows: Rows::default(),
                mark: None,
                ann: None,
                streaming: false,
            })),
            appending: Mutex::new(()),
        };
        if must_exist && !index.log_path.exists() {
            return Err(Error::VectorNotFound {
                index: name.to_owned(),
                path: index.log_path.display().to_string(),
            });
        }
        index.catch_up()?;
        Ok(index)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory the index lives in.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    pub fn path(&self) -> &Path {
        &self.log_path
    }

    /// Rows stored (after reading what other processes appended).
    pub fn len(&self) -> Result<usize> {
        self.catch_up()?;
        Ok(self.read().rows.len())
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The stored vectors' dimension, `None` while the index is empty.
    pub fn dims(&self) -> Result<Option<usize>> {
        self.catch_up()?;
        let st = self.read();
        Ok((st.rows.len() > 0).then_some(st.rows.dims))
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes this thread the process's one user of the file lock (see the module doc).
    fn appending(&self) -> MutexGuard<'_, ()> {
        self.appending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn storage(&self, path: &Path, detail: impl std::fmt::Display) -> Error {
        Error::VectorStorage {
            index: self.name.clone(),
            path: path.display().to_string(),
            detail: detail.to_string(),
        }
    }

    /// Vectors of `dims` for an index that stores `stored`.
    fn width_mismatch(&self, dims: usize, stored: usize) -> Error {
        invalid(
            &self.name,
            format!("embeddings have {dims} dimensions but the index stores {stored}"),
        )
    }

    fn corrupt(&self, offset: u64, detail: impl Into<String>) -> Error {
        Error::VectorCorrupt {
            index: self.name.clone(),
            path: self.log_path.display().to_string(),
            offset,
            detail: detail.into(),
        }
    }

    /// Checks a document, metadata and vector before anything is locked or written.
    pub fn prepare(&self, position: usize, row: NewRow, id: Option<DocId>) -> Result<Prepared> {
        let doc = self.prepare_doc(position, &row.doc_json, row.embed_meta_json.as_deref(), id)?;
        self.with_vector(position, doc, row.vector.into())
    }

    /// The document half of [`Self::prepare`]: canonical JSON, metadata and id.
    fn prepare_doc(
        &self,
        position: usize,
        doc_json: &str,
        embed_meta_json: Option<&str>,
        id: Option<DocId>,
    ) -> Result<PreparedDoc> {
        let (doc, value) = docid::canonical_doc_json(doc_json).map_err(|e| {
            invalid(
                &self.name,
                format!("document {position} is not usable: {e}"),
            )
        })?;
        let metadata = match value {
            Value::Object(mut map) => match map.remove("metadata") {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            },
            _ => None,
        };
        let embed_meta = match embed_meta_json {
            None => None,
            Some(text) => Some(jsjson::to_compact(&serde_json::from_str(text).map_err(
                |e| {
                    invalid(
                        &self.name,
                        format!("embedding metadata {position} is not JSON: {e}"),
                    )
                },
            )?)),
        };
        Ok(PreparedDoc {
            id: id.unwrap_or_else(|| docid::doc_id(&doc)),
            doc,
            metadata,
            embed_meta,
        })
    }

    /// The vector half of [`Self::prepare`].
    fn with_vector(
        &self,
        position: usize,
        doc: PreparedDoc,
        vector: Embedding,
    ) -> Result<Prepared> {
        let inv_norm = vector.check(&self.name, || format!("embedding {position}"))?;
        Ok(doc.with_checked_vector(vector.into_values(), inv_norm))
    }

    /// Adds rows; returns how many were new (an id already stored, or repeated within
    /// `rows`, is skipped: first write wins, as in JS). Durable when it returns.
    pub fn add(&self, rows: Vec<NewRow>) -> Result<usize> {
        let prepared = self.prepare_all(rows)?;
        self.add_prepared(prepared)
    }

    /// [`Self::prepare`] for every row, in order; large batches spread over the scan pool
    /// (canonical JSON, md5 and the vector checks cost about 2 µs a row).
    fn prepare_all(&self, rows: Vec<NewRow>) -> Result<Vec<Prepared>> {
        in_parallel(rows, |position, row| self.prepare(position, row, None))
    }

    /// The documents of a streamed add ([`Self::add_streamed`]), checked and hashed on its
    /// writer's thread alone: it runs beside the reading of the vectors (which needs the
    /// GIL, on another thread) and takes less time than that, so the pool's threads would
    /// only take the reader's core (measured: 6.5 ms on one thread, 7 ms spread, for 10k
    /// documents).
    pub fn prepare_docs(&self, docs: Vec<String>) -> Result<Vec<PreparedDoc>> {
        docs.iter()
            .enumerate()
            .map(|(position, doc)| self.prepare_doc(position, doc, None, None))
            .collect()
    }

    /// Adds checked rows (see [`Self::add`]).
    pub fn add_prepared(&self, rows: Vec<Prepared>) -> Result<usize> {
        self.add_prepared_into(rows, None)
    }

    /// Memory for `rows` more rows of `dims` floats, made without holding the index's lock
    /// (see [`super::floats::Growth::make`]), for an add of that many rows to move into;
    /// `None` when the add would not need it. A caller makes it, and faults it in
    /// ([`Spare::fault_in`]), while other work runs.
    pub fn room_for(&self, rows: usize, dims: usize) -> Option<Spare> {
        let growth = {
            let st = self.read();
            if st.rows.len() > 0 && st.rows.dims != dims {
                return None;
            }
            st.rows.vectors.growth(rows.checked_mul(dims)?)?
        };
        growth.make()
    }

    /// [`Self::add_prepared`], the floats moving into `spare` if they need new memory.
    fn add_prepared_into(&self, rows: Vec<Prepared>, spare: Option<Spare>) -> Result<usize> {
        let Some(first) = rows.first() else {
            return Ok(0);
        };
        let dims = first.vector.len();
        if let Some((i, row)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.vector.len() != dims)
        {
            return Err(invalid(
                &self.name,
                format!(
                    "embedding {i} has {} dimensions, embedding 0 has {dims}",
                    row.vector.len()
                ),
            ));
        }
        let _appending = self.appending();
        let mut st = self.write();
        fs::create_dir_all(&self.directory).map_err(|e| self.storage(&self.directory, e))?;
        let _lock = self.lock(true)?;
        self.refresh(&mut st)?;
        if let Some(stored) = st.rows.stored_dims().filter(|&stored| stored != dims) {
            return Err(self.width_mismatch(dims, stored));
        }
        let fresh: Vec<&Prepared> = st
            .rows
            .new_positions(rows.iter().map(|r| &r.id))
            .into_iter()
            .map(|i| &rows[i])
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let mark = st.mark;
        let rows = fresh.iter().map(|row| RowIn {
            out: row.out(),
            metadata: &row.metadata,
            inv_norm: row.inv_norm,
        });
        let state: &mut State = &mut st;
        self.publish_once_durable(
            move || state,
            dims,
            spare,
            rows,
            || self.append(mark, &fresh),
            Ok,
        )
    }

    /// Moves the call's new rows into memory while `make_durable` runs on another thread,
    /// and keeps them only once it and then `commit` (on this thread) succeed: the state,
    /// write-locked by `lock_state` once the other thread has started, keeps them unseen
    /// until then, and a failure takes them out again (nothing of the call is acknowledged).
    /// With no thread to spare, `make_durable` runs here. Returns how many rows were added.
    fn publish_once_durable<'r, T: Send, S: DerefMut<Target = State>>(
        &self,
        lock_state: impl FnOnce() -> S,
        dims: usize,
        spare: Option<Spare>,
        rows: impl ExactSizeIterator<Item = RowIn<'r>>,
        make_durable: impl FnOnce() -> Result<T> + Send,
        commit: impl FnOnce(T) -> Result<FileMark>,
    ) -> Result<usize> {
        let count = rows.len();
        // Taken back from here if no thread can be started for it.
        let job = Mutex::new(Some(make_durable));
        let run_job = || {
            let job = job.lock().unwrap_or_else(PoisonError::into_inner).take();
            job.map_or_else(
                || Err(self.storage(&self.log_path, "the write ran twice")),
                |f| f(),
            )
        };
        let (mut st, before, durable) = std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("gkp-sync".into())
                .spawn_scoped(scope, run_job);
            let mut st = lock_state();
            let before = st.rows.len();
            st.rows.dims = dims;
            st.rows.reserve(count, spare);
            for row in rows {
                st.rows.push(
                    *row.out.id,
                    row.out.doc.into(),
                    row.metadata.clone(),
                    row.out.embed_meta.map(Into::into),
                    row.out.vector,
                    row.inv_norm,
                );
            }
            let durable = match worker {
                Ok(worker) => worker.join().unwrap_or_else(|_| {
                    Err(self.storage(&self.log_path, "the thread writing the index panicked"))
                }),
                Err(_) => run_job(),
            };
            (st, before, durable)
        });
        match durable.and_then(commit) {
            Ok(end) => {
                st.mark = Some(end);
                Ok(count)
            }
            Err(e) => {
                st.rows.truncate(before);
                Err(e)
            }
        }
    }

    /// Writes `rows` after the last complete record (cutting off a torn tail) and fsyncs.
    /// Call with the exclusive lock held and the state caught up.
    fn append(&self, mark: Option<FileMark>, rows: &[&Prepared]) -> Result<FileMark> {
        let log = Appender::open(self, mark)?;
        let written = (|| -> std::io::Result<()> {
            let mut rest = rows;
            for (count, bytes) in record_split(rows.iter().map(|r| log::encoded_len(&r.out()))) {
                let (these, more) = rest.split_at(count);
                rest = more;
                let mut record = log.record(count, bytes)?;
                for row in these {
                    record.row(&row.out())?;
                }
                log.finish(record)?;
            }
            log.file.sync_data()
        })();
        // On failure, dropping `log` undoes the append.
        written
            .map_err(|e| log.failed(e))
            .and_then(|()| log.committed())
    }

    /// Takes the cross-process lock (held until the returned guard is dropped).
    fn lock(&self, exclusive: bool) -> Result<FileLock> {
        let path = &self.lock_path;
        let file = open_read_write(path)
            .map_err(|e| self.storage(path, format!("cannot open lock file: {e}")))?;
        let locked = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        locked.map_err(|e| self.storage(path, format!("cannot take lock: {e}")))?;
        Ok(FileLock(file))
    }

    /// Whether the log differs from what this process has read.
    fn changed(&self, mark: Option<FileMark>) -> Result<bool> {
        match fs::metadata(&self.log_path) {
            Ok(meta) => Ok(mark.is_none_or(|m| {
                m.dev != meta.dev() || m.ino != meta.ino() || m.seen_len != meta.len()
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(mark.is_some()),
            Err(e) => Err(self.storage(&self.log_path, e)),
        }
    }

    /// Reads what other processes appended, if anything.
    fn catch_up(&self) -> Result<()> {
        let (mark, streaming) = {
            let st = self.read();
            (st.mark, st.streaming)
        };
        if streaming || !self.changed(mark)? {
            return Ok(());
        }
        let _appending = self.appending();
        let mut st = self.write();
        if !self.changed(st.mark)? {
            return Ok(());
        }
        let _lock = self.lock(false)?;
        self.refresh(&mut st)
    }

    /// Reads the log's new bytes into memory. Call holding the lock (shared or exclusive).
    fn refresh(&self, st: &mut State) -> Result<()> {
        let path = &self.log_path;
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if st.mark.is_some_and(|m| m.good_end > 0) {
                    return Err(self.storage(path, "the index file disappeared"));
                }
                // Gone before anything was acknowledged in it (a failed first add removes
                // the file it created): as if it had never been.
                st.mark = None;
                return Ok(());
            }
            Err(e) => return Err(self.storage(path, e)),
        };
        let meta = file.metadata().map_err(|e| self.storage(path, e))?;
        if let Some(mark) = st.mark {
            if mark.dev != meta.dev() || mark.ino != meta.ino() {
                // Replaced by another file (deleted and recreated): read it from the start.
                st.rows = Rows::default();
                st.mark = None;
                st.ann = None;
            } else if meta.len() < mark.good_end {
                return Err(self.corrupt(
                    meta.len(),
                    format!(
                        "the file shrank below its {} acknowledged bytes",
                        mark.good_end
                    ),
                ));
            } else if meta.len() == mark.seen_len {
                return Ok(());
            }
        }
        let from = st.mark.map_or(0, |m| m.good_end);
        let mut buf = Vec::with_capacity((meta.len().saturating_sub(from)) as usize);
        file.seek(SeekFrom::Start(from))
            .and_then(|_| file.read_to_end(&mut buf))
            .map_err(|e| self.storage(path, e))?;
        let seen_len = from + buf.len() as u64;
        let (records, base) = if from == 0 {
            let whole =
                log::check_file_header(&buf).map_err(|c| self.corrupt(c.offset, c.detail))?;
            if !whole {
                // A creator died before its header was written: nothing was acknowledged.
                st.mark = Some(FileMark {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    seen_len,
                    good_end: 0,
                });
                return Ok(());
            }
            (&buf[log::FILE_HEADER_LEN..], log::FILE_HEADER_LEN as u64)
        } else {
            (&buf[..], from)
        };
        let before = st.rows.len();
        let rows = &mut st.rows;
        match log::decode(records, base, |row| rows.push_stored(row)) {
            Ok(decoded) => {
                st.mark = Some(FileMark {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    seen_len,
                    good_end: decoded.good_end,
                });
                Ok(())
            }
            Err(c) => {
                st.rows.truncate(before);
                Err(self.corrupt(c.offset, c.detail))
            }
        }
    }

    /// The `k` documents most similar to `query` (cosine), best first; ties keep indexing
    /// order. `approximate` scans one-bit codes of the rows (built on first use, extended as
    /// rows arrive) and scores the nearest candidates exactly; with a filter the search is
    /// exact over the matching rows.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        approximate: bool,
    ) -> Result<Vec<Hit>> {
        Ok(self
            .search_many(query, query.len().max(1), k, filter, approximate)?
            .pop()
            .unwrap_or_default())
    }

    /// [`Self::search`] for several queries of `dims` values each, back to back in
    /// `queries`, in one pass over the stored vectors.
    pub fn search_many(
        &self,
        queries: &[f32],
        dims: usize,
        k: usize,
        filter: Option<&Filter>,
        approximate: bool,
    ) -> Result<Vec<Vec<Hit>>> {
        if dims == 0 || queries.is_empty() || !queries.len().is_multiple_of(dims) {
            return Err(invalid(&self.name, "a query must be a non-empty vector"));
        }
        let mut normalized = Vec::with_capacity(queries.len());
        for (i, q) in queries.chunks_exact(dims).enumerate() {
            let inv = check_vector(&self.name, q, &format!("query {i}"))?;
            normalized.extend(q.iter().map(|x| x * inv));
        }
        let nq = queries.len() / dims;
        self.catch_up()?;
        if approximate && filter.is_none() {
            self.ensure_ann()?;
        }
        let st = self.read();
        if st.rows.len() == 0 || k == 0 {
            return Ok(vec![Vec::new(); nq]);
        }
        if st.rows.dims != dims {
            return Err(invalid(
                &self.name,
                format!(
                    "query has {dims} dimensions but the index stores {}",
                    st.rows.dims
                ),
            ));
        }
        let m = st.rows.matrix();
        let source: Arc<dyn topk::Source> = self.state.clone();
        let results: Vec<Vec<Scored>> = match (filter, approximate, st.ann.as_ref()) {
            (Some(filter), _, _) => {
                let rows: Vec<u32> = (0..st.rows.len() as u32)
                    .filter(|&i| filter.matches(st.rows.metadata[i as usize].as_ref()))
                    .collect();
                let rows: Arc<[u32]> = rows.into();
                normalized
                    .chunks_exact(dims)
                    .map(|q| topk::search_shared(m, &source, q, k, Some(Arc::clone(&rows))))
                    .collect()
            }
            (None, true, Some(ann)) => normalized
                .chunks_exact(dims)
                .map(|q| ann.search(m, q, k))
                .collect(),
            _ if nq == 1 => vec![topk::search_shared(m, &source, &normalized, k, None)],
            _ => topk::search_many(m, &source, &normalized, k),
        };
        Ok(results
            .into_iter()
            .map(|hits| {
                hits.into_iter()
                    .map(|s| Hit {
                        doc_json: st.rows.docs[s.row as usize].to_string(),
                        score: s.score,
                    })
                    .collect()
            })
            .collect())
    }

    /// Builds the approximate index, or extends it with rows added since.
    fn ensure_ann(&self) -> Result<()> {
        let fresh = |st: &State| {
            st.rows.len() < super::ann::MIN_ROWS
                || st.rows.dims > super::ann::MAX_DIMS
                || st.ann.as_ref().is_some_and(|a| a.is_current(st.rows.len()))
        };
        if fresh(&self.read()) {
            return Ok(());
        }
        let mut st = self.write();
        if fresh(&st) {
            return Ok(());
        }
        let state = &mut *st;
        let m = state.rows.matrix();
        match state.ann.as_mut() {
            Some(ann) if !ann.needs_retraining(m.rows()) => ann.extend(m),
            _ => state.ann = Some(BinaryCodes::build(m)),
        }
        Ok(())
    }

    /// Every row in indexing order: (id, document JSON, embedding metadata JSON, vector).
    pub fn for_each_row(
        &self,
        mut f: impl FnMut(&DocId, &str, Option<&str>, &[f32]) -> Result<()>,
    ) -> Result<()> {
        self.catch_up()?;
        let st = self.read();
        let d = st.rows.dims;
        for i in 0..st.rows.len() {
            f(
                &st.rows.ids[i],
                &st.rows.docs[i],
                st.rows.embed_meta[i].as_deref(),
                &st.rows.vectors.as_slice()[i * d..(i + 1) * d],
            )?;
        }
        Ok(())
    }
}

/// `path` opened to read and write, created if missing, its contents kept.
fn open_read_write(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// The cross-process lock, released when dropped. Released explicitly, not by closing the
/// file: a child forked meanwhile holds a copy of the descriptor, which would keep the lock
/// taken for as long as the child lives.
struct FileLock(File);

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Writes a piece of a record at an offset within it (see [`RecordWriter`]).
type LogWrite<'a> = Box<dyn FnMut(u64, &[u8]) -> std::io::Result<()> + 'a>;
/// A record being written into the log.
type LogRecord<'a> = RecordWriter<LogWrite<'a>>;

/// An append in progress: the log opened after its last complete record (a torn tail cut
/// off, the file created if need be), records written from `start` to `end`. Unless
/// [`Self::committed`] is reached, dropping it undoes the append (so a failure or a panic
/// anywhere between leaves nothing); drop it before the lock.
struct Appender<'a> {
    index: &'a LocalIndex,
    file: File,
    good_end: u64,
    start: u64,
    end: Cell<u64>,
    created: bool,
    done: Cell<bool>,
}

impl<'a> Appender<'a> {
    /// Call with the exclusive lock held; `mark` is the state's, caught up.
    fn open(index: &'a LocalIndex, mark: Option<FileMark>) -> Result<Self> {
        let path = &index.log_path;
        let file = open_read_write(path).map_err(|e| index.storage(path, e))?;
        let good_end = mark.map_or(0, |m| m.good_end);
        let created = good_end < log::FILE_HEADER_LEN as u64;
        let mut start = good_end;
        if created {
            file.set_len(0).map_err(|e| index.storage(path, e))?;
            file.write_all_at(&log::file_header(), 0)
                .map_err(|e| index.storage(path, e))?;
            start = log::FILE_HEADER_LEN as u64;
        } else if mark.is_some_and(|m| m.seen_len > good_end) {
            // A writer died mid-record: that record was never acknowledged.
            file.set_len(good_end).map_err(|e| index.storage(path, e))?;
        }
        Ok(Appender {
            index,
            file,
            good_end,
            start,
            end: Cell::new(start),
            created,
            done: Cell::new(false),
        })
    }

    /// Starts a record of `row_count` rows taking `rows_len` bytes at `end`. Each piece
    /// it writes is handed to the disk at once, so the final `fdatasync` waits for the last
    /// pieces only.
    fn record(&self, row_count: usize, rows_len: usize) -> std::io::Result<LogRecord<'_>> {
        let base = self.end.get();
        let write_at: LogWrite<'_> = Box::new(move |at, bytes| {
            self.file.write_all_at(bytes, base + at)?;
            writeback::start(&self.file, base + at, bytes.len());
            Ok(())
        });
        RecordWriter::begin(row_count, rows_len, write_at)
    }

    /// After the records were written and fsynced: what this process has now read. The
    /// append stays once this returns `Ok`.
    fn committed(&self) -> Result<FileMark> {
        let path = &self.index.log_path;
        if self.created {
            // Make the new file's name durable too.
            if let Ok(dir) = File::open(&self.index.directory) {
                let _ = dir.sync_all();
            }
        }
        let meta = self
            .file
            .metadata()
            .map_err(|e| self.index.storage(path, e))?;
        Ok(FileMark {
            dev: meta.dev(),
            ino: meta.ino(),
            seen_len: self.end.get(),
            good_end: self.end.get(),
        })
        .inspect(|_| self.done.set(true))
    }

    /// Finishes `record` (see [`RecordWriter::finish`]); the next one goes after it.
    fn finish(&self, record: LogRecord<'_>) -> std::io::Result<()> {
        let len = record.finish()?;
        self.end.set(self.end.get() + len);
        Ok(())
    }

    /// A failure to write or sync the log, as the error to return.
    fn failed(&self, e: impl std::fmt::Display) -> Error {
        self.index.storage(&self.index.log_path, e)
    }
}

impl Drop for Appender<'_> {
    /// Leaves the file as it was (nothing of the call is acknowledged): cut back and synced,
    /// so even a complete record of a failed call cannot come back after a power loss; a
    /// file this append created is removed (no one else can have read it: the lock is held).
    fn drop(&mut self) {
        if self.done.get() {
            return;
        }
        if self.created {
            let _ = fs::remove_file(&self.index.log_path);
        } else if self.file.set_len(self.start.max(self.good_end)).is_ok() {
            let _ = self.file.sync_data();
        }
    }
}

/// How rows of these encoded lengths ([`log::encoded_row_len`]) split into records below
/// the format's size limit (one record in practice): each record's row count and bytes.
fn record_split(lens: impl IntoIterator<Item = usize>) -> Vec<(usize, usize)> {
    const LIMIT: usize = 1 << 30;
    let mut records = Vec::new();
    let (mut rows, mut size) = (0, 0);
    for len in lens {
        if size + len > LIMIT && rows > 0 {
            records.push((rows, size));
            (rows, size) = (0, 0);
        }
        rows += 1;
        size += len;
    }
    if rows > 0 {
        records.push((rows, size));
    }
    records
}

/// `1/‖v‖` of a usable vector, or an error naming what is wrong with it.
pub fn check_vector(index: &str, v: &[f32], what: &str) -> Result<f32> {
    VectorStats::of(v).check(index, || what.to_owned())
}

/// What [`check_vector`] needs of a vector, gathered one value at a time.
#[derive(Clone, Copy, Default)]
struct VectorStats {
    len: usize,
    /// Sum of squares, in [`topk::inverse_norm`]'s order (so the same result).
    sum_squares: f64,
    /// The first value that is not finite, and where.
    non_finite: Option<(usize, f32)>,
}

impl VectorStats {
    #[inline]
    fn add(&mut self, x: f32) {
        if !x.is_finite() && self.non_finite.is_none() {
            self.non_finite = Some((self.len, x));
        }
        self.sum_squares = topk::add_square(self.sum_squares, x);
        self.len += 1;
    }

    fn of(v: &[f32]) -> Self {
        let mut stats = VectorStats::default();
        for &x in v {
            stats.add(x);
        }
        stats
    }

    /// `1/‖v‖`, or an error naming what is wrong (`what` names the vector).
    fn check(&self, index: &str, what: impl FnOnce() -> String) -> Result<f32> {
        if self.len == 0 {
            return Err(invalid(index, format!("{} is empty", what())));
        }
        if let Some((i, x)) = self.non_finite {
            return Err(invalid(
                index,
                format!("{} has a non-finite value ({x}) at {i}", what()),
            ));
        }
        topk::inverse_norm_of(self.sum_squares).ok_or_else(|| {
            invalid(
                index,
                format!(
                    "{} is a zero vector (cosine similarity is undefined)",
                    what()
                ),
            )
        })
    }
}

/// An embedding being read in, checked as its values arrive ([`Embedding::push`]): a batch
/// of millions of values is checked in the pass that copies it, not in a second one.
#[derive(Default)]
pub struct Embedding {
    values: Vec<f32>,
    stats: VectorStats,
}

impl Embedding {
    pub fn with_capacity(dims: usize) -> Self {
        Embedding {
            values: Vec::with_capacity(dims),
            stats: VectorStats::default(),
        }
    }

    #[inline]
    pub fn push(&mut self, x: f32) {
        self.stats.add(x);
        self.values.push(x);
    }

    pub fn into_values(self) -> Vec<f32> {
        self.values
    }

    /// `1/‖v‖`, or an error naming what is wrong (`what` names the vector).
    fn check(&self, index: &str, what: impl FnOnce() -> String) -> Result<f32> {
        self.stats.check(index, what)
    }
}

impl From<Vec<f32>> for Embedding {
    fn from(values: Vec<f32>) -> Self {
        Embedding {
            stats: VectorStats::of(&values),
            values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(text: &str, meta: Option<&str>, v: &[f32]) -> NewRow {
        let doc = match meta {
            Some(m) => format!(r#"{{"content":[{{"text":"{text}"}}],"metadata":{m}}}"#),
            None => format!(r#"{{"content":[{{"text":"{text}"}}]}}"#),
        };
        NewRow {
            doc_json: doc,
            embed_meta_json: None,
            vector: v.to_vec(),
        }
    }

    fn texts(hits: &[Hit]) -> Vec<String> {
        hits.iter().map(|h| h.doc_json.clone()).collect()
    }

    #[test]
    fn first_write_wins_and_a_second_instance_catches_up() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = LocalIndex::open(dir.path(), "facts", false).expect("open");
        let b = LocalIndex::open(dir.path(), "facts", false).expect("open");
        assert_eq!(
            a.add(vec![
                row("aaa", Some(r#"{"src":1}"#), &[3., 0., 0.]),
                row("bbb", None, &[0., 3., 0.])
            ])
            .expect("add"),
            2
        );
        // Same document, another embedding: skipped, also from the other instance.
        assert_eq!(
            b.add(vec![row("aaa", Some(r#"{"src":1.0}"#), &[0., 0., 1.])])
                .expect("add"),
            0
        );
        assert_eq!(
            b.add(vec![row("aaa", Some(r#"{"src":2}"#), &[3., 0., 0.])])
                .expect("add"),
            1
        );
        let hits = a.search(&[1., 0., 0.], 3, None, false).expect("search");
        assert_eq!(
            texts(&hits),
            vec![
                r#"{"content":[{"text":"aaa"}],"metadata":{"src":1}}"#,
                r#"{"content":[{"text":"aaa"}],"metadata":{"src":2}}"#,
                r#"{"content":[{"text":"bbb"}]}"#,
            ]
        );
        let filter = Filter::from_json("facts", r#"{"src": 2.0}"#).expect("filter");
        let hits = a
            .search(&[1., 0., 0.], 3, Some(&filter), false)
            .expect("search");
        assert_eq!(hits.len(), 1);
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        let reopened = LocalIndex::open(dir.path(), "facts", true).expect("reopen");
        assert_eq!(reopened.len().expect("len"), 3);
    }

    #[test]
    fn large_searches_share_the_pool_while_another_thread_writes() {
        // Scans large enough to be shared with the pool, while batches land: a search sees
        // whole batches only (every batch's rows share one direction, so the top row's
        // score is exact), and nothing deadlocks on the store's lock.
        let dir = tempfile::tempdir().expect("tmp");
        let index = LocalIndex::open(dir.path(), "busy", false).expect("open");
        let dims = 64;
        let batch = |b: usize| -> Vec<NewRow> {
            (0..2_000)
                .map(|i| {
                    let mut v = vec![0.0f32; dims];
                    v[b % dims] = 1.0 + (i % 7) as f32;
                    row(&format!("b{b} r{i}"), None, &v)
                })
                .collect()
        };
        index.add(batch(0)).expect("add");
        let done = std::sync::atomic::AtomicBool::new(false);
        let searches = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for b in 1..20 {
                    index.add(batch(b)).expect("add");
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            for _ in 0..2 {
                scope.spawn(|| {
                    let mut q = vec![0.0f32; dims];
                    q[0] = 1.0;
                    while !done.load(std::sync::atomic::Ordering::SeqCst) {
                        let hits = index.search(&q, 5, None, false).expect("search");
                        assert_eq!(hits.len(), 5);
                        assert!((hits[0].score - 1.0).abs() < 1e-6);
                        searches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(index.len().expect("len"), 20 * 2_000);
        assert!(searches.into_inner() > 0);
    }

    #[test]
    fn a_torn_tail_is_dropped_and_cut_off_by_the_next_writer() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = LocalIndex::open(dir.path(), "t", false).expect("open");
        index.add(vec![row("a", None, &[1., 0.])]).expect("add");
        let path = index.path().to_owned();
        let good = fs::read(&path).expect("read");
        // A second record cut short, as a kill -9 mid-write leaves it.
        let mut torn = good.clone();
        let extra = log::encode_record(&[RowOut {
            id: &[9; 16],
            doc: "{}",
            embed_meta: None,
            vector: &[1., 1.],
        }]);
        torn.extend_from_slice(&extra[..extra.len() - 3]);
        fs::write(&path, &torn).expect("write");
        let fresh = LocalIndex::open(dir.path(), "t", true).expect("opens");
        assert_eq!(fresh.len().expect("len"), 1);
        fresh.add(vec![row("b", None, &[0., 1.])]).expect("add");
        let again = LocalIndex::open(dir.path(), "t", true).expect("opens");
        assert_eq!(again.len().expect("len"), 2);
    }

    #[test]
    fn damage_inside_the_file_is_a_corrupt_store_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = LocalIndex::open(dir.path(), "c", false).expect("open");
        index.add(vec![row("a", None, &[1., 0.])]).expect("add");
        index.add(vec![row("b", None, &[0., 1.])]).expect("add");
        let path = index.path().to_owned();
        let mut bytes = fs::read(&path).expect("read");
        bytes[40] ^= 1;
        fs::write(&path, &bytes).expect("write");
        let err = LocalIndex::open(dir.path(), "c", true)
            .err()
            .expect("corrupt");
        assert!(matches!(err, Error::VectorCorrupt { .. }), "{err}");
        assert!(err.to_string().contains("c.gkvec"), "{err}");
        // The instance that read the records before the damage keeps serving them.
        assert_eq!(index.len().expect("len"), 2);
    }

    #[test]
    fn bad_input_is_rejected_naming_the_index() {
        let dir = tempfile::tempdir().expect("tmp");
        for name in ["", "../x", "a/b", "a\\b", ".hidden", "nul\0"] {
            assert!(matches!(
                LocalIndex::open(dir.path(), name, false),
                Err(Error::VectorInvalid { .. })
            ));
        }
        assert!(matches!(
            LocalIndex::open(dir.path(), "missing", true),
            Err(Error::VectorNotFound { .. })
        ));
        let index = LocalIndex::open(dir.path(), "v", false).expect("open");
        index.add(vec![row("a", None, &[1., 0., 0.])]).expect("add");
        for bad in [
            vec![],
            vec![f32::NAN, 0., 0.],
            vec![0., 0., 0.],
            vec![1., 2.],
        ] {
            let err = index.add(vec![row("q", None, &bad)]).expect_err("bad row");
            assert!(err.to_string().contains("\"v\""), "{err}");
            if !bad.is_empty() {
                assert!(index.search(&bad, 3, None, false).is_err());
            }
        }
        assert_eq!(index.len().expect("len"), 1, "nothing lost");
    }
}
