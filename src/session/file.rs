//! The file store: one append-only JSON-lines log per session.
//!
//! Layout under the store's directory, per session:
//! - `<name>.jsonl`: the log. Its first record is a snapshot carrying the session id; each
//!   later record is an `append`, `thread` (replace), `state` (replace) or `merge` (state
//!   keys set, so a writer need not read the state to update it), or a new snapshot.
//! - `<name>.lock`: an advisory lock file, so writers in several processes take turns.
//!
//! Every record carries `v`, the session's version after it (one more per commit; a record
//! without it, from a log older than versions, is one more than the record before).
//!
//! A chat turn appends one line holding only its new messages: its cost does not grow with
//! the history. Whole rewrites (`save`, compaction) go to a temp file that is renamed over
//! the log, so a crash leaves either the old or the new log, never a mix.
//!
//! A crash in the middle of an append leaves an unterminated last line. Readers ignore it
//! (that write was never acknowledged) and the next writer cuts it off before appending.
//! Any other unreadable line is corruption and is reported, never skipped.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::data::{RawMessage, SessionData, Threads};
use super::store::{
    Commit, Committed, SessionStore, StateWrite, ThreadWriteKind, check_local_commit, merge_state,
    unseen_messages, writes_anything,
};
use crate::errors::{Error, Result};

/// After this many records that supersede earlier ones (state changes, thread rewrites),
/// the log is compacted into a single snapshot.
const COMPACT_AFTER_SUPERSEDING: u32 = 32;

/// How many sessions' logs a store remembers as it last saw them (see `FileStore::seen`).
const SEEN_SESSIONS_MAX: usize = 4096;

pub struct FileStore {
    directory: PathBuf,
    durable: bool,
    /// Superseding records written per session since its last compaction, by this process.
    superseded: Mutex<HashMap<String, u32>>,
    /// Per session, the log as this process last read or wrote it, and its version then:
    /// while the file is unchanged, a commit need not read the log to know the version.
    seen: Mutex<HashMap<String, Seen>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Op {
    Snapshot,
    Append,
    Thread,
    State,
    Merge,
}

/// One log line as written (borrows, so writing copies nothing).
#[derive(Serialize)]
struct RecordOut<'a> {
    op: Op,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<&'a [RawMessage]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<&'a Threads>,
}

/// One log line as read.
#[derive(Deserialize)]
struct RecordIn {
    op: Op,
    v: Option<u64>,
    id: Option<String>,
    thread: Option<String>,
    messages: Option<Vec<RawMessage>>,
    state: Option<Box<RawValue>>,
    threads: Option<Threads>,
}

impl<'a> RecordOut<'a> {
    fn snapshot(data: &'a SessionData, version: u64) -> Self {
        RecordOut {
            op: Op::Snapshot,
            v: Some(version),
            id: Some(&data.id),
            thread: None,
            messages: None,
            state: data.state.as_deref(),
            threads: Some(&data.threads),
        }
    }

    fn messages(op: Op, thread: &'a str, messages: &'a [RawMessage]) -> Self {
        RecordOut {
            op,
            v: None,
            id: None,
            thread: Some(thread),
            messages: Some(messages),
            state: None,
            threads: None,
        }
    }

    fn state(op: Op, state: Option<&'a RawValue>) -> Self {
        RecordOut {
            op,
            v: None,
            id: None,
            thread: None,
            messages: None,
            state,
            threads: None,
        }
    }

    fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self)
            .unwrap_or_else(|_| unreachable!("records hold only strings and raw JSON"));
        line.push(b'\n');
        line
    }
}

/// What reading a log found.
struct Replay {
    data: SessionData,
    version: u64,
    superseding: u32,
}

/// A log file as it was: any write by another process changes it (an append its length and
/// time, a rewrite its inode too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileIdentity {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    inode: u64,
}

impl FileIdentity {
    fn of(metadata: &fs::Metadata) -> Self {
        FileIdentity {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(metadata),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Seen {
    file: FileIdentity,
    version: u64,
}

/// Just the version of a log line (the rest of it skipped).
#[derive(Deserialize)]
struct VersionOnly {
    v: Option<u64>,
}

impl FileStore {
    /// Opens (creating if needed) a store in `directory`.
    ///
    /// With `durable`, every write is fsynced before it is acknowledged (power-loss safe);
    /// without it, an acknowledged write survives the process being killed, as SQLite's
    /// WAL mode with `synchronous=NORMAL` does.
    pub fn open(directory: impl Into<PathBuf>, durable: bool) -> Result<Self> {
        let directory = directory.into();
        fs::create_dir_all(&directory).map_err(|e| Error::Open {
            path: directory.display().to_string(),
            detail: e.to_string(),
        })?;
        if !directory.is_dir() {
            return Err(Error::Open {
                path: directory.display().to_string(),
                detail: "not a directory".into(),
            });
        }
        Ok(FileStore {
            directory,
            durable,
            superseded: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
        })
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The log's path for a session. Plain ids are used as they are; anything else (long,
    /// unusual characters, case-sensitivity traps) is named by its SHA-256, and the id
    /// inside the log's first record tells which session it is.
    pub fn log_path(&self, session_id: &str) -> PathBuf {
        self.directory
            .join(format!("{}.jsonl", file_stem(session_id)))
    }

    fn lock_path(&self, session_id: &str) -> PathBuf {
        self.directory
            .join(format!("{}.lock", file_stem(session_id)))
    }

    /// Runs `work` holding the session's cross-process lock.
    fn locked<T>(&self, session_id: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path(session_id))
            .map_err(|e| Error::storage(session_id, format!("cannot open lock file: {e}")))?;
        lock.lock()
            .map_err(|e| Error::storage(session_id, format!("cannot take lock: {e}")))?;
        let result = work();
        // Dropping `lock` closes the file, which releases the lock.
        drop(lock);
        result
    }

    fn replay(&self, session_id: &str) -> Result<Option<Replay>> {
        let path = self.log_path(session_id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::storage(session_id, format!("cannot read log: {e}"))),
        };
        replay_log(session_id, &bytes)
    }

    /// Appends records in one write, creating the log (headed by an empty snapshot) when
    /// missing.
    fn append_records(&self, session_id: &str, records: &[RecordOut<'_>]) -> Result<FileIdentity> {
        let mut file = self.open_log(session_id, true)?.ok_or_else(|| {
            Error::storage(
                session_id,
                "cannot create its log: the store's directory is gone",
            )
        })?;
        self.append_to(session_id, &mut file, records)
    }

    /// The session's log opened to read and append (`create`: made when missing), or `None`.
    fn open_log(&self, session_id: &str, create: bool) -> Result<Option<File>> {
        match OpenOptions::new()
            .create(create)
            .read(true)
            .append(true)
            .open(self.log_path(session_id))
        {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::storage(session_id, format!("cannot open log: {e}"))),
        }
    }

    /// [`Self::append_records`] to a log already open; returns the file as left.
    fn append_to(
        &self,
        session_id: &str,
        file: &mut File,
        records: &[RecordOut<'_>],
    ) -> Result<FileIdentity> {
        let io_err = |e: std::io::Error| Error::storage(session_id, format!("cannot append: {e}"));
        let len = file.metadata().map_err(io_err)?.len();
        let len = cut_torn_tail(file, len).map_err(io_err)?;
        let mut buffer = Vec::new();
        if len == 0 {
            buffer.extend(RecordOut::snapshot(&SessionData::empty(session_id), 0).to_line());
        }
        for record in records {
            buffer.extend(record.to_line());
        }
        file.write_all(&buffer).map_err(io_err)?;
        if self.durable {
            file.sync_data().map_err(io_err)?;
        }
        Ok(FileIdentity::of(&file.metadata().map_err(io_err)?))
    }

    /// Replaces the log with a single snapshot at `version`, atomically.
    fn rewrite(&self, data: &SessionData, version: u64) -> Result<()> {
        let path = self.log_path(&data.id);
        let temp = path.with_extension("jsonl.tmp");
        let io_err =
            |e: std::io::Error| Error::storage(&data.id, format!("cannot rewrite log: {e}"));
        {
            let mut file = File::create(&temp).map_err(io_err)?;
            file.write_all(&RecordOut::snapshot(data, version).to_line())
                .map_err(io_err)?;
            if self.durable {
                file.sync_all().map_err(io_err)?;
            }
        }
        fs::rename(&temp, &path).map_err(io_err)?;
        if self.durable {
            File::open(&self.directory)
                .and_then(|dir| dir.sync_all())
                .map_err(io_err)?;
        }
        self.reset_superseded(&data.id);
        self.remember(&data.id, &path, version)
    }

    /// Notes the log at `path` as holding `version` (call with the lock held, after a read
    /// or write of it).
    fn remember(&self, session_id: &str, path: &Path, version: u64) -> Result<()> {
        let metadata = fs::metadata(path)
            .map_err(|e| Error::storage(session_id, format!("cannot read log: {e}")))?;
        self.note_seen(session_id, FileIdentity::of(&metadata), version);
        Ok(())
    }

    fn note_seen(&self, session_id: &str, file: FileIdentity, version: u64) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= SEEN_SESSIONS_MAX && !seen.contains_key(session_id) {
            seen.clear(); // forgetting costs one read of each log's last line, nothing more
        }
        seen.insert(session_id.to_owned(), Seen { file, version });
    }

    fn reset_superseded(&self, session_id: &str) {
        self.superseded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(session_id);
    }

    /// Rewrites the log as one snapshot. Call with the lock held.
    fn compact_locked(&self, session_id: &str) -> Result<()> {
        if let Some(replay) = self.replay(session_id)? {
            self.rewrite(&replay.data, replay.version)?;
        }
        Ok(())
    }

    /// Compacts a session's log now (also done automatically).
    pub fn compact(&self, session_id: &str) -> Result<()> {
        self.locked(session_id, || self.compact_locked(session_id))
    }

    /// The session's version (`0`: not stored), from the log's last complete line; a log
    /// older than versions is replayed. Call with the lock held.
    fn current_version(&self, session_id: &str) -> Result<u64> {
        match self.open_log(session_id, false)? {
            Some(mut file) => self.version_in(session_id, &mut file),
            None => Ok(0),
        }
    }

    /// [`Self::current_version`] of a log already open.
    fn version_in(&self, session_id: &str, file: &mut File) -> Result<u64> {
        let io_err =
            |e: std::io::Error| Error::storage(session_id, format!("cannot read log: {e}"));
        let identity = FileIdentity::of(&file.metadata().map_err(io_err)?);
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(session_id)
            .copied();
        if let Some(seen) = seen.filter(|seen| seen.file == identity) {
            return Ok(seen.version); // nobody else wrote since
        }
        let Some(line) = last_complete_line(file, identity.len).map_err(io_err)? else {
            return Ok(0);
        };
        let read: VersionOnly = serde_json::from_slice(&line)
            .map_err(|e| Error::corrupt(session_id, "last log line", e))?;
        let version = match read.v {
            Some(version) => version,
            None => self.replay(session_id)?.map_or(0, |replay| replay.version),
        };
        self.note_seen(session_id, identity, version);
        Ok(version)
    }

    /// Counts `superseding` new records (state changes, thread rewrites written by this
    /// process since the last compaction); compacts when they have piled up. Call with the
    /// lock held.
    fn compact_if_due(&self, session_id: &str, superseding: u32) -> Result<()> {
        if superseding == 0 {
            return Ok(());
        }
        let due = {
            let mut counts = self
                .superseded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = counts.entry(session_id.to_owned()).or_insert(0);
            *count += superseding;
            *count >= COMPACT_AFTER_SUPERSEDING
        };
        if due {
            self.compact_locked(session_id)?;
        }
        Ok(())
    }

    /// Writes a commit's records in one write under the session's lock; `check`: the rules
    /// of [`check_local_commit`]. Only a stale commit reads the log (for what its writer
    /// had not seen); a state patch goes in as a `merge` record, applied on replay over
    /// whatever another process wrote.
    fn apply(&self, session_id: &str, commit: &Commit, check: bool) -> Result<Committed> {
        if let StateWrite::Merge(patch) = &commit.state {
            // Refused now rather than at every later replay.
            merge_state(session_id, None, patch)?;
        }
        self.locked(session_id, || {
            // Opened once: to learn the version, then to append (a turn touches it once).
            let mut log = self.open_log(session_id, false)?;
            let version = match &mut log {
                Some(file) => self.version_in(session_id, file)?,
                None => 0,
            };
            // A stale writer's commit is checked against, and told, what the log holds.
            let stale = check && version != commit.expected_version;
            let data = if stale {
                self.replay(session_id)?.map(|replay| replay.data)
            } else {
                None
            };
            if stale {
                let thread = |name: &str| data.as_ref().and_then(|d| d.threads.get(name));
                check_local_commit(session_id, commit, version, |name| {
                    Ok(thread(name).map_or(0, Vec::len))
                })?;
            }
            let mut done = Committed {
                version,
                threads: unseen_messages(commit, stale, |name| {
                    data.as_ref()
                        .and_then(|d| d.threads.get(name))
                        .map(Vec::as_slice)
                }),
                ..Committed::default()
            };
            if !writes_anything(commit) {
                return Ok(done);
            }
            let next = version + 1;
            let mut records = Vec::new();
            let mut superseding = 0u32;
            for delta in commit.threads.iter().filter(|d| !d.appends_nothing()) {
                let op = match delta.kind {
                    ThreadWriteKind::Append => Op::Append,
                    ThreadWriteKind::Replace => {
                        superseding += 1;
                        Op::Thread
                    }
                };
                records.push(RecordOut::messages(op, &delta.thread, &delta.messages));
            }
            match &commit.state {
                StateWrite::Keep => {}
                StateWrite::Replace(state) => {
                    records.push(RecordOut::state(Op::State, state.as_deref()));
                    done.state = state.clone();
                }
                StateWrite::Merge(patch) => {
                    records.push(RecordOut::state(Op::Merge, Some(patch)));
                    // The merged state is known when the log was read anyway; else the
                    // writer's copy was current and it merges the patch itself.
                    if let Some(data) = &data {
                        done.state = Some(merge_state(session_id, data.state.as_deref(), patch)?);
                    }
                }
            }
            superseding += u32::from(!matches!(commit.state, StateWrite::Keep));
            for record in &mut records {
                record.v = Some(next);
            }
            let written = match &mut log {
                Some(file) => self.append_to(session_id, file, &records)?,
                None => self.append_records(session_id, &records)?,
            };
            self.note_seen(session_id, written, next);
            self.compact_if_due(session_id, superseding)?;
            done.version = next;
            Ok(done)
        })
    }
}

impl SessionStore for FileStore {
    fn load(&self, session_id: &str) -> Result<Option<SessionData>> {
        Ok(self.load_versioned(session_id)?.map(|(data, _)| data))
    }

    fn load_versioned(&self, session_id: &str) -> Result<Option<(SessionData, u64)>> {
        self.locked(session_id, || {
            let Some(replay) = self.replay(session_id)? else {
                return Ok(None);
            };
            if replay.superseding >= COMPACT_AFTER_SUPERSEDING {
                self.rewrite(&replay.data, replay.version)?;
            } else {
                self.remember(session_id, &self.log_path(session_id), replay.version)?;
            }
            Ok(Some((replay.data, replay.version)))
        })
    }

    fn save(&self, data: &SessionData) -> Result<u64> {
        self.locked(&data.id, || {
            let version = self.current_version(&data.id)? + 1;
            self.rewrite(data, version)?;
            Ok(version)
        })
    }

    fn force(&self, session_id: &str, commit: &Commit) -> Result<()> {
        self.apply(session_id, commit, false).map(drop)
    }

    fn commit(&self, session_id: &str, commit: &Commit) -> Result<Committed> {
        self.apply(session_id, commit, true)
    }

    fn delete(&self, session_id: &str) -> Result<bool> {
        self.locked(session_id, || {
            self.reset_superseded(session_id);
            self.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(session_id);
            match fs::remove_file(self.log_path(session_id)) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(Error::storage(session_id, format!("cannot delete: {e}"))),
            }
        })
    }
}

fn file_stem(session_id: &str) -> String {
    let plain = session_id.len() <= 100
        && session_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if plain {
        session_id.to_owned()
    } else {
        let digest = Sha256::digest(session_id.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("~{hex}")
    }
}

/// Truncates an unterminated last line left by a writer that died mid-append, returning
/// the log's length afterwards.
fn cut_torn_tail(file: &mut File, len: u64) -> std::io::Result<u64> {
    let kept = last_newline_before(file, len)?.map_or(0, |at| at + 1);
    if kept != len {
        file.set_len(kept)?;
    }
    Ok(kept)
}

/// The last line of a log that ends with a newline (an unterminated one after it is a
/// torn write, ignored), without it; `None` when no line is complete.
fn last_complete_line(file: &mut File, len: u64) -> std::io::Result<Option<Vec<u8>>> {
    let Some(end) = last_newline_before(file, len)? else {
        return Ok(None);
    };
    let start = last_newline_before(file, end)?.map_or(0, |at| at + 1);
    let mut line = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut line)?;
    Ok(Some(line))
}

/// The position of the last newline before `end`, scanning back a block at a time.
fn last_newline_before(file: &mut File, end: u64) -> std::io::Result<Option<u64>> {
    const BLOCK: u64 = 64 * 1024;
    let mut end = end;
    let mut buffer = vec![0u8; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut buffer[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(pos) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + pos as u64));
        }
        end = start;
    }
    Ok(None)
}

/// Rebuilds a session from its log; `None` when no complete record was ever written.
fn replay_log(session_id: &str, bytes: &[u8]) -> Result<Option<Replay>> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // The piece after the final newline is empty, or a torn write that was never acknowledged.
    lines.pop();
    if lines.is_empty() {
        return Ok(None);
    }
    let mut data: Option<SessionData> = None;
    let mut superseding = 0u32;
    let mut version = 0u64;
    for (index, line) in lines.iter().enumerate() {
        let location = || format!("log line {}", index + 1);
        let record: RecordIn =
            serde_json::from_slice(line).map_err(|e| Error::corrupt(session_id, location(), e))?;
        version = record.v.unwrap_or(version + 1);
        match (&mut data, record.op) {
            (None, Op::Snapshot) | (Some(_), Op::Snapshot) => {
                if data.is_some() {
                    superseding += 1;
                }
                let id = record.id.ok_or_else(|| {
                    Error::corrupt(session_id, location(), "snapshot record has no id")
                })?;
                if id != session_id {
                    return Err(Error::corrupt(
                        session_id,
                        location(),
                        format!("log belongs to session {id:?}"),
                    ));
                }
                data = Some(SessionData {
                    id,
                    state: record.state,
                    threads: record.threads.unwrap_or_default(),
                });
            }
            (None, _) => {
                return Err(Error::corrupt(
                    session_id,
                    location(),
                    "log does not start with a snapshot",
                ));
            }
            (Some(current), op @ (Op::Append | Op::Thread)) => {
                let (Some(thread), Some(messages)) = (record.thread, record.messages) else {
                    return Err(Error::corrupt(
                        session_id,
                        location(),
                        "message record lacks thread or messages",
                    ));
                };
                let slot = current.threads.entry(thread).or_default();
                if op == Op::Append {
                    slot.extend(messages);
                } else {
                    superseding += 1;
                    *slot = messages;
                }
            }
            (Some(current), Op::State) => {
                superseding += 1;
                current.state = record.state;
            }
            (Some(current), Op::Merge) => {
                superseding += 1;
                let patch = record.state.ok_or_else(|| {
                    Error::corrupt(session_id, location(), "merge record has no state")
                })?;
                let merged = merge_state(session_id, current.state.as_deref(), &patch)
                    .map_err(|e| Error::corrupt(session_id, location(), e))?;
                current.state = Some(merged);
            }
        }
    }
    let data =
        data.ok_or_else(|| Error::Internal("a non-empty log always yields a snapshot".into()))?;
    Ok(Some(Replay {
        data,
        version,
        superseding,
    }))
}
