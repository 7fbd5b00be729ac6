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

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::sync::OnceCell;

use super::data::{SessionData, StoredSession, stored_message};
use super::store::{
    Commit, Committed, OnConflict, SessionStore, StateWrite, ThreadWriteKind, loaded_len_of,
    replaced_thread_error, stale_error, stored_version,
};
use crate::engines::block_on;
use crate::engines::postgres::{PgOptions, Postgres};
use crate::errors::{Error, Result};

/// Serialises concurrent first starts' `CREATE ... IF NOT EXISTS` (any constant will do;
/// this one spells "gkps").
const SCHEMA_LOCK: i64 = 0x676b_7073;

/// The commit, as a server-side function: one statement per save, so one round trip in one
/// implicit transaction whose lock on the session row is held for the function's run only.
/// Placeholders in braces are the store's table names.
///
/// Arguments: session id, turn id (or NULL), expected version, mode (`a`ppend / `e`rror on
/// conflict, `f`orce, `w`hole save), ttl seconds (or NULL), state mode (`k`eep, `m`erge,
/// `r`eplace) and state JSON, then per thread: name, loaded length, kind (`a`/`r`) and
/// message count, and every thread's messages concatenated. It checks everything before it
/// writes anything, so a refused commit leaves no trace. Replies `ok`/`dup` with the
/// version, the state and, per thread, the messages after the writer's prefix it had not
/// seen; or `lost`, `conflict` (with the stored version), `short` (thread, its length).
const COMMIT_FN: &str = r#"
CREATE OR REPLACE FUNCTION {commit}(
    p_sid text, p_turn text, p_expected bigint, p_mode text, p_ttl float8,
    p_smode text, p_state text,
    p_threads text[], p_loaded integer[], p_kinds text[], p_counts integer[], p_messages text[],
    OUT o_status text, OUT o_version bigint, OUT o_state text,
    OUT o_threads text[], OUT o_counts integer[], OUT o_messages text[], OUT o_detail text)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_force boolean := p_mode IN ('f', 'w');
    v_expired boolean;
    v_lengths integer[] := '{}';
    v_len integer;
    v_off integer := 1;
    v_tail text[];
    v_n integer := coalesce(array_length(p_threads, 1), 0);
BEGIN
    o_threads := '{}'; o_counts := '{}'; o_messages := '{}';
    SELECT s.version, s.state::text, s.expires_at IS NOT NULL AND s.expires_at <= now()
        INTO o_version, o_state, v_expired
        FROM {sessions} s WHERE s.session_id = p_sid FOR UPDATE;
    IF v_expired THEN
        DELETE FROM {sessions} WHERE session_id = p_sid;
        o_version := NULL; o_state := NULL;
    END IF;
    IF o_version IS NULL THEN
        IF p_expected > 0 AND NOT v_force THEN
            o_status := 'lost';
            RETURN;
        END IF;
        INSERT INTO {sessions} (session_id) VALUES (p_sid) ON CONFLICT DO NOTHING;
        SELECT s.version, s.state::text INTO o_version, o_state
            FROM {sessions} s WHERE s.session_id = p_sid FOR UPDATE;
    END IF;
    IF o_version < 0 THEN
        -- Written by something else: refused before anything is written (the caller reads
        -- the version and reports the record as corrupt).
        o_status := 'corrupt';
        RETURN;
    END IF;

    IF p_turn IS NOT NULL THEN
        PERFORM 1 FROM {turns} t WHERE t.session_id = p_sid AND t.turn_id = p_turn;
        IF FOUND THEN
            o_status := 'dup';
            FOR i IN 1 .. v_n LOOP
                v_tail := ARRAY(SELECT m.message::text FROM {messages} m
                    WHERE m.session_id = p_sid AND m.thread = p_threads[i] AND m.seq >= p_loaded[i]
                    ORDER BY m.seq);
                o_threads := o_threads || p_threads[i];
                o_counts := o_counts || coalesce(array_length(v_tail, 1), 0);
                o_messages := o_messages || v_tail;
            END LOOP;
            RETURN;
        END IF;
    END IF;

    IF NOT v_force AND o_version <> p_expected
        AND (p_mode = 'e' OR p_smode = 'r' OR 'r' = ANY (p_kinds)) THEN
        o_status := 'conflict';
        RETURN;
    END IF;
    FOR i IN 1 .. v_n LOOP
        v_len := 0;
        IF p_kinds[i] = 'a' AND p_mode <> 'w' THEN
            -- The last seq by a backward index probe: `max(seq)` may be planned as a scan
            -- of the whole thread when the table's statistics are stale (O(history) a save).
            v_len := coalesce((SELECT m.seq + 1 FROM {messages} m
                WHERE m.session_id = p_sid AND m.thread = p_threads[i]
                ORDER BY m.seq DESC LIMIT 1), 0);
            IF NOT v_force AND v_len < p_loaded[i] THEN
                o_status := 'short'; o_detail := p_threads[i]; o_counts := ARRAY[v_len];
                RETURN;
            END IF;
        END IF;
        v_lengths := v_lengths || v_len;
    END LOOP;

    IF p_mode = 'w' THEN
        DELETE FROM {threads} WHERE session_id = p_sid;
    END IF;
    FOR i IN 1 .. v_n LOOP
        PERFORM 1 FROM {threads} t WHERE t.session_id = p_sid AND t.thread = p_threads[i];
        IF NOT FOUND THEN
            INSERT INTO {threads} (session_id, thread, position)
                SELECT p_sid, p_threads[i], coalesce(max(t.position) + 1, 0)
                FROM {threads} t WHERE t.session_id = p_sid;
        END IF;
        v_tail := '{}';
        IF p_kinds[i] = 'r' THEN
            DELETE FROM {messages} WHERE session_id = p_sid AND thread = p_threads[i];
        ELSIF NOT v_force AND v_lengths[i] > p_loaded[i] THEN
            v_tail := ARRAY(SELECT m.message::text FROM {messages} m
                WHERE m.session_id = p_sid AND m.thread = p_threads[i] AND m.seq >= p_loaded[i]
                ORDER BY m.seq);
        END IF;
        IF p_counts[i] > 0 THEN
            INSERT INTO {messages} (session_id, thread, seq, version, message)
                SELECT p_sid, p_threads[i], v_lengths[i] + (x.k - 1)::integer, o_version + 1, x.m::json
                FROM unnest(p_messages[v_off : v_off + p_counts[i] - 1]) WITH ORDINALITY AS x(m, k);
        END IF;
        v_off := v_off + p_counts[i];
        o_threads := o_threads || p_threads[i];
        o_counts := o_counts || coalesce(array_length(v_tail, 1), 0);
        o_messages := o_messages || v_tail;
    END LOOP;

    IF p_smode = 'r' THEN
        o_state := p_state;
    ELSIF p_smode = 'm' THEN
        IF o_state IS NOT NULL AND json_typeof(o_state::json) = 'object' THEN
            -- JS updateState: stored keys keep their place (patched values replace theirs),
            -- new keys follow in patch order; every value keeps its bytes.
            SELECT '{' || coalesce(string_agg(to_json(merged.k)::text || ':' || merged.v, ','
                    ORDER BY merged.o), '') || '}'
                INTO o_state
                FROM (
                    SELECT e.key AS k, coalesce(p.value::text, e.value::text) AS v, e.ord AS o
                    FROM json_each(o_state::json) WITH ORDINALITY AS e(key, value, ord)
                    LEFT JOIN json_each(p_state::json) AS p ON p.key = e.key
                    UNION ALL
                    SELECT p.key, p.value::text, 4294967296 + p.ord
                    FROM json_each(p_state::json) WITH ORDINALITY AS p(key, value, ord)
                    WHERE NOT EXISTS (SELECT 1 FROM json_each(o_state::json) AS e WHERE e.key = p.key)
                ) AS merged;
        ELSE
            o_state := p_state;
        END IF;
    END IF;
    o_version := o_version + 1;
    UPDATE {sessions} SET version = o_version, state = o_state::json, updated_at = now(),
        expires_at = now() + make_interval(secs => p_ttl)
        WHERE session_id = p_sid;
    IF p_turn IS NOT NULL THEN
        INSERT INTO {turns} (session_id, turn_id, version) VALUES (p_sid, p_turn, o_version);
        -- Keep about the last 1000 turn ids (a retry comes seconds after its turn).
        IF o_version % 1000 = 0 THEN
            DELETE FROM {turns} WHERE session_id = p_sid AND version <= o_version - 1000;
        END IF;
    END IF;
    o_status := 'ok';
END
$fn$;
"#;

/// How many expired sessions one sweep statement deletes.
const SWEEP_BATCH: i64 = 1000;

pub struct PostgresStore {
    pg: Postgres,
    tables: Tables,
    ttl: Option<Duration>,
    on_conflict: OnConflict,
    schema: Arc<OnceCell<()>>,
    /// When this process last swept expired sessions (stores with a TTL sweep as they write).
    last_sweep: Mutex<Option<Instant>>,
}

/// The store's table names, from its prefix.
struct Tables {
    sessions: String,
    threads: String,
    messages: String,
    turns: String,
    /// The commit function (see [`COMMIT_FN`]).
    commit: String,
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
            commit: format!("{prefix}session_commit"),
        })
    }

    fn ddl(&self) -> String {
        let Tables {
            sessions,
            threads,
            messages,
            turns,
            commit,
        } = self;
        let function = COMMIT_FN
            .replace("{sessions}", sessions)
            .replace("{threads}", threads)
            .replace("{messages}", messages)
            .replace("{turns}", turns)
            .replace("{commit}", commit);
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
                PRIMARY KEY (session_id, turn_id));
             {function}"
        )
    }
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
            last_sweep: Mutex::new(None),
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

    /// The whole session in one statement (one snapshot, one round trip), still as text.
    pub async fn load_texts_async(&self, session_id: &str) -> Result<Option<StoredSession>> {
        let mut arrived: Vec<(u32, MessageBatch)> = Vec::new();
        let Some(read) = self
            .read_in_batches(
                session_id,
                usize::MAX,
                || false,
                |attempt, batch| {
                    arrived.retain(|(a, _)| *a == attempt);
                    arrived.push((attempt, batch));
                },
            )
            .await?
        else {
            return Ok(None);
        };
        let mut lists: Vec<(Arc<str>, Vec<String>)> = Vec::new();
        for (_, batch) in arrived.into_iter().filter(|(a, _)| *a == read.attempt) {
            for (thread, _, text) in batch {
                match lists.iter_mut().find(|(name, _)| *name == thread) {
                    Some((_, list)) => list.push(text),
                    None => lists.push((thread, vec![text])),
                }
            }
        }
        let threads = read
            .threads
            .into_iter()
            .map(|(name, order)| {
                let list = lists
                    .iter_mut()
                    .find(|(n, _)| **n == *name)
                    .map(|(_, list)| std::mem::take(list))
                    .unwrap_or_default();
                let list = match order {
                    None => list,
                    Some(order) => {
                        let mut slots: Vec<Option<String>> = list.into_iter().map(Some).collect();
                        order.iter().filter_map(|&at| slots[at].take()).collect()
                    }
                };
                (name, list)
            })
            .collect();
        Ok(Some(StoredSession {
            version: read.version,
            state: read.state,
            threads,
        }))
    }

    /// The whole session in one statement, its messages handed to `emit` in batches as
    /// they arrive (in arrival order, with their thread and seq), the rest returned once
    /// every row is in: the caller can work on the first messages while the others are
    /// still on the way. A batch goes out once it holds `batch_min` messages or more and
    /// `ready()` says the caller wants one (e.g. it is done with the last), and the last
    /// batch once every row is in. A retried attempt emits its batches again under the next
    /// attempt number: only the batches of [`ReadSession::attempt`] count.
    pub async fn read_in_batches(
        &self,
        session_id: &str,
        batch_min: usize,
        ready: impl Fn() -> bool + Send,
        mut emit: impl FnMut(u32, MessageBatch) + Send,
    ) -> Result<Option<ReadSession>> {
        self.ready().await?;
        let Tables {
            sessions,
            threads,
            messages,
            ..
        } = &self.tables;
        // Rows of three kinds, told apart by which columns are NULL: the session row
        // (version, state), a row per thread (position, name) and a row per message (seq,
        // thread, text). Each message comes straight from the messages table's primary key
        // scan, joined to nothing (the thread name is in the row): a join per message row,
        // or the session's and thread's columns padding every row, cost the server more than
        // the scan itself. Plain rows, no aggregated array (building a 10k-element array
        // costs the server several times the scan) and no ORDER BY (a sort of the whole
        // history): the rows are grouped and put in order here, and the seqs checked. The
        // threads and messages of an expired session are not even read (a one-time filter).
        let live = format!(
            "EXISTS (SELECT 1 FROM {sessions} s WHERE s.session_id = $1
                     AND (s.expires_at IS NULL OR s.expires_at > now()))"
        );
        let select = format!(
            "SELECT s.version, NULL::integer, NULL::text, s.state::text
             FROM {sessions} s
             WHERE s.session_id = $1 AND (s.expires_at IS NULL OR s.expires_at > now())
             UNION ALL
             SELECT t.position::bigint, NULL, t.thread, NULL
             FROM {threads} t WHERE t.session_id = $1 AND {live}
             UNION ALL
             SELECT NULL, m.seq, m.thread, m.message::text
             FROM {messages} m WHERE m.session_id = $1 AND {live}"
        );
        // Each row is taken apart as it arrives, while the server is still sending the rest.
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let init = || Loaded {
            attempt: attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Loaded::default()
        };
        let Loaded {
            attempt,
            session,
            mut order,
            lists,
            batch,
            not_text,
        } = self
            .pg
            .fold_rows(&select, &[&session_id], init, |loaded, row| {
                loaded.add(row);
                if loaded.batch.len() >= batch_min && ready() {
                    emit(loaded.attempt, std::mem::take(&mut loaded.batch));
                }
            })
            .await?;
        if let Some((thread, seq)) = not_text {
            return Err(Error::corrupt(
                session_id,
                format!("thread {thread:?}, message {seq}"),
                "not UTF-8 text",
            ));
        }
        if !batch.is_empty() {
            emit(attempt, batch);
        }
        let Some((version, state)) = session else {
            return Ok(None);
        };
        order.sort_unstable_by_key(|(position, _)| *position);
        let mut read = ReadSession {
            attempt,
            version: stored_version(session_id, "sessions row", version)?,
            state,
            threads: Vec::with_capacity(order.len()),
        };
        let mut lists = lists;
        for (_, thread) in order {
            let seqs = match lists.iter().position(|(name, _)| **name == *thread) {
                Some(at) => lists.swap_remove(at).1,
                None => Vec::new(),
            };
            // The index scan returns them in seq order; sorting is the fallback for a plan
            // that does not.
            let arrival = (!seqs.is_sorted()).then(|| {
                let mut arrival: Vec<usize> = (0..seqs.len()).collect();
                arrival.sort_unstable_by_key(|&at| seqs[at]);
                arrival
            });
            let seq_at = |i: usize| arrival.as_ref().map_or(seqs[i], |a| seqs[a[i]]);
            // With the primary key, seqs 0..n-1 in order prove the thread has no gap.
            if let Some(at) =
                (0..seqs.len()).position(|i| usize::try_from(seq_at(i)).ok() != Some(i))
            {
                let (low, high) = (seq_at(0), seq_at(seqs.len() - 1));
                return Err(Error::corrupt(
                    session_id,
                    format!("thread {thread:?}"),
                    format!(
                        "{} messages with seq {low}..={high}, the one at {at} out of place \
                         (expected 0..{})",
                        seqs.len(),
                        seqs.len()
                    ),
                ));
            }
            read.threads.push((thread, arrival));
        }
        if let Some((thread, _)) = lists.first() {
            // The foreign key forbids this; something else wrote the table.
            return Err(Error::corrupt(
                session_id,
                format!("thread {thread:?}"),
                "messages of a thread the session does not list",
            ));
        }
        Ok(Some(read))
    }

    /// One commit: a single call of the store's commit function (one statement, so one
    /// round trip and one implicit transaction; see [`COMMIT_FN`]). `mode` is the
    /// function's: `a`ppend or `e`rror on conflict, `f`orce (no version check), `w`hole
    /// save (threads replaced).
    async fn commit_async(
        &self,
        session_id: &str,
        commit: &Commit,
        mode: &'static str,
    ) -> Result<Committed> {
        self.ready().await?;
        let (smode, state) = match &commit.state {
            StateWrite::Keep => ("k", None),
            StateWrite::Replace(state) => ("r", state.as_deref().map(RawValue::get)),
            StateWrite::Merge(patch) => {
                check_patch(session_id, patch)?;
                ("m", Some(patch.get()))
            }
        };
        if let Some(state) = state {
            check_no_nul(session_id, state)?;
        }
        let names: Vec<&str> = commit.threads.iter().map(|d| d.thread.as_str()).collect();
        let loaded: Vec<i32> = commit
            .threads
            .iter()
            .map(|d| i32::try_from(d.loaded_len).unwrap_or(i32::MAX))
            .collect();
        let kinds: Vec<&str> = commit
            .threads
            .iter()
            .map(|d| match d.kind {
                ThreadWriteKind::Append => "a",
                ThreadWriteKind::Replace => "r",
            })
            .collect();
        let counts: Vec<i32> = commit
            .threads
            .iter()
            .map(|d| d.messages.len() as i32)
            .collect();
        let texts: Vec<&str> = commit
            .threads
            .iter()
            .flat_map(|d| d.messages.iter().map(|m| m.get()))
            .collect();
        let call = format!(
            "SELECT o_status, o_version, o_state, o_threads, o_counts, o_messages, o_detail
             FROM {}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            self.tables.commit
        );
        let expected = commit.expected_version as i64;
        let ttl = self.ttl.map(|d| d.as_secs_f64());
        // Retried after a lost connection: a commit with a turn id is deduplicated by it.
        let row = self
            .pg
            .query_one_cached(
                &call,
                &[
                    &session_id,
                    &commit.turn_id,
                    &expected,
                    &mode,
                    &ttl,
                    &smode,
                    &state,
                    &names,
                    &loaded,
                    &kinds,
                    &counts,
                    &texts,
                ],
            )
            .await?;
        let status: String = row.get(0);
        let version: Option<i64> = row.get(1);
        let version = stored_version(session_id, "session commit", version.unwrap_or(0))?;
        match status.as_str() {
            "ok" | "dup" => {
                let duplicate = status == "dup";
                let mut outcome = Committed {
                    version,
                    duplicate,
                    ..Committed::default()
                };
                if duplicate || !matches!(commit.state, StateWrite::Keep) {
                    outcome.state = parse_state(session_id, row.get(2))?;
                }
                let threads: Vec<String> = row.get(3);
                let counts: Vec<i32> = row.get(4);
                let mut messages = row.get::<_, Vec<String>>(5).into_iter();
                for ((thread, count), delta) in threads.into_iter().zip(counts).zip(&commit.threads)
                {
                    let tail = messages
                        .by_ref()
                        .take(count as usize)
                        .enumerate()
                        .map(|(i, text)| {
                            stored_message(session_id, &thread, delta.loaded_len + i, text)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    outcome.threads.push((thread, tail));
                }
                Ok(outcome)
            }
            "lost" => Err(Error::SessionLost {
                session_id: session_id.to_owned(),
                detail: format!(
                    "this worker holds version {} but the store has no such session \
                     (deleted or expired); load it again to start over",
                    commit.expected_version
                ),
            }),
            "conflict" => Err(stale_error(session_id, commit.expected_version, version)),
            "short" => {
                let thread: Option<String> = row.get(6);
                let thread = thread.unwrap_or_default();
                let length = row.get::<_, Vec<i32>>(4).first().copied().unwrap_or(-1);
                let loaded = loaded_len_of(commit, &thread);
                Err(replaced_thread_error(
                    session_id,
                    &thread,
                    i64::from(length),
                    loaded,
                ))
            }
            other => Err(Error::corrupt(
                session_id,
                "commit function reply",
                format!("unknown status {other:?}"),
            )),
        }
    }

    /// One turn's commit; with a TTL, a sweep of expired sessions follows when one is due.
    pub async fn commit_versioned(&self, session_id: &str, commit: &Commit) -> Result<Committed> {
        let mode = match self.on_conflict {
            OnConflict::Append => "a",
            OnConflict::Error => "e",
        };
        let done = self.commit_async(session_id, commit, mode).await?;
        self.sweep_if_due().await;
        Ok(done)
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

    /// With a TTL, a sweep at most every `min(ttl, 60 s)` per process, after a commit: one
    /// bounded batch, best effort (a failed sweep is retried by a later commit).
    async fn sweep_if_due(&self) {
        let Some(ttl) = self.ttl else { return };
        let every = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
        {
            let mut last = self
                .last_sweep
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match *last {
                Some(at) if at.elapsed() < every => return,
                _ => *last = Some(Instant::now()),
            }
        }
        let _ = self.sweep_batch(SWEEP_BATCH).await;
    }

    /// Deletes up to `batch` expired sessions; returns how many.
    async fn sweep_batch(&self, batch: i64) -> Result<u64> {
        let sweep = format!(
            "DELETE FROM {s} WHERE session_id IN (
                SELECT session_id FROM {s} WHERE expires_at <= now()
                ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)",
            s = self.tables.sessions
        );
        self.pg.execute_cached(&sweep, &[&batch]).await
    }

    /// Deletes sessions whose TTL has passed (their threads, messages and turn ids go
    /// with them); returns how many. Expired sessions already read as unknown; this
    /// reclaims their rows, in batches so no transaction holds many locks.
    pub async fn sweep_expired_async(&self) -> Result<u64> {
        self.ready().await?;
        let mut total = 0;
        loop {
            let deleted = self.sweep_batch(SWEEP_BATCH).await?;
            total += deleted;
            if deleted < SWEEP_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

/// Messages as they arrived: (thread, seq, text).
pub type MessageBatch = Vec<(Arc<str>, i32, String)>;

/// A session read by [`PostgresStore::read_in_batches`], but for its messages (emitted).
#[derive(Debug)]
pub struct ReadSession {
    /// The attempt whose batches hold the messages.
    pub attempt: u32,
    pub version: u64,
    pub state: Option<String>,
    /// Per thread, in creation order: its name and, when its messages did not arrive in
    /// seq order, the arrival number (within the thread) of each in seq order.
    pub threads: Vec<(String, Option<Vec<usize>>)>,
}

/// A session's rows as they arrive: the session row, the threads (position, name), per
/// thread the seqs of its messages in the order they came, and the messages not yet emitted.
#[derive(Default)]
struct Loaded {
    attempt: u32,
    session: Option<(i64, Option<String>)>,
    order: Vec<(i64, String)>,
    lists: Vec<(Arc<str>, Vec<i32>)>,
    batch: MessageBatch,
    /// The first message that is not UTF-8 text (thread, seq).
    not_text: Option<(Arc<str>, i32)>,
}

impl Loaded {
    /// One row of the load statement (its kind told by which columns are NULL).
    fn add(&mut self, row: &tokio_postgres::Row) {
        let seq = row.get::<_, Option<i32>>(1);
        let Some(Text(thread)) = row.get::<_, Option<Text<'_>>>(2) else {
            self.session = Some((row.get::<_, i64>(0), row.get::<_, Option<String>>(3)));
            return;
        };
        let Some(seq) = seq else {
            self.order
                .push((row.get::<_, i64>(0), row.get::<_, String>(2)));
            return;
        };
        // The scan returns a thread's messages together: the last list is the usual one.
        let at = match self.lists.last() {
            Some((name, _)) if name.as_bytes() == thread => self.lists.len() - 1,
            _ => match self.lists.iter().position(|(n, _)| n.as_bytes() == thread) {
                Some(at) => at,
                None => {
                    self.lists.push((row.get::<_, &str>(2).into(), Vec::new()));
                    self.lists.len() - 1
                }
            },
        };
        let (name, seqs) = &mut self.lists[at];
        seqs.push(seq);
        let Text(text) = row.get::<_, Text<'_>>(3);
        match std::str::from_utf8(text) {
            Ok(text) => self.batch.push((Arc::clone(name), seq, text.to_owned())),
            Err(_) => self.not_text = self.not_text.take().or(Some((Arc::clone(name), seq))),
        }
    }
}

/// A `text` column's bytes as they came. `&str`'s `FromSql` also compares the column
/// type's name with three extension types' for every value (~5% of reading a message row);
/// a message's bytes are checked to be UTF-8 once, where they are copied.
struct Text<'a>(&'a [u8]);

impl<'a> tokio_postgres::types::FromSql<'a> for Text<'a> {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Text(raw))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::TEXT
    }
}

/// A merge patch must be a JSON object (its top-level keys are merged).
fn check_patch(session_id: &str, patch: &RawValue) -> Result<()> {
    serde_json::from_str::<indexmap::IndexMap<String, &RawValue>>(patch.get())
        .map(|_| ())
        .map_err(|e| Error::InvalidJson {
            what: format!("state patch for session {session_id:?}"),
            detail: format!("a patch must be a JSON object: {e}"),
        })
}

/// PostgreSQL's JSON functions (which merge a state patch) cannot read a NUL character
/// (`\u0000`, anywhere in the object), so a state holding one is refused on every write,
/// not stored to break the session's next merge.
fn check_no_nul(session_id: &str, json: &str) -> Result<()> {
    let bytes = json.as_bytes();
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'\\') {
        let at = i + offset;
        if bytes[at + 1..].starts_with(b"u0000") {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "session {session_id:?}: the state holds a NUL character (\\u0000), which \
                     PostgreSQL's JSON functions cannot read"
                ),
            });
        }
        // Past the escaped character: in `\\u0000` the second backslash is escaped, not escaping.
        i = (at + 2).min(bytes.len());
    }
    Ok(())
}

fn parse_state(session_id: &str, text: Option<String>) -> Result<Option<Box<RawValue>>> {
    text.map(|text| RawValue::from_string(text).map_err(|e| Error::corrupt(session_id, "state", e)))
        .transpose()
}

impl SessionStore for PostgresStore {
    fn load(&self, session_id: &str) -> Result<Option<SessionData>> {
        Ok(self.load_versioned(session_id)?.map(|(data, _)| data))
    }

    fn save(&self, data: &SessionData) -> Result<u64> {
        block_on(self.commit_async(&data.id, &Commit::whole_save(data), "w"))
            .map(|done| done.version)
    }

    fn force(&self, session_id: &str, commit: &Commit) -> Result<()> {
        block_on(self.commit_async(session_id, commit, "f")).map(|_| ())
    }

    fn delete(&self, session_id: &str) -> Result<bool> {
        block_on(self.delete_async(session_id))
    }

    fn load_versioned(&self, session_id: &str) -> Result<Option<(SessionData, u64)>> {
        self.load_texts(session_id)?
            .map(|stored| stored.into_data(session_id))
            .transpose()
    }

    fn load_texts(&self, session_id: &str) -> Result<Option<StoredSession>> {
        block_on(self.load_texts_async(session_id))
    }

    fn commit(&self, session_id: &str, commit: &Commit) -> Result<Committed> {
        block_on(self.commit_versioned(session_id, commit))
    }

    fn sweep_expired(&self) -> Result<u64> {
        block_on(self.sweep_expired_async())
    }
}

#[cfg(test)]
mod tests {
    use super::check_no_nul;

    #[test]
    fn a_nul_is_found_in_json_text_and_an_escaped_backslash_is_not_one() {
        assert!(check_no_nul("s", r#"{"k":"x\u0000y"}"#).is_err());
        assert!(check_no_nul("s", r#"{"k\u0000":1}"#).is_err());
        assert!(check_no_nul("s", r#"{"k":"x\\u0000y"}"#).is_ok());
        assert!(check_no_nul("s", r#"{"k":"x\\\u0000y"}"#).is_err());
        assert!(check_no_nul("s", r#"{"k":"\u00001"}"#).is_err());
        assert!(check_no_nul("s", r#"{"k":"\u0001","j":"\\"}"#).is_ok());
    }
}
