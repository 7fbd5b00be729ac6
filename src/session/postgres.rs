//! The PostgreSQL session store: a row per session (version, state), a row per thread
//! (its order), a row per message keyed `(session_id, thread, seq)`, and a row per applied
//! turn id. Reads order by `seq` only, never by a timestamp.
//!
//! A commit is one short READ COMMITTED transaction: the session row is locked
//! (`FOR UPDATE`), the turn id and the version are checked, the messages go in with one
//! multi-row `INSERT`, and the version is bumped. The model call happens before, so the
//! lock is held for milliseconds. Connections, retries and errors are the engine layer's
//! (`engines::postgres`); a retried commit is deduplicated by its turn id.
//!
//! Messages and state are `json` columns: stored and returned byte for byte (a `jsonb`
//! column would reorder keys), still validated as JSON by the server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::OnceCell;
use tokio_postgres::IsolationLevel;

use super::data::{RawMessage, SessionData};
use super::store::{
    Commit, Committed, OnConflict, SessionStore, StateWrite, ThreadDelta, ThreadWriteKind,
    merge_state,
};
use crate::engines::block_on;
use crate::engines::postgres::{PgOptions, Postgres, Transaction, TxError};
use crate::errors::{Error, Result};

/// Serialises concurrent first starts' `CREATE ... IF NOT EXISTS` (any constant will do;
/// this one spells "gkps").
const SCHEMA_LOCK: i64 = 0x676b_7073;

pub struct PostgresStore {
    pg: Postgres,
    tables: Tables,
    ttl: Option<Duration>,
    on_conflict: OnConflict,
    schema: Arc<OnceCell<()>>,
}

/// The store's table names, from its prefix.
struct Tables {
    sessions: String,
    threads: String,
    messages: String,
    turns: String,
}

impl Tables {
    fn new(prefix: &str) -> Result<Self> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 40
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !prefix.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "table_prefix must be 1-40 characters of a-z, 0-9 and _, not starting with a digit; got {prefix:?}"
                ),
            });
        }
        Ok(Tables {
            sessions: format!("{prefix}sessions"),
            threads: format!("{prefix}session_threads"),
            messages: format!("{prefix}session_messages"),
            turns: format!("{prefix}session_turns"),
        })
    }

    fn ddl(&self) -> String {
        let Tables {
            sessions,
            threads,
            messages,
            turns,
        } = self;
        format!(
            "CREATE TABLE IF NOT EXISTS {sessions} (
                session_id text PRIMARY KEY, state json, version bigint NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz);
             CREATE INDEX IF NOT EXISTS {sessions}_expires ON {sessions} (expires_at)
                WHERE expires_at IS NOT NULL;
             CREATE TABLE IF NOT EXISTS {threads} (
                session_id text NOT NULL REFERENCES {sessions} ON DELETE CASCADE,
                thread text NOT NULL, position integer NOT NULL,
                PRIMARY KEY (session_id, thread));
             CREATE TABLE IF NOT EXISTS {messages} (
                session_id text NOT NULL, thread text NOT NULL, seq integer NOT NULL,
                version bigint NOT NULL, message json NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (session_id, thread, seq),
                FOREIGN KEY (session_id, thread) REFERENCES {threads} ON DELETE CASCADE);
             CREATE TABLE IF NOT EXISTS {turns} (
                session_id text NOT NULL REFERENCES {sessions} ON DELETE CASCADE,
                turn_id text NOT NULL, version bigint NOT NULL,
                PRIMARY KEY (session_id, turn_id));"
        )
    }
}

/// The locked session row.
struct Row {
    version: u64,
    state: Option<String>,
}

impl PostgresStore {
    /// A store on `dsn` (no I/O until first use; the schema is created then).
    pub fn open(
        dsn: &str,
        table_prefix: &str,
        ttl: Option<Duration>,
        on_conflict: OnConflict,
        options: PgOptions,
    ) -> Result<Self> {
        Ok(PostgresStore {
            pg: Postgres::open(dsn, options)?,
            tables: Tables::new(table_prefix)?,
            ttl,
            on_conflict,
            schema: Arc::new(OnceCell::new()),
        })
    }

    pub fn target(&self) -> &str {
        self.pg.target()
    }

    async fn ready(&self) -> Result<()> {
        self.schema
            .get_or_try_init(|| async {
                self.pg.ensure_schema(SCHEMA_LOCK, &self.tables.ddl()).await
            })
            .await
            .map(|_| ())
    }

    fn ttl_seconds(&self) -> Option<f64> {
        self.ttl.map(|d| d.as_secs_f64())
    }

    async fn load_async(&self, session_id: &str) -> Result<Option<(SessionData, u64)>> {
        self.ready().await?;
        let t = &self.tables;
        let (sessions, threads, messages) = (&t.sessions, &t.threads, &t.messages);
        let head = format!(
            "SELECT version, state::text FROM {sessions}
             WHERE session_id = $1 AND (expires_at IS NULL OR expires_at > now())"
        );
        let body = format!(
            "SELECT t.thread, m.seq, m.message::text FROM {threads} t
             LEFT JOIN {messages} m ON m.session_id = t.session_id AND m.thread = t.thread
             WHERE t.session_id = $1 ORDER BY t.position, m.seq"
        );
        self.pg
            .transaction_with(IsolationLevel::RepeatableRead, true, async |tx| {
                let Some(row) = tx
                    .query_opt(&tx.prepare_cached(&head).await?, &[&session_id])
                    .await?
                else {
                    return Ok(None);
                };
                let version: i64 = row.get(0);
                let mut data = SessionData::empty(session_id);
                data.state = parse_state(session_id, row.get(1))?;
                for row in tx
                    .query(&tx.prepare_cached(&body).await?, &[&session_id])
                    .await?
                {
                    let thread: String = row.get(0);
                    let list = data.threads.entry(thread.clone()).or_default();
                    if let Some(seq) = row.get::<_, Option<i32>>(1) {
                        if usize::try_from(seq).ok() != Some(list.len()) {
                            return Err(Error::corrupt(
                                session_id,
                                format!("thread {thread:?}"),
                                format!("message seq {seq} where {} was expected", list.len()),
                            )
                            .into());
                        }
                        let text: String = row.get(2);
                        list.push(parse_message(session_id, &thread, seq, text)?);
                    }
                }
                Ok(Some((data, version as u64)))
            })
            .await
    }

    async fn commit_async(
        &self,
        session_id: &str,
        commit: &Commit,
        force: bool,
    ) -> Result<Committed> {
        self.ready().await?;
        self.pg
            .transaction(async |tx| self.commit_in(tx, session_id, commit, force).await)
            .await
    }

    /// The body of a commit, inside its transaction (the engine may run it again).
    async fn commit_in(
        &self,
        tx: &Transaction<'_>,
        session_id: &str,
        commit: &Commit,
        force: bool,
    ) -> std::result::Result<Committed, TxError> {
        let t = &self.tables;
        let row = match self.lock_row(tx, session_id).await? {
            Some(row) => row,
            None if commit.expected_version > 0 && !force => {
                return Err(Error::SessionLost {
                    session_id: session_id.to_owned(),
                    detail: format!(
                        "this worker holds version {} but the store has no such session \
                         (deleted or expired); load it again to start over",
                        commit.expected_version
                    ),
                }
                .into());
            }
            None => {
                let create = format!(
                    "INSERT INTO {} (session_id) VALUES ($1) ON CONFLICT DO NOTHING",
                    t.sessions
                );
                tx.execute(&tx.prepare_cached(&create).await?, &[&session_id])
                    .await?;
                self.lock_row(tx, session_id)
                    .await?
                    .ok_or_else(|| Error::Internal("session row vanished".into()))?
            }
        };
        if let Some(turn_id) = &commit.turn_id {
            let seen = format!(
                "SELECT version FROM {} WHERE session_id = $1 AND turn_id = $2",
                t.turns
            );
            if tx
                .query_opt(&tx.prepare_cached(&seen).await?, &[&session_id, turn_id])
                .await?
                .is_some()
            {
                // Applied already (a retry after a lost reply): report where the store is now.
                let mut outcome = Committed {
                    version: row.version,
                    duplicate: true,
                    ..Committed::default()
                };
                for delta in &commit.threads {
                    let tail = self
                        .messages_from(tx, session_id, &delta.thread, delta.loaded_len)
                        .await?;
                    outcome.threads.push((delta.thread.clone(), tail));
                }
                outcome.state = parse_state(session_id, row.state)?;
                return Ok(outcome);
            }
        }
        let conflict = !force && row.version != commit.expected_version;
        let replaces = matches!(commit.state, StateWrite::Replace(_))
            || commit
                .threads
                .iter()
                .any(|d| d.kind == ThreadWriteKind::Replace);
        if conflict && (self.on_conflict == OnConflict::Error || replaces) {
            return Err(conflict_error(session_id, commit.expected_version, row.version).into());
        }
        let new_version = row.version + 1;
        let mut outcome = Committed {
            version: new_version,
            ..Committed::default()
        };
        for delta in &commit.threads {
            let gap = self
                .write_thread(
                    tx,
                    session_id,
                    delta,
                    new_version,
                    force,
                    commit.expected_version,
                    row.version,
                )
                .await?;
            outcome.threads.push((delta.thread.clone(), gap));
        }
        let state = match &commit.state {
            StateWrite::Keep => row.state.clone(),
            StateWrite::Replace(state) => state.as_ref().map(|s| s.get().to_owned()),
            StateWrite::Merge(patch) => {
                let current = parse_state(session_id, row.state.clone())?;
                Some(
                    merge_state(session_id, current.as_deref(), patch)?
                        .get()
                        .to_owned(),
                )
            }
        };
        if !matches!(commit.state, StateWrite::Keep) {
            outcome.state = parse_state(session_id, state.clone())?;
        }
        let update = format!(
            "UPDATE {} SET version = $2, state = $3::text::json, updated_at = now(),
                expires_at = now() + make_interval(secs => $4::float8)
             WHERE session_id = $1",
            t.sessions
        );
        tx.execute(
            &tx.prepare_cached(&update).await?,
            &[
                &session_id,
                &(new_version as i64),
                &state,
                &self.ttl_seconds(),
            ],
        )
        .await?;
        if let Some(turn_id) = &commit.turn_id {
            let record = format!(
                "INSERT INTO {} (session_id, turn_id, version) VALUES ($1, $2, $3)",
                t.turns
            );
            tx.execute(
                &tx.prepare_cached(&record).await?,
                &[&session_id, turn_id, &(new_version as i64)],
            )
            .await?;
        }
        Ok(outcome)
    }

    /// Locks and reads the session row; an expired row is deleted and reads as missing.
    async fn lock_row(
        &self,
        tx: &Transaction<'_>,
        session_id: &str,
    ) -> std::result::Result<Option<Row>, TxError> {
        let t = &self.tables;
        let select = format!(
            "SELECT version, state::text, expires_at IS NOT NULL AND expires_at <= now()
             FROM {} WHERE session_id = $1 FOR UPDATE",
            t.sessions
        );
        let Some(row) = tx
            .query_opt(&tx.prepare_cached(&select).await?, &[&session_id])
            .await?
        else {
            return Ok(None);
        };
        if row.get::<_, bool>(2) {
            let delete = format!("DELETE FROM {} WHERE session_id = $1", t.sessions);
            tx.execute(&tx.prepare_cached(&delete).await?, &[&session_id])
                .await?;
            return Ok(None);
        }
        Ok(Some(Row {
            version: row.get::<_, i64>(0) as u64,
            state: row.get(1),
        }))
    }

    /// Writes one thread's delta; returns the messages that landed after the writer's prefix.
    #[allow(clippy::too_many_arguments)]
    async fn write_thread(
        &self,
        tx: &Transaction<'_>,
        session_id: &str,
        delta: &ThreadDelta,
        version: u64,
        force: bool,
        expected: u64,
        current: u64,
    ) -> std::result::Result<Vec<RawMessage>, TxError> {
        let t = &self.tables;
        let add_thread = format!(
            "INSERT INTO {threads} (session_id, thread, position)
             SELECT $1, $2, coalesce(max(position) + 1, 0) FROM {threads} WHERE session_id = $1
             ON CONFLICT DO NOTHING",
            threads = t.threads
        );
        tx.execute(
            &tx.prepare_cached(&add_thread).await?,
            &[&session_id, &delta.thread],
        )
        .await?;
        let start = match delta.kind {
            ThreadWriteKind::Replace => {
                let clear = format!(
                    "DELETE FROM {} WHERE session_id = $1 AND thread = $2",
                    t.messages
                );
                tx.execute(
                    &tx.prepare_cached(&clear).await?,
                    &[&session_id, &delta.thread],
                )
                .await?;
                0
            }
            ThreadWriteKind::Append => {
                let length = format!(
                    "SELECT coalesce(max(seq) + 1, 0) FROM {} WHERE session_id = $1 AND thread = $2",
                    t.messages
                );
                let row = tx
                    .query_one(
                        &tx.prepare_cached(&length).await?,
                        &[&session_id, &delta.thread],
                    )
                    .await?;
                let length = row.get::<_, i32>(0) as usize;
                if force {
                    length
                } else if length < delta.loaded_len {
                    return Err(Error::Conflict {
                        session_id: session_id.to_owned(),
                        detail: format!(
                            "thread {:?} holds {length} messages, fewer than the {} this worker \
                             loaded (it was replaced meanwhile; version {expected} loaded, {current} stored): \
                             load the session again",
                            delta.thread, delta.loaded_len
                        ),
                    }
                    .into());
                } else {
                    length
                }
            }
        };
        let gap = if delta.kind == ThreadWriteKind::Append && !force && start > delta.loaded_len {
            self.messages_from(tx, session_id, &delta.thread, delta.loaded_len)
                .await?
        } else {
            Vec::new()
        };
        if !delta.messages.is_empty() {
            let insert = format!(
                "INSERT INTO {} (session_id, thread, seq, version, message)
                 SELECT $1, $2, $3 + (n - 1)::integer, $4, m::json
                 FROM unnest($5::text[]) WITH ORDINALITY AS x(m, n)",
                t.messages
            );
            let texts: Vec<&str> = delta.messages.iter().map(|m| m.get()).collect();
            tx.execute(
                &tx.prepare_cached(&insert).await?,
                &[
                    &session_id,
                    &delta.thread,
                    &(start as i32),
                    &(version as i64),
                    &texts,
                ],
            )
            .await?;
        }
        Ok(gap)
    }

    async fn messages_from(
        &self,
        tx: &Transaction<'_>,
        session_id: &str,
        thread: &str,
        from: usize,
    ) -> std::result::Result<Vec<RawMessage>, TxError> {
        let select = format!(
            "SELECT seq, message::text FROM {} WHERE session_id = $1 AND thread = $2 AND seq >= $3
             ORDER BY seq",
            self.tables.messages
        );
        let rows = tx
            .query(
                &tx.prepare_cached(&select).await?,
                &[&session_id, &thread, &(from as i32)],
            )
            .await?;
        rows.into_iter()
            .map(|row| Ok(parse_message(session_id, thread, row.get(0), row.get(1))?))
            .collect()
    }

    async fn save_async(&self, data: &SessionData) -> Result<()> {
        self.ready().await?;
        let t = &self.tables;
        self.pg
            .transaction(async |tx| {
                let clear = format!("DELETE FROM {} WHERE session_id = $1", t.threads);
                tx.execute(&tx.prepare_cached(&clear).await?, &[&data.id])
                    .await?;
                let commit = Commit {
                    turn_id: None,
                    expected_version: 0,
                    threads: data
                        .threads
                        .iter()
                        .map(|(thread, messages)| ThreadDelta {
                            thread: thread.clone(),
                            loaded_len: 0,
                            kind: ThreadWriteKind::Replace,
                            messages: messages.clone(),
                        })
                        .collect(),
                    state: StateWrite::Replace(data.state.clone()),
                };
                self.commit_in(tx, &data.id, &commit, true).await?;
                Ok(())
            })
            .await
    }

    async fn delete_async(&self, session_id: &str) -> Result<bool> {
        self.ready().await?;
        let delete = format!(
            "DELETE FROM {} WHERE session_id = $1 RETURNING expires_at IS NULL OR expires_at > now()",
            self.tables.sessions
        );
        self.pg
            .run(async |client| {
                let rows = client
                    .query(&client.prepare_cached(&delete).await?, &[&session_id])
                    .await?;
                Ok(rows.first().is_some_and(|row| row.get::<_, bool>(0)))
            })
            .await
    }

    fn force_commit(
        &self,
        session_id: &str,
        threads: Vec<ThreadDelta>,
        state: StateWrite,
    ) -> Result<()> {
        let commit = Commit {
            turn_id: None,
            expected_version: 0,
            threads,
            state,
        };
        block_on(self.commit_async(session_id, &commit, true)).map(|_| ())
    }
}

fn conflict_error(session_id: &str, expected: u64, stored: u64) -> Error {
    Error::Conflict {
        session_id: session_id.to_owned(),
        detail: format!(
            "another worker saved version {stored} after this worker loaded version {expected}; \
             load the session again and redo the turn"
        ),
    }
}

fn parse_state(session_id: &str, text: Option<String>) -> Result<Option<Box<RawValue>>> {
    text.map(|text| RawValue::from_string(text).map_err(|e| Error::corrupt(session_id, "state", e)))
        .transpose()
}

fn parse_message(session_id: &str, thread: &str, seq: i32, text: String) -> Result<RawMessage> {
    let location = || format!("thread {thread:?}, message {seq}");
    let raw = RawValue::from_string(text).map_err(|e| Error::corrupt(session_id, location(), e))?;
    if !raw.get().starts_with('{') {
        return Err(Error::corrupt(
            session_id,
            location(),
            "a message must be a JSON object",
        ));
    }
    Ok(raw)
}

impl SessionStore for PostgresStore {
    fn load(&self, session_id: &str) -> Result<Option<SessionData>> {
        Ok(self.load_versioned(session_id)?.map(|(data, _)| data))
    }

    fn save(&self, data: &SessionData) -> Result<()> {
        block_on(self.save_async(data))
    }

    fn append(&self, session_id: &str, thread: &str, messages: &[RawMessage]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let delta = ThreadDelta {
            thread: thread.to_owned(),
            loaded_len: 0,
            kind: ThreadWriteKind::Append,
            messages: messages.to_vec(),
        };
        self.force_commit(session_id, vec![delta], StateWrite::Keep)
    }

    fn replace_thread(
        &self,
        session_id: &str,
        thread: &str,
        messages: &[RawMessage],
    ) -> Result<()> {
        let delta = ThreadDelta {
            thread: thread.to_owned(),
            loaded_len: 0,
            kind: ThreadWriteKind::Replace,
            messages: messages.to_vec(),
        };
        self.force_commit(session_id, vec![delta], StateWrite::Keep)
    }

    fn set_state(&self, session_id: &str, state: Option<&RawValue>) -> Result<()> {
        self.force_commit(
            session_id,
            Vec::new(),
            StateWrite::Replace(state.map(ToOwned::to_owned)),
        )
    }

    fn delete(&self, session_id: &str) -> Result<bool> {
        block_on(self.delete_async(session_id))
    }

    fn load_versioned(&self, session_id: &str) -> Result<Option<(SessionData, u64)>> {
        block_on(self.load_async(session_id))
    }

    fn commit(&self, session_id: &str, commit: &Commit) -> Result<Committed> {
        block_on(self.commit_async(session_id, commit, false))
    }
}
