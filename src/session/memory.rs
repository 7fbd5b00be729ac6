//! The in-memory store: a map guarded by a mutex.
//!
//! Unlike JS `inMemorySessionStore()`, it stores copies, so mutating a session object after
//! saving never changes what the store holds (JS quirk 4).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::data::{SessionData, Threads};
use super::store::{
    Commit, Committed, SessionStore, StateWrite, ThreadWriteKind, check_replaces,
    committed_locally, merge_state,
};
use crate::errors::Result;

#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, SessionData>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, SessionData>> {
        // A poisoned lock means a panic mid-update elsewhere; the map itself is still whole
        // (every update is a single insert or push), so keep serving it.
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
        Ok(self.sessions().get(session_id).map(copy))
    }

    fn save(&self, data: &SessionData) -> Result<()> {
        self.sessions().insert(data.id.clone(), copy(data));
        Ok(())
    }

    fn delete(&self, session_id: &str) -> Result<bool> {
        Ok(self.sessions().remove(session_id).is_some())
    }

    fn force(&self, session_id: &str, commit: &Commit) -> Result<()> {
        self.apply(session_id, commit, false)
    }

    fn commit(&self, session_id: &str, commit: &Commit) -> Result<Committed> {
        self.apply(session_id, commit, true)?;
        Ok(committed_locally(commit))
    }
}

impl MemoryStore {
    /// Applies a commit under the lock; `check`: refuse a replace of a changed thread.
    fn apply(&self, session_id: &str, commit: &Commit, check: bool) -> Result<()> {
        let mut sessions = self.sessions();
        let stored = sessions.get(session_id);
        if check {
            check_replaces(session_id, commit, |thread| {
                Ok(stored
                    .and_then(|data| data.threads.get(thread))
                    .map_or(0, Vec::len))
            })?;
        }
        // Computed before anything changes, so a bad patch leaves the session as it was.
        let state = match &commit.state {
            StateWrite::Keep => None,
            StateWrite::Replace(state) => Some(state.clone()),
            StateWrite::Merge(patch) => Some(Some(merge_state(
                session_id,
                stored.and_then(|data| data.state.as_deref()),
                patch,
            )?)),
        };
        // As `append`: appending no messages creates neither session nor thread.
        let writes = || {
            commit
                .threads
                .iter()
                .filter(|delta| !delta.appends_nothing())
        };
        if state.is_some() || writes().next().is_some() {
            let data = sessions
                .entry(session_id.to_owned())
                .or_insert_with(|| SessionData::empty(session_id));
            for delta in writes() {
                let slot = data.threads.entry(delta.thread.clone()).or_default();
                match delta.kind {
                    ThreadWriteKind::Append => slot.extend(delta.messages.iter().cloned()),
                    ThreadWriteKind::Replace => *slot = delta.messages.clone(),
                }
            }
            if let Some(state) = state {
                data.state = state;
            }
        }
        Ok(())
    }
}
