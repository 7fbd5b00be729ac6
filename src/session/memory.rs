//! The in-memory store: a map guarded by a mutex.
//!
//! Unlike JS `inMemorySessionStore()`, it stores copies, so mutating a session object after
//! saving never changes what the store holds (JS quirk 4).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::data::{SessionData, Threads};
use super::store::{
    Commit, Committed, SessionStore, StateWrite, ThreadWriteKind, check_local_commit, merge_state,
    unseen_messages, writes_anything,
};
use crate::errors::Result;

/// A stored session and its version (one more for every write).
struct Held {
    data: SessionData,
    version: u64,
}

#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, Held>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        // A poisoned lock means a panic mid-update elsewhere. Every check and fallible step
        // of an update runs before its first change, so the map is still whole: keep
        // serving it.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies a commit under the lock; `check`: the rules of [`check_local_commit`].
    fn apply(&self, session_id: &str, commit: &Commit, check: bool) -> Result<Committed> {
        let mut sessions = self.sessions();
        let held = sessions.get(session_id);
        let version = held.map_or(0, |held| held.version);
        let thread = |name: &str| held.and_then(|held| held.data.threads.get(name));
        let stale = check
            && check_local_commit(session_id, commit, version, |name| {
                Ok(thread(name).map_or(0, Vec::len))
            })?;
        let mut done = Committed {
            version,
            threads: unseen_messages(commit, stale, |name| thread(name).map(Vec::as_slice)),
            ..Committed::default()
        };
        // Computed before anything changes, so a bad patch leaves the session as it was.
        let state = match &commit.state {
            StateWrite::Keep => None,
            StateWrite::Replace(state) => Some(state.clone()),
            StateWrite::Merge(patch) => Some(Some(merge_state(
                session_id,
                held.and_then(|held| held.data.state.as_deref()),
                patch,
            )?)),
        };
        // As `append`: a commit that writes nothing creates no session.
        if !writes_anything(commit) {
            return Ok(done);
        }
        let held = sessions
            .entry(session_id.to_owned())
            .or_insert_with(|| Held {
                data: SessionData::empty(session_id),
                version: 0,
            });
        for delta in commit.threads.iter().filter(|d| !d.appends_nothing()) {
            let slot = held.data.threads.entry(delta.thread.clone()).or_default();
            match delta.kind {
                ThreadWriteKind::Append => slot.extend(delta.messages.iter().cloned()),
                ThreadWriteKind::Replace => *slot = delta.messages.clone(),
            }
        }
        if let Some(state) = state {
            held.data.state = state;
            done.state = held.data.state.clone();
        }
        held.version += 1;
        done.version = held.version;
        Ok(done)
    }
}

fn copy(data: &SessionData) -> SessionData {
    SessionData {
        id: data.id.clone(),
        state: data.state.clone(),
        threads: data
            .threads
            .iter()
            .map(|(name, messages)| (name.clone(), messages.to_vec()))
            .collect::<Threads>(),
    }
}

impl SessionStore for MemoryStore {
    fn load(&self, session_id: &str) -> Result<Option<SessionData>> {
        Ok(self.load_versioned(session_id)?.map(|(data, _)| data))
    }

    fn load_versioned(&self, session_id: &str) -> Result<Option<(SessionData, u64)>> {
        Ok(self
            .sessions()
            .get(session_id)
            .map(|held| (copy(&held.data), held.version)))
    }

    fn save(&self, data: &SessionData) -> Result<u64> {
        let mut sessions = self.sessions();
        let version = sessions.get(&data.id).map_or(0, |held| held.version) + 1;
        sessions.insert(
            data.id.clone(),
            Held {
                data: copy(data),
                version,
            },
        );
        Ok(version)
    }

    fn force(&self, session_id: &str, commit: &Commit) -> Result<()> {
        self.apply(session_id, commit, false).map(drop)
    }

    fn commit(&self, session_id: &str, commit: &Commit) -> Result<Committed> {
        self.apply(session_id, commit, true)
    }

    fn delete(&self, session_id: &str) -> Result<bool> {
        Ok(self.sessions().remove(session_id).is_some())
    }
}
