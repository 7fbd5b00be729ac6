//! The session data model: JS `SessionData` (`{id, state?, threads}`), kept as raw JSON.
//!
//! Messages and state are opaque to the core: they are validated as JSON on the way in and
//! written back byte for byte, never re-encoded. That keeps a turn's cost proportional to
//! the new messages, not to the history.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::errors::{Error, Result};

/// One stored message (`MessageData` JSON).
pub type RawMessage = Box<RawValue>;

/// Thread name → full message list, in the order threads were first written.
pub type Threads = IndexMap<String, Vec<RawMessage>>;

/// A whole session, exactly the JSON JS Genkit 1.38 stores.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionData {
    pub id: String,
    /// `None` is JS `undefined`: the key is left out of the JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Box<RawValue>>,
    #[serde(default)]
    pub threads: Threads,
}

impl SessionData {
    /// An empty session: no state, no threads.
    pub fn empty(id: &str) -> Self {
        SessionData {
            id: id.to_owned(),
            state: None,
            threads: Threads::new(),
        }
    }

    /// Parses a whole session as handed in by a caller (`save`).
    pub fn from_json(session_id: &str, json: &str) -> Result<Self> {
        let mut data: SessionData = serde_json::from_str(json).map_err(|e| Error::InvalidJson {
            what: format!("session data for {session_id:?}"),
            detail: e.to_string(),
        })?;
        // The store key wins over whatever id the payload carries, as JS `save(id, data)` does.
        session_id.clone_into(&mut data.id);
        Ok(data)
    }

    pub fn to_json(&self) -> String {
        // Serialising raw values and strings cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("raw JSON always serialises"))
    }
}

/// Validates caller-supplied message JSON without re-encoding it.
pub fn parse_messages(session_id: &str, messages: Vec<String>) -> Result<Vec<RawMessage>> {
    messages
        .into_iter()
        .enumerate()
        .map(|(i, text)| parse_message(session_id, i, text))
        .collect()
}

fn parse_message(session_id: &str, index: usize, text: String) -> Result<RawMessage> {
    json_object(text).map_err(|detail| Error::InvalidJson {
        what: format!("message {index} for session {session_id:?}"),
        detail,
    })
}

/// `text` as a raw JSON object, or why it is not one (the check for messages from callers
/// and from stores alike; they differ in the error they report).
fn json_object(text: String) -> std::result::Result<RawMessage, String> {
    let raw = RawValue::from_string(text).map_err(|e| e.to_string())?;
    if raw.get().starts_with('{') {
        Ok(raw)
    } else {
        Err("a message must be a JSON object".into())
    }
}

/// A session as a store holds it, messages and state still JSON text (not yet validated):
/// what a shared store reads in one round trip, for a caller that parses it anyway.
#[derive(Debug, Default)]
pub struct StoredSession {
    pub version: u64,
    pub state: Option<String>,
    /// Thread name and its messages, threads in creation order.
    pub threads: Vec<(String, Vec<String>)>,
}

impl StoredSession {
    /// Validates every message and the state: a stored value that is not what we write is
    /// `Corrupt`, naming where it is.
    pub fn into_data(self, session_id: &str) -> Result<(SessionData, u64)> {
        let mut data = SessionData::empty(session_id);
        data.state = self
            .state
            .map(|text| {
                RawValue::from_string(text).map_err(|e| Error::corrupt(session_id, "state", e))
            })
            .transpose()?;
        for (thread, texts) in self.threads {
            let messages = texts
                .into_iter()
                .enumerate()
                .map(|(i, text)| stored_message(session_id, &thread, i, text))
                .collect::<Result<Vec<_>>>()?;
            data.threads.insert(thread, messages);
        }
        Ok((data, self.version))
    }
}

/// Checks one message read back from a store (`index` is its place in the thread).
pub fn stored_message(
    session_id: &str,
    thread: &str,
    index: usize,
    text: String,
) -> Result<RawMessage> {
    json_object(text).map_err(|detail| {
        Error::corrupt(
            session_id,
            format!("thread {thread:?}, message {index}"),
            detail,
        )
    })
}

/// Validates caller-supplied state JSON (any JSON value).
pub fn parse_state(session_id: &str, state: Option<String>) -> Result<Option<Box<RawValue>>> {
    state
        .map(|text| {
            RawValue::from_string(text).map_err(|e| Error::InvalidJson {
                what: format!("state for session {session_id:?}"),
                detail: e.to_string(),
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_js_shape() {
        let json = r#"{"id":"s","state":{"foo":"bar"},"threads":{"main":[{"role":"user","content":[{"text":"hi"}]}]}}"#;
        let data = SessionData::from_json("s", json).unwrap();
        assert_eq!(data.to_json(), json);
    }

    #[test]
    fn undefined_state_is_left_out() {
        let data = SessionData::empty("nope");
        assert_eq!(data.to_json(), r#"{"id":"nope","threads":{}}"#);
    }

    #[test]
    fn store_key_wins_over_payload_id() {
        let data = SessionData::from_json("a", r#"{"id":"b","threads":{}}"#).unwrap();
        assert_eq!(data.id, "a");
    }

    #[test]
    fn rejects_bad_messages() {
        assert!(parse_messages("s", vec!["{".into()]).is_err());
        assert!(parse_messages("s", vec!["[1]".into()]).is_err());
        assert!(parse_messages("s", vec![r#"{"role":"user"}"#.into()]).is_ok());
        assert!(parse_state("s", Some("nope".into())).is_err());
    }
}
