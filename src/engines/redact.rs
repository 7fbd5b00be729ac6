//! Connection strings as error messages may show them: every password masked, and text
//! that cannot be split into its parts not shown at all.
//!
//! Only strings that failed to parse reach these functions, so they must assume the worst:
//! a password with an unencoded `/` or `@`, a URL whose host is missing, a secret pasted
//! where the URL goes.

/// What is shown for text that cannot be told apart from a password.
const HIDDEN: &str = "<not shown: it may hold a password>";

/// The keywords of libpq's `key=value` form that never hold a secret.
const PLAIN_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "options",
    "application_name",
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "sslmode",
    "target_session_attrs",
    "load_balance_hosts",
    "channel_binding",
];

/// A URL (`scheme://user:password@host/...?password=...`) with its password masked, in the
/// user info (everything up to the *last* `@`, as the clients read it) and in `password` /
/// `pass` query parameters. Text with no `scheme://` is not shown.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return HIDDEN.to_owned();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    let (authority, tail) = match rest.rfind('@') {
        Some(at) => {
            let (userinfo, tail) = rest.split_at(at);
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            (format!("{user}{masked}"), tail)
        }
        None => {
            // No user info: a `:` not followed by a port alone may start a password whose
            // `@host` is missing (`redis://:s3cret`).
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            match authority.rsplit_once(':') {
                Some((host, port)) if !port.chars().all(|c| c.is_ascii_digit()) => {
                    (format!("{host}:***"), tail)
                }
                _ => (authority.to_owned(), tail),
            }
        }
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _))
                        if key.eq_ignore_ascii_case("password")
                            || key.eq_ignore_ascii_case("pass") =>
                    {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&");
            format!("{path}?{query}")
        }
        None => tail.to_owned(),
    };
    format!("{head}{authority}{tail}")
}

/// A PostgreSQL DSN, URL or `key=value` form, with its password masked. A `key=value` text
/// is shown only when every key is a libpq keyword (`password` masked): anything else may
/// be a pasted secret (`c2VjcmV0==` reads as a key and a value).
pub fn redact_dsn(dsn: &str) -> String {
    if dsn.contains("://") {
        return redact_url(dsn);
    }
    let shown = key_value_pairs(dsn)
        .filter(|pairs| !pairs.is_empty())
        .and_then(|pairs| {
            pairs
                .into_iter()
                .map(|(key, value)| {
                    if key.eq_ignore_ascii_case("password") {
                        Some(format!("{key}=***"))
                    } else if PLAIN_KEYWORDS.contains(&key) {
                        Some(format!("{key}={value}"))
                    } else {
                        None
                    }
                })
                .collect::<Option<Vec<_>>>()
        });
    shown.map_or_else(|| HIDDEN.to_owned(), |pairs| pairs.join(" "))
}

/// libpq's `key=value` form split into (key, raw value): `key = value`, values unquoted (up
/// to whitespace, `\` escaping the next character) or in single quotes with backslash
/// escapes. `None` if it is not that form.
fn key_value_pairs(dsn: &str) -> Option<Vec<(&str, &str)>> {
    let mut pairs = Vec::new();
    let mut rest = dsn.trim_start();
    while !rest.is_empty() {
        let key_end = rest.find(|c: char| c == '=' || c.is_whitespace())?;
        let key = &rest[..key_end];
        if key.is_empty() {
            return None;
        }
        rest = rest[key_end..].trim_start().strip_prefix('=')?.trim_start();
        let quoted = rest.starts_with('\'');
        let mut escaped = false;
        let mut end = None;
        for (at, c) in rest.char_indices().skip(usize::from(quoted)) {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if quoted && c == '\'' {
                end = Some(at + 1);
                break;
            } else if !quoted && c.is_whitespace() {
                end = Some(at);
                break;
            }
        }
        let end = match end {
            Some(end) => end,
            None if !quoted => rest.len(),
            None => return None, // an unterminated quote
        };
        pairs.push((key, &rest[..end]));
        rest = rest[end..].trim_start();
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_wherever_they_are_written() {
        for (text, shown) in [
            (
                "postgresql://bob:s3cret@db:5432/app",
                "postgresql://bob:***@db:5432/app",
            ),
            ("postgresql://db/app", "postgresql://db/app"),
            (
                "postgresql://bob:pa/ss@db:x/app",
                "postgresql://bob:***@db:x/app",
            ),
            (
                "postgresql://bob:p@ss@db/app",
                "postgresql://bob:***@db/app",
            ),
            ("postgresql://bob:s3cret", "postgresql://bob:***"),
            ("redis://:s3cret", "redis://:***"),
            ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
            (
                "postgresql://db/app?user=u&password=s3cret",
                "postgresql://db/app?user=u&password=***",
            ),
            (
                "unix:///s.sock?db=1&pass=s3cret",
                "unix:///s.sock?db=1&pass=***",
            ),
            (
                "host=db password=s3cret user=bob",
                "host=db password=*** user=bob",
            ),
            (
                "host=db password = s3cret port=x",
                "host=db password=*** port=x",
            ),
            (
                "host=db password='s3 cret' port=x",
                "host=db password=*** port=x",
            ),
            (r"password='it\'s s3cret' host=db", "password=*** host=db"),
            (r"password=a\ s3cret host=db", "password=*** host=db"),
            ("host=db port=5432", "host=db port=5432"),
        ] {
            assert_eq!(redact_dsn(text), shown, "{text}");
        }
    }

    #[test]
    fn text_that_may_be_a_pasted_secret_is_not_shown() {
        for text in [
            "s3cret",
            "c3NlY3JldA==",
            "host=db password='s3cret",
            "=s3cret",
            "host=db s3cret=x",
        ] {
            assert_eq!(redact_dsn(text), HIDDEN, "{text}");
        }
        // A Redis URL is never key=value text.
        assert_eq!(redact_url("host=db port=1"), HIDDEN);
    }

    #[test]
    fn no_text_makes_it_panic() {
        for text in [
            "",
            "://",
            "a://@",
            "é=ü 'ß",
            "x='\\",
            "k=\\",
            "://:é",
            "h:é@",
        ] {
            let _ = redact_dsn(text);
            let _ = redact_url(text);
        }
    }
}
