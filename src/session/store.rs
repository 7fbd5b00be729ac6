//! What every built-in session store can do.
//!
//! `load`/`save` mirror JS `SessionStore.get`/`save` (whole sessions). The other operations
//! are what make a chat turn cheap: a turn appends its new messages instead of rewriting the
//! history. All methods block; the binding runs them on tokio's blocking pool, off the GIL
//! (except a Redis commit, which it runs as a task through `RedisStore::commit_async`).
//!
//! [`SessionStore::commit`] is every store's versioned, atomic write: one turn's delta
//! against the version its writer loaded. Shared stores (Redis, PostgreSQL) also
//! deduplicate it by a turn id (a retry after a lost reply); single-process stores apply
//! the rules of [`check_local_commit`] under their lock or transaction.

use serde_json::value::RawValue;

use super::data::{RawMessage, SessionData, StoredSession};
use crate::errors::{Error, Result};

pub trait SessionStore: Send + Sync + 'static {
    /// The whole session, or `None` for an id the store has never seen.
    fn load(&self, session_id: &str) -> Result<Option<SessionData>>;

    /// Replaces everything stored for `data.id` with `data`; returns the version written
    /// (read in the same step, so a writer knows its copy is whole at exactly that one).
    fn save(&self, data: &SessionData) -> Result<u64>;

    /// Appends `messages` to a thread, creating the session and thread when missing.
    /// Appending no messages does nothing (it creates neither).
    fn append(&self, session_id: &str, thread: &str, messages: &[RawMessage]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        self.force(
            session_id,
            &Commit::forced(
                vec![ThreadDelta::whole(
                    thread,
                    ThreadWriteKind::Append,
                    messages,
                )],
                StateWrite::Keep,
            ),
        )
    }

    /// Replaces one thread's messages, leaving state and other threads alone.
    fn replace_thread(
        &self,
        session_id: &str,
        thread: &str,
        messages: &[RawMessage],
    ) -> Result<()> {
        self.force(
            session_id,
            &Commit::forced(
                vec![ThreadDelta::whole(
                    thread,
                    ThreadWriteKind::Replace,
                    messages,
                )],
                StateWrite::Keep,
            ),
        )
    }

    /// Replaces the state (`None` = undefined), leaving threads alone.
    fn set_state(&self, session_id: &str, state: Option<&RawValue>) -> Result<()> {
        self.force(
            session_id,
            &Commit::forced(
                Vec::new(),
                StateWrite::Replace(state.map(ToOwned::to_owned)),
            ),
        )
    }

    /// Applies `commit` without checking versions or the writer's copy: the unversioned
    /// `append`, `replace_thread` and `set_state`, which every store inherits.
    fn force(&self, session_id: &str, commit: &Commit) -> Result<()>;

    /// Removes a session. Returns whether it existed.
    fn delete(&self, session_id: &str) -> Result<bool>;

    /// The session and its version (`0` for stores that keep none).
    fn load_versioned(&self, session_id: &str) -> Result<Option<(SessionData, u64)>> {
        Ok(self.load(session_id)?.map(|data| (data, 0)))
    }

    /// The session as stored, its messages and state as JSON text, for callers that parse
    /// them anyway (the Python binding builds Python objects from them). Shared stores read
    /// it in one round trip without validating; the default goes through `load_versioned`.
    fn load_texts(&self, session_id: &str) -> Result<Option<StoredSession>> {
        Ok(self
            .load_versioned(session_id)?
            .map(|(data, version)| StoredSession {
                version,
                state: data.state.map(|s| s.get().to_owned()),
                threads: data
                    .threads
                    .into_iter()
                    .map(|(name, list)| {
                        (name, list.into_iter().map(|m| m.get().to_owned()).collect())
                    })
                    .collect(),
            }))
    }

    /// Deletes expired sessions (stores with a TTL that the engine does not expire by
    /// itself); returns how many. Expired sessions read as unknown either way.
    fn sweep_expired(&self) -> Result<u64> {
        Ok(0)
    }

    /// Applies one turn's writes atomically against the version its writer loaded. What
    /// another writer saved meanwhile is never overwritten: shared stores follow their
    /// `on_conflict`; single-process stores follow `append` (see [`check_local_commit`]).
    fn commit(&self, session_id: &str, commit: &Commit) -> Result<Committed>;
}

/// A commit refused because another writer saved after its writer's copy was loaded.
pub fn stale_error(session_id: &str, expected: u64, stored: u64) -> Error {
    Error::Conflict {
        session_id: session_id.to_owned(),
        detail: format!(
            "another writer saved version {stored} after this session loaded version {expected}; \
             load the session again and redo the turn"
        ),
    }
}

/// A commit refused because the thread it appends to now holds fewer messages than its
/// writer's copy: another writer replaced it meanwhile.
pub fn replaced_thread_error(
    session_id: &str,
    thread: &str,
    stored_len: i64,
    loaded_len: usize,
) -> Error {
    Error::Conflict {
        session_id: session_id.to_owned(),
        detail: format!(
            "thread {thread:?} holds {stored_len} messages, fewer than the {loaded_len} this \
             session holds (another writer replaced it meanwhile): load the session again"
        ),
    }
}

/// How many messages of `thread` a commit's writer held (`0` if the commit does not write it).
pub fn loaded_len_of(commit: &Commit, thread: &str) -> usize {
    commit
        .threads
        .iter()
        .find(|delta| delta.thread == thread)
        .map_or(0, |delta| delta.loaded_len)
}

/// The checks a single-process store makes under its lock before it applies a commit: the
/// rules of the shared stores with `on_conflict='append'`. A writer whose copy is stale
/// (`stored_version` is not the version it loaded) may append, after what landed
/// meanwhile, and merge state keys; its replace of a thread or of the whole state (which
/// would drop what landed) is refused, as is an append to a thread that got shorter, and
/// any write to a session deleted meanwhile (`stored_version` 0: `SessionLost`). Returns
/// whether the copy was stale: the store then reports what the writer had not seen.
///
/// Versions start again at 1 when a deleted session is created anew, so a writer that
/// held the old one at the same version is not told apart.
pub fn check_local_commit(
    session_id: &str,
    commit: &Commit,
    stored_version: u64,
    mut thread_len: impl FnMut(&str) -> Result<usize>,
) -> Result<bool> {
    if stored_version == commit.expected_version {
        return Ok(false);
    }
    if stored_version == 0 {
        // Deleted since the writer loaded it: writing now would recreate it from a part.
        return Err(Error::SessionLost {
            session_id: session_id.to_owned(),
            detail: format!(
                "it is no longer stored (deleted since this session loaded version {}); \
                 load it again to start over",
                commit.expected_version
            ),
        });
    }
    if matches!(commit.state, StateWrite::Replace(_)) {
        return Err(stale_error(
            session_id,
            commit.expected_version,
            stored_version,
        ));
    }
    for delta in &commit.threads {
        match delta.kind {
            ThreadWriteKind::Replace => {
                return Err(stale_error(
                    session_id,
                    commit.expected_version,
                    stored_version,
                ));
            }
            ThreadWriteKind::Append => {
                let stored_len = thread_len(&delta.thread)?;
                if stored_len < delta.loaded_len {
                    return Err(replaced_thread_error(
                        session_id,
                        &delta.thread,
                        i64::try_from(stored_len).unwrap_or(i64::MAX),
                        delta.loaded_len,
                    ));
                }
            }
        }
    }
    Ok(true)
}

/// What a stale writer had not seen of each thread in its commit: for an append, the stored
/// messages past its copy (`stored` gives a thread as stored). Empty when not `stale`.
pub fn unseen_messages<'a>(
    commit: &Commit,
    stale: bool,
    stored: impl Fn(&str) -> Option<&'a [RawMessage]>,
) -> Vec<(String, Vec<RawMessage>)> {
    commit
        .threads
        .iter()
        .map(|delta| {
            let unseen = match (stale, delta.kind) {
                (true, ThreadWriteKind::Append) => stored(&delta.thread)
                    .and_then(|messages| messages.get(delta.loaded_len..))
                    .map(<[RawMessage]>::to_vec)
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            (delta.thread.clone(), unseen)
        })
        .collect()
}

/// Whether a commit writes anything (an append of no messages writes nothing).
pub fn writes_anything(commit: &Commit) -> bool {
    !matches!(commit.state, StateWrite::Keep)
        || commit.threads.iter().any(|delta| !delta.appends_nothing())
}

/// What to do when a save finds that another writer committed since its writer loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    /// Append this turn's messages after the ones that landed, re-apply its state keys.
    Append,
    /// Refuse ([`Error::Conflict`], Python `ABORTED`): the caller reloads and redoes the turn.
    Error,
}

impl OnConflict {
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "append" => Ok(OnConflict::Append),
            "error" => Ok(OnConflict::Error),
            other => Err(Error::InvalidArgument {
                detail: format!("on_conflict must be 'append' or 'error', not {other:?}"),
            }),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadWriteKind {
    /// `messages` follow the first `loaded_len` stored messages.
    Append,
    /// `messages` are the whole thread (a replaced preamble, `update_messages` of a new
    /// list): allowed only while nobody else committed since the load.
    Replace,
}

/// One thread's part of a commit.
#[derive(Debug)]
pub struct ThreadDelta {
    pub thread: String,
    /// How many of the thread's messages the writer had loaded (its prefix).
    pub loaded_len: usize,
    pub kind: ThreadWriteKind,
    pub messages: Vec<RawMessage>,
}

/// The state part of a commit.
#[derive(Debug)]
pub enum StateWrite {
    Keep,
    /// Shallow-merge these top-level keys (a JSON object) into the stored state.
    Merge(Box<RawValue>),
    /// Replace the state (`None` = undefined).
    Replace(Option<Box<RawValue>>),
}

impl ThreadDelta {
    /// An append of no messages: writes nothing (and creates no thread).
    pub fn appends_nothing(&self) -> bool {
        self.kind == ThreadWriteKind::Append && self.messages.is_empty()
    }

    /// A write of a whole message list (`loaded_len` 0).
    pub fn whole(thread: &str, kind: ThreadWriteKind, messages: &[RawMessage]) -> Self {
        ThreadDelta {
            thread: thread.to_owned(),
            loaded_len: 0,
            kind,
            messages: messages.to_vec(),
        }
    }
}

/// One turn's writes to one session.
#[derive(Debug)]
pub struct Commit {
    /// Deduplicates retries: a commit whose turn id the store has applied is a no-op.
    pub turn_id: Option<String>,
    /// The version the writer loaded (`0`: it never saw the session stored).
    pub expected_version: u64,
    pub threads: Vec<ThreadDelta>,
    pub state: StateWrite,
}

impl Commit {
    /// Unversioned writes (no turn id, no expected version): what `force` applies.
    pub fn forced(threads: Vec<ThreadDelta>, state: StateWrite) -> Self {
        Commit {
            turn_id: None,
            expected_version: 0,
            threads,
            state,
        }
    }

    /// `save` of a whole session: every thread replaced, the state replaced.
    pub fn whole_save(data: &SessionData) -> Self {
        Commit::forced(
            data.threads
                .iter()
                .map(|(thread, messages)| {
                    ThreadDelta::whole(thread, ThreadWriteKind::Replace, messages)
                })
                .collect(),
            StateWrite::Replace(data.state.clone()),
        )
    }
}

/// What a commit did, so the writer's copy can catch up with the store.
#[derive(Debug, Default)]
pub struct Committed {
    /// The session's version after the commit (`0` for stores that keep none).
    pub version: u64,
    /// The turn id had been applied already; nothing was written.
    pub duplicate: bool,
    /// Per written thread, the stored messages after the writer's `loaded_len` that it had
    /// not seen: what landed before its own messages, or (when `duplicate`) everything
    /// after `loaded_len`, its own turn included.
    pub threads: Vec<(String, Vec<RawMessage>)>,
    /// The stored state after the commit, when the commit wrote it.
    pub state: Option<Box<RawValue>>,
}

/// `current` with `patch`'s top-level keys set (JS `updateState`); a current state that
/// is not an object is replaced by the patch.
pub fn merge_state(
    session_id: &str,
    current: Option<&RawValue>,
    patch: &RawValue,
) -> Result<Box<RawValue>> {
    type Object<'a> = indexmap::IndexMap<String, &'a RawValue>;
    let patch: Object<'_> = serde_json::from_str(patch.get()).map_err(|e| Error::InvalidJson {
        what: format!("state patch for session {session_id:?}"),
        detail: e.to_string(),
    })?;
    let mut merged: Object<'_> = match current {
        Some(raw) if raw.get().trim_start().starts_with('{') => {
            serde_json::from_str(raw.get()).map_err(|e| Error::corrupt(session_id, "state", e))?
        }
        _ => Object::new(),
    };
    merged.extend(patch);
    let text = serde_json::to_string(&merged).map_err(|e| Error::Internal(e.to_string()))?;
    RawValue::from_string(text).map_err(|e| Error::Internal(e.to_string()))
}

/// A session version read back from an engine (a signed integer there), checked: a negative
/// one was written by something else, and read `as u64` it would wrap to a huge version.
pub fn stored_version(session_id: &str, location: &str, version: i64) -> Result<u64> {
    u64::try_from(version).map_err(|_| {
        Error::corrupt(
            session_id,
            location,
            format!("version {version} is negative"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.into()).unwrap()
    }

    #[test]
    fn merges_top_level_keys_keeping_order_and_bytes() {
        let merged = merge_state(
            "s",
            Some(&raw(r#"{"a":1,"b":{"x":1.50}}"#)),
            &raw(r#"{"c":2,"a":3}"#),
        )
        .unwrap();
        assert_eq!(merged.get(), r#"{"a":3,"b":{"x":1.50},"c":2}"#);
        let merged = merge_state("s", Some(&raw("[1]")), &raw(r#"{"c":2}"#)).unwrap();
        assert_eq!(merged.get(), r#"{"c":2}"#);
        let merged = merge_state("s", None, &raw(r#"{"c":2}"#)).unwrap();
        assert_eq!(merged.get(), r#"{"c":2}"#);
        assert!(merge_state("s", None, &raw("[1]")).is_err());
    }

    #[test]
    fn on_conflict_accepts_the_python_spellings() {
        assert_eq!(OnConflict::parse("append").unwrap(), OnConflict::Append);
        assert_eq!(OnConflict::parse("error").unwrap(), OnConflict::Error);
        assert!(OnConflict::parse("merge").is_err());
    }
}
