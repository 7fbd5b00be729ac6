//! What every built-in session store can do.
//!
//! `load`/`save` mirror JS `SessionStore.get`/`save` (whole sessions). The other operations
//! are what make a chat turn cheap: a turn appends its new messages instead of rewriting the
//! history. All methods block; the binding runs them on tokio's blocking pool, off the GIL.

use serde_json::value::RawValue;

use super::data::{RawMessage, SessionData};
use crate::errors::Result;

pub trait SessionStore: Send + Sync + 'static {
    /// The whole session, or `None` for an id the store has never seen.
    fn load(&self, session_id: &str) -> Result<Option<SessionData>>;

    /// Replaces everything stored for `data.id` with `data`.
    fn save(&self, data: &SessionData) -> Result<()>;

    /// Appends `messages` to a thread, creating the session and thread when missing.
    /// Appending no messages does nothing (it creates neither).
    fn append(&self, session_id: &str, thread: &str, messages: &[RawMessage]) -> Result<()>;

    /// Replaces one thread's messages, leaving state and other threads alone.
    fn replace_thread(&self, session_id: &str, thread: &str, messages: &[RawMessage])
    -> Result<()>;

    /// Replaces the state (`None` = undefined), leaving threads alone.
    fn set_state(&self, session_id: &str, state: Option<&RawValue>) -> Result<()>;

    /// Removes a session. Returns whether it existed.
    fn delete(&self, session_id: &str) -> Result<bool>;
}
