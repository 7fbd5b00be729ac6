//! The in-memory store: a map guarded by a mutex.
//!
//! Unlike JS `inMemorySessionStore()`, it stores copies, so mutating a session object after
//! saving never changes what the store holds (JS quirk 4).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::value::RawValue;

use super::data::{RawMessage, SessionData, Threads};
use super::store::SessionStore;
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

    fn append(&self, session_id: &str, thread: &str, messages: &[RawMessage]) -> Result<()> {
        if messages.is_empty() {
            return Ok(()); // as in every store: appending nothing creates nothing
        }
        let mut sessions = self.sessions();
        let data = sessions
            .entry(session_id.to_owned())
            .or_insert_with(|| SessionData::empty(session_id));
        data.threads
            .entry(thread.to_owned())
            .or_default()
            .extend(messages.to_vec());
        Ok(())
    }

    fn replace_thread(
        &self,
        session_id: &str,
        thread: &str,
        messages: &[RawMessage],
    ) -> Result<()> {
        let mut sessions = self.sessions();
        let data = sessions
            .entry(session_id.to_owned())
            .or_insert_with(|| SessionData::empty(session_id));
        data.threads.insert(thread.to_owned(), messages.to_vec());
        Ok(())
    }

    fn set_state(&self, session_id: &str, state: Option<&RawValue>) -> Result<()> {
        let mut sessions = self.sessions();
        let data = sessions
            .entry(session_id.to_owned())
            .or_insert_with(|| SessionData::empty(session_id));
        data.state = state.map(ToOwned::to_owned);
        Ok(())
    }

    fn delete(&self, session_id: &str) -> Result<bool> {
        Ok(self.sessions().remove(session_id).is_some())
    }
}
