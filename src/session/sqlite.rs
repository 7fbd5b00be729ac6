//! The SQLite store (the embedded default): WAL mode, one row per message.
//!
//! A chat turn inserts only its new messages in one `BEGIN IMMEDIATE` transaction, so its
//! cost does not grow with the history, and writers in several processes take turns through
//! SQLite's own locking (with a busy timeout) instead of overwriting each other.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::value::RawValue;

use super::data::{RawMessage, SessionData};
use super::store::{
    Commit, Committed, SessionStore, StateWrite, ThreadWriteKind, check_local_commit, merge_state,
    stored_version, writes_anything,
};
use crate::errors::{Error, Result};

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS genkit_sessions (
    id      TEXT PRIMARY KEY NOT NULL,
    state   TEXT,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS genkit_session_threads (
    session_id TEXT NOT NULL,
    thread     TEXT NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (session_id, thread)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS genkit_session_messages (
    session_id TEXT NOT NULL,
    thread     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    message    TEXT NOT NULL,
    PRIMARY KEY (session_id, thread, seq)
) WITHOUT ROWID;
";

pub struct SqliteStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    ///
    /// `durable` selects `synchronous=FULL` (power-loss safe) over `NORMAL` (an acknowledged
    /// write survives the process being killed).
    pub fn open(path: impl Into<PathBuf>, durable: bool) -> Result<Self> {
        let path = path.into();
        let open_err = |e: rusqlite::Error| Error::Open {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::Open {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
        }
        let connection = Connection::open(&path).map_err(open_err)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // journal_mode returns a row, so it is queried rather than executed.
        let mode: String = retry_while_busy(|| {
            connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        })
        .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Open {
                path: path.display().to_string(),
                detail: format!("cannot switch to WAL mode (got {mode})"),
            });
        }
        let synchronous = if durable { "FULL" } else { "NORMAL" };
        connection
            .execute_batch(&format!("PRAGMA synchronous={synchronous};"))
            .map_err(open_err)?;
        retry_while_busy(|| connection.execute_batch(SCHEMA)).map_err(open_err)?;
        retry_while_busy(|| add_version_column(&connection)).map_err(open_err)?;
        Ok(SqliteStore {
            path,
            connection: Mutex::new(connection),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // rusqlite leaves the connection usable after a panic elsewhere; an open transaction
        // is rolled back when its guard drops.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `work` in a `BEGIN IMMEDIATE` transaction and commits it.
    fn write<T>(
        &self,
        session_id: &str,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.write_checked(session_id, |tx| {
            work(tx).map_err(|e| Error::storage(session_id, e))
        })
    }

    /// [`Self::write`] for work that can also refuse (a conflict): an error rolls it back.
    fn write_checked<T>(
        &self,
        session_id: &str,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut connection = self.connection();
        let db_err = |e: rusqlite::Error| Error::storage(session_id, e);
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let value = work(&tx)?;
        tx.commit().map_err(db_err)?;
        Ok(value)
    }
}

/// Runs a step of opening the database again while another process holds a lock SQLite
/// does not wait for (switching a new file to WAL mode while another process does the
/// same gives `database is locked` at once, whatever the busy timeout), for up to
/// [`BUSY_TIMEOUT`].
fn retry_while_busy<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match step() {
            Err(rusqlite::Error::SqliteFailure(error, _))
                if matches!(
                    error.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Databases made before sessions had versions get the column (every session at 0), once,
/// safely when several processes open the file at the same time.
fn add_version_column(connection: &Connection) -> rusqlite::Result<()> {
    let has_version = |c: &Connection| {
        c.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('genkit_sessions') WHERE name = 'version'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    if has_version(connection)? {
        return Ok(());
    }
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let added = (|| {
        if !has_version(connection)? {
            connection.execute_batch(
                "ALTER TABLE genkit_sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        Ok(())
    })();
    connection.execute_batch(if added.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    added
}

/// The session's version, `None` for a session not stored.
fn stored_row_version(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached("SELECT version FROM genkit_sessions WHERE id = ?1")?
        .query_row(params![session_id], |row| row.get(0))
        .optional()
}

/// Counts one more version of a session about to be written, creating its row if missing;
/// returns the new version. A refused commit rolls it back with everything else.
fn next_version(tx: &rusqlite::Transaction<'_>, session_id: &str) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO genkit_sessions (id, state, version) VALUES (?1, NULL, 1)
         ON CONFLICT (id) DO UPDATE SET version = version + 1 RETURNING version",
    )?
    .query_row(params![session_id], |row| row.get(0))
}

fn ensure_thread(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
    thread: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO genkit_session_threads (session_id, thread, position)
         VALUES (?1, ?2, (SELECT COALESCE(MAX(position) + 1, 0)
                          FROM genkit_session_threads WHERE session_id = ?1))",
    )?
    .execute(params![session_id, thread])?;
    Ok(())
}

fn insert_messages(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
    thread: &str,
    first_seq: i64,
    messages: &[RawMessage],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO genkit_session_messages (session_id, thread, seq, message)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (seq, message) in (first_seq..).zip(messages) {
        insert.execute(params![session_id, thread, seq, message.get()])?;
    }
    Ok(())
}

fn delete_thread_messages(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
    thread: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM genkit_session_messages WHERE session_id = ?1 AND thread = ?2",
        params![session_id, thread],
    )?;
    Ok(())
}

/// A thread's length. Messages are numbered from 0 with no gaps, so it is the next number,
/// read off the key's index (a count would visit every row).
fn thread_len(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
    thread: &str,
) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "SELECT COALESCE(MAX(seq) + 1, 0) FROM genkit_session_messages
         WHERE session_id = ?1 AND thread = ?2",
    )?
    .query_row(params![session_id, thread], |row| row.get(0))
}

// `append_messages` and `replace_messages` run inside `SqliteStore::apply`, after
// `next_version` made sure the session's row exists.
fn append_messages(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
    thread: &str,
    messages: &[RawMessage],
) -> rusqlite::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    ensure_thread(tx, session_id, thread)?;
    let next = thread_len(tx, session_id, thread)?;
    insert_messages(tx, session_id, thread, next, messages)
}

fn replace_messages(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
    thread: &str,
    messages: &[RawMessage],
) -> rusqlite::Result<()> {
    ensure_thread(tx, session_id, thread)?;
    delete_thread_messages(tx, session_id, thread)?;
    insert_messages(tx, session_id, thread, 0, messages)
}

fn write_state(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
    state: Option<&RawValue>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO genkit_sessions (id, state) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state",
    )?
    .execute(params![session_id, state.map(RawValue::get)])?;
    Ok(())
}

fn stored_state(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
) -> rusqlite::Result<Option<String>> {
    Ok(tx
        .prepare_cached("SELECT state FROM genkit_sessions WHERE id = ?1")?
        .query_row(params![session_id], |row| row.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

fn parse_stored(
    session_id: &str,
    location: impl FnOnce() -> String,
    text: String,
) -> Result<Box<RawValue>> {
    RawValue::from_string(text).map_err(|e| Error::corrupt(session_id, location(), e))
}

impl SessionStore for SqliteStore {
    fn load(&self, session_id: &str) -> Result<Option<SessionData>> {
        Ok(self.load_versioned(session_id)?.map(|(data, _)| data))
    }

    fn load_versioned(&self, session_id: &str) -> Result<Option<(SessionData, u64)>> {
        let connection = self.connection();
        let db_err = |e: rusqlite::Error| Error::storage(session_id, e);
        // One read transaction, so a concurrent writer cannot be seen half-way.
        let tx = connection.unchecked_transaction().map_err(db_err)?;
        let row: Option<(Option<String>, i64)> = tx
            .query_row(
                "SELECT state, version FROM genkit_sessions WHERE id = ?1",
                params![session_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(db_err)?;
        let Some((state, version)) = row else {
            return Ok(None);
        };
        let version = stored_version(session_id, "version", version)?;
        let mut data = SessionData::empty(session_id);
        data.state = state
            .map(|text| parse_stored(session_id, || "state".into(), text))
            .transpose()?;
        let mut rows = tx
            .prepare(
                "SELECT t.thread, m.seq, m.message
                 FROM genkit_session_threads t
                 LEFT JOIN genkit_session_messages m
                   ON m.session_id = t.session_id AND m.thread = t.thread
                 WHERE t.session_id = ?1
                 ORDER BY t.position, m.seq",
            )
            .map_err(db_err)?;
        let mut cursor = rows.query(params![session_id]).map_err(db_err)?;
        while let Some(row) = cursor.next().map_err(db_err)? {
            let thread: String = row.get(0).map_err(db_err)?;
            let seq: Option<i64> = row.get(1).map_err(db_err)?;
            let message: Option<String> = row.get(2).map_err(db_err)?;
            let slot = data.threads.entry(thread.clone()).or_default();
            if let (Some(seq), Some(text)) = (seq, message) {
                let location = || format!("thread {thread:?} message {seq}");
                slot.push(parse_stored(session_id, location, text)?);
            }
        }
        Ok(Some((data, version)))
    }

    fn save(&self, data: &SessionData) -> Result<u64> {
        self.write(&data.id, |tx| {
            let id = data.id.as_str();
            tx.execute(
                "DELETE FROM genkit_session_messages WHERE session_id = ?1",
                params![id],
            )?;
            tx.execute(
                "DELETE FROM genkit_session_threads WHERE session_id = ?1",
                params![id],
            )?;
            let version = next_version(tx, id)?;
            write_state(tx, id, data.state.as_deref())?;
            for (thread, messages) in &data.threads {
                ensure_thread(tx, id, thread)?;
                insert_messages(tx, id, thread, 0, messages)?;
            }
            Ok(version)
        })
        .and_then(|version| stored_version(&data.id, "version", version))
    }

    fn force(&self, session_id: &str, commit: &Commit) -> Result<()> {
        self.apply(session_id, commit, false).map(drop)
    }

    fn commit(&self, session_id: &str, commit: &Commit) -> Result<Committed> {
        self.apply(session_id, commit, true)
    }

    fn delete(&self, session_id: &str) -> Result<bool> {
        self.write(session_id, |tx| {
            tx.execute(
                "DELETE FROM genkit_session_messages WHERE session_id = ?1",
                params![session_id],
            )?;
            tx.execute(
                "DELETE FROM genkit_session_threads WHERE session_id = ?1",
                params![session_id],
            )?;
            let removed = tx.execute(
                "DELETE FROM genkit_sessions WHERE id = ?1",
                params![session_id],
            )?;
            Ok(removed > 0)
        })
    }
}

impl SqliteStore {
    /// Applies a commit in one transaction; `check`: the rules of [`check_local_commit`].
    fn apply(&self, session_id: &str, commit: &Commit, check: bool) -> Result<Committed> {
        let db_err = |e: rusqlite::Error| Error::storage(session_id, e);
        self.write_checked(session_id, |tx| {
            // One statement reads the version and counts the next (a commit that writes
            // nothing only reads it, and creates no session).
            let writes = writes_anything(commit);
            let next = if writes {
                Some(stored_version(
                    session_id,
                    "version",
                    next_version(tx, session_id).map_err(db_err)?,
                )?)
            } else {
                None
            };
            let version = match next {
                // A stored -1 counts up to 0: negative, as `stored_version` would say.
                Some(next) => next.checked_sub(1).ok_or_else(|| {
                    Error::corrupt(session_id, "version", "version -1 is negative")
                })?,
                None => stored_row_version(tx, session_id)
                    .map_err(db_err)?
                    .map_or(Ok(0), |v| stored_version(session_id, "version", v))?,
            };
            let stale = check
                && check_local_commit(session_id, commit, version, |thread| {
                    let len = thread_len(tx, session_id, thread).map_err(db_err)?;
                    Ok(usize::try_from(len).unwrap_or(usize::MAX))
                })?;
            let mut done = Committed {
                version,
                ..Committed::default()
            };
            for delta in &commit.threads {
                let unseen = if stale && delta.kind == ThreadWriteKind::Append {
                    messages_from(tx, session_id, &delta.thread, delta.loaded_len)?
                } else {
                    Vec::new()
                };
                done.threads.push((delta.thread.clone(), unseen));
            }
            let Some(next) = next else {
                return Ok(done);
            };
            for delta in &commit.threads {
                match delta.kind {
                    ThreadWriteKind::Append => {
                        append_messages(tx, session_id, &delta.thread, &delta.messages)
                    }
                    ThreadWriteKind::Replace => {
                        replace_messages(tx, session_id, &delta.thread, &delta.messages)
                    }
                }
                .map_err(db_err)?;
            }
            match &commit.state {
                StateWrite::Keep => {}
                StateWrite::Replace(state) => {
                    write_state(tx, session_id, state.as_deref()).map_err(db_err)?;
                    done.state = state.clone();
                }
                // Read and written in this transaction: another process's keys stay.
                StateWrite::Merge(patch) => {
                    let current = stored_state(tx, session_id)
                        .map_err(db_err)?
                        .map(|text| parse_stored(session_id, || "state".into(), text))
                        .transpose()?;
                    let merged = merge_state(session_id, current.as_deref(), patch)?;
                    write_state(tx, session_id, Some(&merged)).map_err(db_err)?;
                    done.state = Some(merged);
                }
            }
            done.version = next;
            Ok(done)
        })
    }
}

/// A thread's stored messages from position `from` on (what a stale writer had not seen).
fn messages_from(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
    thread: &str,
    from: usize,
) -> Result<Vec<RawMessage>> {
    let db_err = |e: rusqlite::Error| Error::storage(session_id, e);
    let mut rows = tx
        .prepare_cached(
            "SELECT seq, message FROM genkit_session_messages
             WHERE session_id = ?1 AND thread = ?2 AND seq >= ?3 ORDER BY seq",
        )
        .map_err(db_err)?;
    let mut cursor = rows
        .query(params![
            session_id,
            thread,
            i64::try_from(from).unwrap_or(i64::MAX)
        ])
        .map_err(db_err)?;
    let mut messages = Vec::new();
    while let Some(row) = cursor.next().map_err(db_err)? {
        let seq: i64 = row.get(0).map_err(db_err)?;
        let text: String = row.get(1).map_err(db_err)?;
        let location = || format!("thread {thread:?} message {seq}");
        messages.push(parse_stored(session_id, location, text)?);
    }
    Ok(messages)
}
