//! Session ids and thread names: validated once, before any store touches disk.

use crate::errors::{Error, Result};

/// Longest accepted session id, in UTF-8 bytes.
pub const MAX_SESSION_ID_BYTES: usize = 1024;
/// Longest accepted thread name, in UTF-8 bytes.
pub const MAX_THREAD_BYTES: usize = 1024;

/// Checks a session id and returns it trimmed, as JS `createSession` trims.
///
/// Rejected: empty (after trimming), longer than [`MAX_SESSION_ID_BYTES`], control
/// characters (NUL included), path separators, and the path components `.` and `..`.
/// Such ids could escape a file store's directory or be mangled by a database driver.
pub fn validate_session_id(raw: &str) -> Result<&str> {
    let reject = |reason| {
        Err(Error::InvalidSessionId {
            id: truncate_for_message(raw),
            reason,
        })
    };
    let id = raw.trim();
    if id.is_empty() {
        return reject("it is empty");
    }
    if id.len() > MAX_SESSION_ID_BYTES {
        return reject("it is longer than 1024 bytes");
    }
    if id.chars().any(char::is_control) {
        return reject("it contains a control character (such as NUL)");
    }
    if id.contains(['/', '\\']) {
        return reject("it contains a path separator");
    }
    if id == "." || id == ".." {
        return reject("it is a relative path component");
    }
    Ok(id)
}

/// Checks a thread name: non-empty, bounded, no control characters.
pub fn validate_thread(thread: &str) -> Result<&str> {
    let reject = |reason| {
        Err(Error::InvalidThread {
            thread: truncate_for_message(thread),
            reason,
        })
    };
    if thread.is_empty() {
        return reject("it is empty");
    }
    if thread.len() > MAX_THREAD_BYTES {
        return reject("it is longer than 1024 bytes");
    }
    if thread.chars().any(char::is_control) {
        return reject("it contains a control character");
    }
    Ok(thread)
}

/// Error messages quote the offending value; a 1 MiB id should not become a 1 MiB message.
fn truncate_for_message(value: &str) -> String {
    const LIMIT: usize = 64;
    if value.len() <= LIMIT {
        return value.to_owned();
    }
    let mut end = LIMIT;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_like_js() {
        assert_eq!(validate_session_id("  abc  ").unwrap(), "abc");
    }

    #[test]
    fn rejects_hostile_ids() {
        let long = "x".repeat(1025);
        for bad in [
            "",
            "   ",
            "../x",
            "/abs",
            "a\0b",
            "a\\b",
            "..",
            ".",
            "a\nb",
            long.as_str(),
        ] {
            assert!(validate_session_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn accepts_ordinary_ids() {
        for ok in ["abc", "user:42", "3f1c-uuid", "ünïcødé", "a.b", "..x"] {
            assert_eq!(validate_session_id(ok).unwrap(), ok);
        }
        assert!(validate_session_id(&"x".repeat(1024)).is_ok());
    }

    #[test]
    fn long_ids_are_shortened_in_messages() {
        let err = validate_session_id(&"y".repeat(5000))
            .unwrap_err()
            .to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn thread_names() {
        assert!(validate_thread("main").is_ok());
        assert!(validate_thread("").is_err());
        assert!(validate_thread("a\0").is_err());
    }
}
