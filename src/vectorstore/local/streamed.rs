//! An add whose vectors are still being read while it runs.
//!
//! Reading millions of floats out of Python lists needs the GIL, so it runs on the calling
//! thread and takes about as long as writing and fsyncing the record they go into. Done one
//! after the other, the call costs both; here the writer takes the locks and writes the
//! record while the reader is still reading: the documents are hashed first (which rows are
//! new is known from their ids alone), each row is written as soon as its vector arrives,
//! and the disk gets each piece as it is written. Only the record's checksum waits for the
//! reader's end, so a call that fails never leaves a complete record. When the last vector
//! arrives, little is left to write or sync. In between, the writer faults in the memory the
//! rows will move to.
//!
//! The reader sends [`Arrival`]s in row order and ends with [`Arrival::End`]; a reader that
//! fails simply stops sending (drops its sender), and the writer undoes what it wrote:
//! nothing of the call is acknowledged. Before the reader runs Python code to convert a
//! value (which may wait for this index's locks, through another thread or process), it
//! sends [`Arrival::Slow`]: the writer undoes its partial record, lets go of the locks and
//! adds the rows as a plain add once they are all in.

use std::fs;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, OnceLock};

use super::{Appender, Embedding, LocalIndex, PreparedDoc, RowIn, invalid, log, record_split};
use crate::errors::{Error, Result};
use crate::vectorstore::floats::Spare;
use crate::vectorstore::log::RowOut;

/// What the reader of an add's vectors sends its writer, in order.
pub enum Arrival {
    /// The next rows' vectors.
    Rows(Vec<Embedding>),
    /// Every vector was read (this many), and the reader no longer uses the spare memory.
    End { rows: usize },
    /// The reader is about to run Python code: hold no lock while it does.
    Slow,
}

/// Memory for an add's floats, shared by its writer and its reader (see
/// [`StreamedAdd::spare`]).
pub type SpareSlot = Arc<OnceLock<Option<Spare>>>;

/// An add of documents (JSON texts, row `i` is document `i`, no embedding metadata) whose
/// vectors arrive through `arrivals`.
pub struct StreamedAdd {
    pub docs: Vec<String>,
    /// The vectors' width, if the reader could tell ahead (to make room for them early).
    pub dims: Option<usize>,
    pub arrivals: Receiver<Arrival>,
    /// Memory for the rows' floats, made here (see [`LocalIndex::room_for`]) and faulted in
    /// by both sides; the reader drops its share before it sends [`Arrival::End`].
    pub spare: SpareSlot,
}

/// A row of the call whose vector has arrived and been checked.
struct Arrived {
    values: Vec<f32>,
    inv_norm: f32,
}

/// Why the streamed write stopped early.
enum Stop {
    /// The reader runs Python code: the add goes on without the locks.
    Slow,
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

impl LocalIndex {
    /// Adds the documents with their vectors as they arrive; as [`Self::add`] (first write
    /// wins, durable when it returns, returns how many rows were new).
    pub fn add_streamed(&self, add: StreamedAdd) -> Result<usize> {
        let StreamedAdd {
            docs,
            dims,
            arrivals,
            spare,
        } = add;
        let count = docs.len();
        let mut stream = Stream {
            index: self,
            arrivals,
            spare,
            count,
            vectors: Vec::with_capacity(count),
            dims: 0,
            ended: false,
            slow: false,
        };
        let docs = self.prepare_docs(docs)?;
        match self.write_streamed(&docs, dims, &mut stream) {
            Ok(added) => Ok(added),
            Err(Stop::Failed(e)) => Err(e),
            Err(Stop::Slow) => {
                // The locks are let go and the partial record undone: gather the rest, then
                // add as a plain add does.
                stream.wait_for_all().map_err(Stop::into_error)?;
                let spare = stream.take_spare();
                let rows = docs
                    .into_iter()
                    .zip(std::mem::take(&mut stream.vectors))
                    .map(|(doc, vector)| doc.with_checked_vector(vector.values, vector.inv_norm))
                    .collect();
                self.add_prepared_into(rows, spare)
            }
        }
    }

    /// The add with the locks held, each new row written as it arrives.
    fn write_streamed(
        &self,
        docs: &[PreparedDoc],
        dims_hint: Option<usize>,
        stream: &mut Stream<'_>,
    ) -> std::result::Result<usize, Stop> {
        let count = docs.len();
        let _appending = self.appending();
        fs::create_dir_all(&self.directory).map_err(|e| self.storage(&self.directory, e))?;
        let _lock = self.lock(true)?;
        let (mark, stored_dims, fresh) = {
            let mut st = self.write();
            self.refresh(&mut st)?;
            let fresh = st.rows.new_positions(docs.iter().map(|doc| &doc.id));
            st.streaming = true;
            (st.mark, st.rows.stored_dims(), fresh)
        };
        let _streaming = StreamingMark(self);
        // Room for the new rows only (none when there are none: the reader then skips
        // faulting it in too).
        let rows = fresh.len();
        let wanted = dims_hint.filter(|_| rows > 0);
        stream
            .spare
            .get_or_init(|| wanted.and_then(|dims| self.room_for(rows, dims)));

        // The first vector tells the width of every row, hence the records' lengths.
        stream.wait_for(1)?;
        let dims = stream.dims;
        if let Some(stored) = stored_dims.filter(|&stored| count > 0 && stored != dims) {
            return Err(self.width_mismatch(dims, stored).into());
        }
        if fresh.is_empty() {
            stream.wait_for_all()?;
            return Ok(0);
        }
        let records = record_split(
            fresh
                .iter()
                .map(|&i| log::encoded_row_len(docs[i].doc.len(), None, dims)),
        );
        if records.len() > 1 {
            // Over 1 GiB of rows: written only once all are in, so that no record of a
            // call that fails is complete.
            stream.wait_for_all()?;
        }
        // Dropped unless committed, `log` undoes the append (before the lock is let go).
        let log = Appender::open(self, mark)?;
        let mut rest = &fresh[..];
        let mut last = None;
        for (n, (rows, bytes)) in records.iter().copied().enumerate() {
            let (these, more) = rest.split_at(rows);
            rest = more;
            let mut record = log.record(rows, bytes).map_err(|e| log.failed(e))?;
            for &i in these {
                stream.wait_for(i + 1)?;
                let row = row_out(&docs[i], &stream.vectors[i]);
                record.row(&row).map_err(|e| log.failed(e))?;
            }
            if n + 1 < records.len() {
                log.finish(record).map_err(|e| log.failed(e))?;
            } else {
                last = Some(record);
            }
        }
        // Rows after the last new one (duplicates) are checked all the same, and the call
        // must end well before its record is complete.
        stream.wait_for_all()?;
        if let Some(record) = last {
            log.finish(record).map_err(|e| log.failed(e))?;
        }

        // Durable on one thread; on this one, the rows move into memory, unseen until the
        // sync is done.
        let spare = stream.take_spare();
        let rows = fresh.iter().map(|&i| RowIn {
            out: row_out(&docs[i], &stream.vectors[i]),
            metadata: &docs[i].metadata,
            inv_norm: stream.vectors[i].inv_norm,
        });
        let file = &log.file;
        let sync = move || {
            file.sync_data()
                .map_err(|e| self.storage(&self.log_path, e))
        };
        self.publish_once_durable(
            || self.write(),
            dims,
            spare,
            rows,
            sync,
            |()| log.committed(),
        )
        .map_err(Stop::Failed)
    }
}

/// Row `doc` with its vector, as written and kept (a streamed add has no embedding metadata).
fn row_out<'a>(doc: &'a PreparedDoc, vector: &'a Arrived) -> RowOut<'a> {
    RowOut {
        id: &doc.id,
        doc: &doc.doc,
        embed_meta: None,
        vector: &vector.values,
    }
}

/// Clears [`super::State::streaming`] when the streamed write ends, however it ends.
struct StreamingMark<'a>(&'a LocalIndex);

impl Drop for StreamingMark<'_> {
    fn drop(&mut self) {
        self.0.write().streaming = false;
    }
}

impl Stop {
    /// After the locks were let go, nothing can ask for them again.
    fn into_error(self) -> Error {
        match self {
            Stop::Failed(e) => e,
            Stop::Slow => Error::Internal("a streamed add was told twice to let go".into()),
        }
    }
}

/// The writer's side of the channel: the vectors that have arrived, checked.
struct Stream<'a> {
    index: &'a LocalIndex,
    arrivals: Receiver<Arrival>,
    spare: SpareSlot,
    /// Rows the call has (one per document).
    count: usize,
    vectors: Vec<Arrived>,
    /// Width of the first vector (0 until it arrives).
    dims: usize,
    ended: bool,
    /// [`Arrival::Slow`] came.
    slow: bool,
}

impl Stream<'_> {
    /// Waits until `rows` vectors have arrived (or the reader ended), faulting in the spare
    /// memory while none is waiting.
    fn wait_for(&mut self, rows: usize) -> std::result::Result<(), Stop> {
        while self.vectors.len() < rows.min(self.count) && !self.ended {
            let arrival = match self.arrivals.try_recv() {
                Ok(arrival) => arrival,
                Err(TryRecvError::Empty) => {
                    if self.room().is_some_and(Spare::fault_in_piece) {
                        continue;
                    }
                    self.arrivals
                        .recv()
                        .map_err(|_| Stop::from(self.reader_failed()))?
                }
                Err(TryRecvError::Disconnected) => return Err(self.reader_failed().into()),
            };
            self.take(arrival)?;
        }
        Ok(())
    }

    /// Waits for every row and then [`Arrival::End`].
    fn wait_for_all(&mut self) -> std::result::Result<(), Stop> {
        self.wait_for(self.count)?;
        self.wait_for_end()
    }

    /// Waits for [`Arrival::End`], helping fault in the spare meanwhile.
    fn wait_for_end(&mut self) -> std::result::Result<(), Stop> {
        if let Some(room) = self.room() {
            room.fault_in();
        }
        while !self.ended {
            let arrival = self
                .arrivals
                .recv()
                .map_err(|_| Stop::from(self.reader_failed()))?;
            self.take(arrival)?;
        }
        Ok(())
    }

    fn take(&mut self, arrival: Arrival) -> std::result::Result<(), Stop> {
        let batch = match arrival {
            Arrival::Rows(batch) => batch,
            Arrival::Slow if !self.slow => {
                self.slow = true;
                return Err(Stop::Slow);
            }
            Arrival::Slow => return Ok(()),
            Arrival::End { rows } => {
                self.ended = true;
                if rows != self.count || self.vectors.len() != rows {
                    return Err(self.counts_differ(rows).into());
                }
                return Ok(());
            }
        };
        if self.vectors.len() + batch.len() > self.count {
            return Err(self.counts_differ(self.vectors.len() + batch.len()).into());
        }
        for vector in batch {
            let position = self.vectors.len();
            let inv_norm = vector.check(&self.index.name, || format!("embedding {position}"))?;
            let width = vector.values.len();
            if position == 0 {
                self.dims = width;
            } else if width != self.dims {
                return Err(invalid(
                    &self.index.name,
                    format!(
                        "embedding {position} has {width} dimensions, embedding 0 has {}",
                        self.dims
                    ),
                )
                .into());
            }
            self.vectors.push(Arrived {
                values: vector.values,
                inv_norm,
            });
        }
        Ok(())
    }

    fn counts_differ(&self, embeddings: usize) -> Error {
        invalid(
            &self.index.name,
            format!("{} documents but {embeddings} embeddings", self.count),
        )
    }

    /// The reader stopped without ending: it failed, and raised its own error in Python.
    fn reader_failed(&self) -> Error {
        invalid(
            &self.index.name,
            "reading the embeddings failed; nothing was stored",
        )
    }

    fn room(&self) -> Option<&Spare> {
        self.spare.get().and_then(Option::as_ref)
    }

    /// The spare memory, once the reader has let go of its share (it does before it ends);
    /// `None` if it still holds it, and the rows move to memory made as they are copied.
    fn take_spare(&mut self) -> Option<Spare> {
        let spare = std::mem::take(&mut self.spare);
        Arc::into_inner(spare)
            .and_then(OnceLock::into_inner)
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{self, Sender};
    use std::time::Duration;

    use super::*;
    use crate::vectorstore::local::NewRow;

    fn doc(text: &str) -> String {
        format!(r#"{{"content":[{{"text":"{text}"}}]}}"#)
    }

    fn vector(i: usize, dims: usize) -> Vec<f32> {
        (0..dims)
            .map(|j| ((i * 7 + j * 3) % 11) as f32 + 1.0)
            .collect()
    }

    /// Starts a streamed add of `docs` on another thread; the caller plays the reader.
    fn start(
        index: &Arc<LocalIndex>,
        docs: Vec<String>,
        dims: Option<usize>,
    ) -> (
        Sender<Arrival>,
        SpareSlot,
        std::thread::JoinHandle<Result<usize>>,
    ) {
        let (sender, arrivals) = mpsc::channel();
        let spare = SpareSlot::default();
        let add = StreamedAdd {
            docs,
            dims,
            arrivals,
            spare: Arc::clone(&spare),
        };
        let index = Arc::clone(index);
        (
            sender,
            spare,
            std::thread::spawn(move || index.add_streamed(add)),
        )
    }

    fn rows(range: std::ops::Range<usize>, dims: usize) -> Arrival {
        Arrival::Rows(range.map(|i| Embedding::from(vector(i, dims))).collect())
    }

    /// Adds one row through the plain add; returns how many were new.
    fn add_one(index: &LocalIndex, text: &str, vector: Vec<f32>, what: &str) -> usize {
        index
            .add(vec![NewRow {
                doc_json: doc(text),
                embed_meta_json: None,
                vector,
            }])
            .expect(what)
    }

    fn file_len(index: &LocalIndex) -> u64 {
        fs::metadata(index.path()).map_or(0, |m| m.len())
    }

    #[test]
    fn rows_arriving_in_batches_are_stored_as_an_add_stores_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = Arc::new(LocalIndex::open(dir.path(), "s", false).expect("open"));
        let twin = LocalIndex::open(dir.path(), "twin", false).expect("open");
        // Stored before: document 1. Repeated within the call: document 2 (positions 2, 5).
        let texts = ["d0", "d1", "d2", "d3", "d4", "d2", "d6"];
        let dims = 300_000; // records of several chunks
        add_one(&index, "d1", vector(100, dims), "add");
        let (sender, spare, writer) = start(&index, texts.map(doc).to_vec(), Some(dims));
        for range in [0..2, 2..3, 3..7] {
            sender.send(rows(range, dims)).expect("send");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(spare);
        sender.send(Arrival::End { rows: 7 }).expect("send");
        assert_eq!(writer.join().expect("writer").expect("add"), 5);
        // The same rows through the plain add, into another index: the same answers.
        let plain: Vec<NewRow> = std::iter::once(NewRow {
            doc_json: doc("d1"),
            embed_meta_json: None,
            vector: vector(100, dims),
        })
        .chain(texts.iter().enumerate().map(|(i, t)| NewRow {
            doc_json: doc(t),
            embed_meta_json: None,
            vector: vector(i, dims),
        }))
        .collect();
        assert_eq!(twin.add(plain).expect("add"), 6);
        let query = vector(3, dims);
        let reopened = LocalIndex::open(dir.path(), "s", true).expect("reopen");
        for store in [&*index, &reopened] {
            assert_eq!(store.len().expect("len"), 6);
            assert_eq!(
                store.search(&query, 6, None, false).expect("search"),
                twin.search(&query, 6, None, false).expect("search")
            );
        }
    }

    #[test]
    fn a_reader_that_stops_or_miscounts_leaves_nothing_and_the_next_add_works() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = Arc::new(LocalIndex::open(dir.path(), "s", false).expect("open"));
        let docs = || (0..600).map(|i| doc(&format!("t{i}"))).collect::<Vec<_>>();
        add_one(&index, "first", vector(1, 8), "add");
        let before = file_len(&index);

        // Stops after two batches: the reader failed (it raises its own error).
        let (sender, _spare, writer) = start(&index, docs(), Some(8));
        sender.send(rows(0..256, 8)).expect("send");
        sender.send(rows(256..512, 8)).expect("send");
        std::thread::sleep(Duration::from_millis(20));
        drop(sender);
        let err = writer
            .join()
            .expect("writer")
            .expect_err("a stopped reader");
        assert!(err.to_string().contains("nothing was stored"), "{err}");
        assert_eq!(file_len(&index), before);
        assert_eq!(index.len().expect("len"), 1);

        // Every row sent, but the reader counted more (a longer list than documents).
        let (sender, spare, writer) = start(&index, docs(), Some(8));
        sender.send(rows(0..600, 8)).expect("send");
        drop(spare);
        sender.send(Arrival::End { rows: 601 }).expect("send");
        let err = writer.join().expect("writer").expect_err("a miscount");
        assert!(
            err.to_string().contains("600 documents but 601 embeddings"),
            "{err}"
        );
        assert_eq!(file_len(&index), before);

        // A bad vector in a row that is a duplicate fails the call all the same.
        let mut dup = docs();
        dup[599] = doc("first");
        let (sender, spare, writer) = start(&index, dup, Some(8));
        let mut batch: Vec<Embedding> = (0..600).map(|i| vector(i, 8).into()).collect();
        batch[599] = vec![0.0; 8].into();
        sender.send(Arrival::Rows(batch)).expect("send");
        drop(spare);
        let _ = sender.send(Arrival::End { rows: 600 });
        let err = writer.join().expect("writer").expect_err("a zero vector");
        assert!(
            err.to_string().contains("embedding 599 is a zero vector"),
            "{err}"
        );
        assert_eq!(file_len(&index), before);

        // Vectors of another width than the store's.
        let (sender, _spare, writer) = start(&index, docs(), Some(9));
        let _ = sender.send(rows(0..600, 9));
        let err = writer
            .join()
            .expect("writer")
            .expect_err("a width mismatch");
        assert!(err.to_string().contains("the index stores 8"), "{err}");

        let reopened = LocalIndex::open(dir.path(), "s", true).expect("reopen");
        assert_eq!(reopened.len().expect("len"), 1);
        let (sender, spare, writer) = start(&index, docs(), Some(8));
        sender.send(rows(0..600, 8)).expect("send");
        drop(spare);
        sender.send(Arrival::End { rows: 600 }).expect("send");
        assert_eq!(writer.join().expect("writer").expect("add"), 600);
        assert_eq!(reopened.len().expect("len"), 601);
    }

    #[test]
    fn a_search_while_rows_are_arriving_answers_from_what_was_acknowledged() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = Arc::new(LocalIndex::open(dir.path(), "s", false).expect("open"));
        let dims = 100_000; // rows of 400 KB: the first ones reach the file at once
        add_one(&index, "old", vector(1, dims), "add");
        let docs = (0..10).map(|i| doc(&i.to_string())).collect();
        let (sender, spare, writer) = start(&index, docs, None);
        let acknowledged = file_len(&index);
        sender.send(rows(0..6, dims)).expect("send");
        // The writer has written part of its record and holds its locks, waiting for rows.
        let mut waited = 0;
        while file_len(&index) == acknowledged {
            assert!(waited < 1000, "the writer never wrote");
            std::thread::sleep(Duration::from_millis(2));
            waited += 1;
        }
        // A search does not wait for it (it would wait forever: the rows come from this
        // thread) and sees only acknowledged rows.
        let query = vector(1, dims);
        assert_eq!(
            index.search(&query, 5, None, false).expect("search").len(),
            1
        );
        assert_eq!(index.len().expect("len"), 1);
        sender.send(rows(6..10, dims)).expect("send");
        drop(spare);
        sender.send(Arrival::End { rows: 10 }).expect("send");
        assert_eq!(writer.join().expect("writer").expect("add"), 10);
        assert_eq!(
            index.search(&query, 5, None, false).expect("search").len(),
            5
        );
        assert_eq!(index.len().expect("len"), 11);
    }

    #[test]
    fn every_row_a_duplicate_still_has_its_width_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = Arc::new(LocalIndex::open(dir.path(), "s", false).expect("open"));
        add_one(&index, "only", vector(1, 8), "add");
        let (sender, _spare, writer) = start(&index, vec![doc("only")], Some(5));
        let _ = sender.send(rows(0..1, 5));
        let err = writer
            .join()
            .expect("writer")
            .expect_err("a width mismatch");
        assert!(err.to_string().contains("the index stores 8"), "{err}");
    }

    #[test]
    fn a_failed_first_add_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = Arc::new(LocalIndex::open(dir.path(), "new", false).expect("open"));
        let docs = (0..600).map(|i| doc(&i.to_string())).collect();
        let (sender, _spare, writer) = start(&index, docs, None);
        sender.send(rows(0..512, 8)).expect("send");
        drop(sender);
        assert!(writer.join().expect("writer").is_err());
        assert!(
            !index.path().exists(),
            "the file the failed add created is gone"
        );
        assert!(matches!(
            LocalIndex::open(dir.path(), "new", true),
            Err(Error::VectorNotFound { .. })
        ));
    }

    #[test]
    fn told_that_python_code_runs_the_writer_lets_go_of_the_locks_and_still_adds() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = Arc::new(LocalIndex::open(dir.path(), "s", false).expect("open"));
        let dims = 100_000; // rows of 400 KB: the first ones reach the file at once
        let docs = (0..8).map(|i| doc(&i.to_string())).collect();
        let (sender, spare, writer) = start(&index, docs, None);
        sender.send(rows(0..4, dims)).expect("send");
        let mut waited = 0;
        while file_len(&index) == 0 {
            assert!(waited < 1000, "the writer never wrote");
            std::thread::sleep(Duration::from_millis(2));
            waited += 1;
        }
        sender.send(Arrival::Slow).expect("send");
        // What the Python code may do meanwhile: write to the index from another instance
        // (another process, as far as the file lock knows). It would wait forever for a
        // writer that kept its locks.
        let other = LocalIndex::open(dir.path(), "s", false).expect("open");
        assert_eq!(
            add_one(&other, "meanwhile", vector(9, dims), "add meanwhile"),
            1
        );
        sender.send(rows(4..8, dims)).expect("send");
        drop(spare);
        sender.send(Arrival::End { rows: 8 }).expect("send");
        assert_eq!(writer.join().expect("writer").expect("add"), 8);
        let reopened = LocalIndex::open(dir.path(), "s", true).expect("reopen");
        assert_eq!(reopened.len().expect("len"), 9);
        assert_eq!(index.len().expect("len"), 9);
    }

    /// Run by [`a_kill_9_in_the_middle_of_a_streamed_record_leaves_a_torn_tail`] in a child
    /// process: acknowledges one row, streams part of an add, says how far and waits.
    #[test]
    #[ignore = "the child half of a kill -9 test; does nothing run alone"]
    fn streaming_child_that_waits_to_be_killed() {
        use std::io::Write;
        let Some(dir) = std::env::var_os("GKP_STREAMING_CHILD_DIR") else {
            return;
        };
        let index = Arc::new(LocalIndex::open(dir.as_ref(), "killed", false).expect("open"));
        add_one(&index, "acknowledged", vector(1, 384), "add");
        let acknowledged = file_len(&index);
        let docs = (0..3000).map(|i| doc(&i.to_string())).collect();
        let (sender, _spare, _writer) = start(&index, docs, Some(384));
        sender.send(rows(0..2000, 384)).expect("send");
        let mut waited = 0;
        while file_len(&index) < acknowledged + 2_000_000 {
            assert!(waited < 15_000, "the writer never wrote"); // the parent then fails
            std::thread::sleep(Duration::from_millis(2));
            waited += 1;
        }
        writeln!(std::io::stdout(), "streaming {acknowledged}").expect("stdout");
        std::io::stdout().flush().expect("stdout");
        std::thread::sleep(Duration::from_secs(600));
    }

    #[test]
    fn a_kill_9_in_the_middle_of_a_streamed_record_leaves_a_torn_tail() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().expect("tmp");
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "vectorstore::local::streamed::tests::streaming_child_that_waits_to_be_killed",
                "--ignored",
                "--nocapture",
                "--quiet",
            ])
            .env("GKP_STREAMING_CHILD_DIR", dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("stdout");
        let acknowledged: u64 = std::io::BufReader::new(stdout)
            .lines()
            .map_while(std::result::Result::ok)
            .find_map(|line| line.strip_prefix("streaming ")?.parse().ok())
            .expect("the child streams");
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        child.wait().expect("wait");
        let path = dir.path().join("killed.gkvec");
        let torn = fs::metadata(&path).expect("file").len();
        assert!(torn > acknowledged + 2_000_000, "a partial record on disk");
        let index = LocalIndex::open(dir.path(), "killed", true).expect("a torn tail opens");
        assert_eq!(index.len().expect("len"), 1);
        add_one(&index, "after", vector(2, 384), "add after the crash");
        assert!(
            fs::metadata(&path).expect("file").len() < torn,
            "the tail was cut off"
        );
        let reopened = LocalIndex::open(dir.path(), "killed", true).expect("reopen");
        assert_eq!(reopened.len().expect("len"), 2);
    }
}
