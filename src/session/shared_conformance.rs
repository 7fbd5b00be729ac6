//! The versioned-commit behaviour, run against the shared stores (Redis and PostgreSQL of
//! the machine; `make services` starts them). Each test uses its own key/table prefix and
//! removes what it wrote.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::value::RawValue;

use super::data::{RawMessage, SessionData};
use super::postgres::PostgresStore;
use super::redis::RedisStore;
use super::store::{Commit, OnConflict, SessionStore, StateWrite, ThreadDelta, ThreadWriteKind};
use crate::engines::block_on;
use crate::engines::postgres::{PgOptions, Postgres};
use crate::engines::redis::{Redis, RedisOptions, Retry};
use crate::errors::Error;

const REDIS: &str = "redis://127.0.0.1:6379/0";
const PG: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Both stores with a fresh prefix; dropping it removes their data.
struct Pair {
    redis_prefix: String,
    pg_prefix: String,
    stores: Vec<(&'static str, Box<dyn SessionStore>)>,
}

impl Pair {
    fn new(on_conflict: OnConflict, ttl: Option<Duration>) -> Pair {
        let id = unique();
        let redis_prefix = format!("gp-test-{id}");
        let pg_prefix = format!("gp_test_{id}_");
        let stores: Vec<(&'static str, Box<dyn SessionStore>)> = vec![
            (
                "redis",
                Box::new(
                    RedisStore::open(
                        REDIS,
                        &redis_prefix,
                        ttl,
                        on_conflict,
                        RedisOptions::default(),
                    )
                    .unwrap(),
                ),
            ),
            (
                "postgres",
                Box::new(
                    PostgresStore::open(PG, &pg_prefix, ttl, on_conflict, PgOptions::default())
                        .unwrap(),
                ),
            ),
        ];
        Pair {
            redis_prefix,
            pg_prefix,
            stores,
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        Redis::open(REDIS, RedisOptions::default())
            .unwrap()
            .delete_matching(&format!("{}:*", self.redis_prefix));
        let pg = Postgres::open(PG, PgOptions::default()).unwrap();
        let p = &self.pg_prefix;
        let _ = block_on(pg.run(async |c| {
            c.batch_execute(&format!(
                "DROP TABLE IF EXISTS {p}session_messages, {p}session_turns, {p}session_threads, {p}sessions;
                 DROP FUNCTION IF EXISTS {p}session_commit"
            ))
            .await?;
            Ok(())
        }));
    }
}

fn msg(text: &str) -> RawMessage {
    RawValue::from_string(format!(
        r#"{{"role":"user","content":[{{"text":"{text}"}}]}}"#
    ))
    .unwrap()
}

fn texts(messages: &[RawMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_str(m.get()).unwrap();
            v["content"][0]["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn turn(turn_id: &str, expected: u64, thread: &str, loaded: usize, new: &[&str]) -> Commit {
    Commit {
        turn_id: Some(turn_id.to_owned()),
        expected_version: expected,
        threads: vec![ThreadDelta {
            thread: thread.to_owned(),
            loaded_len: loaded,
            kind: ThreadWriteKind::Append,
            messages: new.iter().map(|t| msg(t)).collect(),
        }],
        state: StateWrite::Keep,
    }
}

#[test]
fn whole_sessions_round_trip_byte_for_byte() {
    let pair = Pair::new(OnConflict::Append, None);
    let json = r#"{"id":"s1","state":{"foo":"bar","n":1.50},"threads":{"main":[{"role":"user","content":[{"text":"hi"}]}],"other":[]}}"#;
    for (name, store) in &pair.stores {
        assert!(store.load("s1").unwrap().is_none(), "{name}");
        store
            .save(&SessionData::from_json("s1", json).unwrap())
            .unwrap();
        assert_eq!(store.load("s1").unwrap().unwrap().to_json(), json, "{name}");
        // A second whole save replaces threads and state.
        store
            .save(&SessionData::from_json("s1", r#"{"id":"s1","threads":{"b":[]}}"#).unwrap())
            .unwrap();
        assert_eq!(
            store.load("s1").unwrap().unwrap().to_json(),
            r#"{"id":"s1","threads":{"b":[]}}"#,
            "{name}"
        );
        assert!(store.delete("s1").unwrap(), "{name}");
        assert!(!store.delete("s1").unwrap(), "{name}");
        assert!(store.load("s1").unwrap().is_none(), "{name}");
    }
}

#[test]
fn stale_writers_append_after_what_landed_and_see_it() {
    let pair = Pair::new(OnConflict::Append, None);
    for (name, store) in &pair.stores {
        let first = store
            .commit("s", &turn("t1", 0, "main", 0, &["a1", "a2"]))
            .unwrap();
        assert_eq!(first.version, 1, "{name}");
        assert!(first.threads[0].1.is_empty(), "{name}");
        // A writer that also loaded version 0 (empty): its turn goes after t1's.
        let second = store
            .commit("s", &turn("t2", 0, "main", 0, &["b1", "b2"]))
            .unwrap();
        assert_eq!(second.version, 2, "{name}");
        assert_eq!(
            texts(&second.threads[0].1),
            ["a1", "a2"],
            "{name}: the gap it had not seen"
        );
        let (data, version) = store.load_versioned("s").unwrap().unwrap();
        assert_eq!(version, 2, "{name}");
        assert_eq!(
            texts(&data.threads["main"]),
            ["a1", "a2", "b1", "b2"],
            "{name}"
        );
    }
}

#[test]
fn error_mode_refuses_stale_writes() {
    let pair = Pair::new(OnConflict::Error, None);
    for (name, store) in &pair.stores {
        store
            .commit("s", &turn("t1", 0, "main", 0, &["a"]))
            .unwrap();
        let err = store
            .commit("s", &turn("t2", 0, "main", 0, &["b"]))
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{name}: {err}");
        let ok = store
            .commit("s", &turn("t2", 1, "main", 1, &["b"]))
            .unwrap();
        assert_eq!(ok.version, 2, "{name}");
        let data = store.load("s").unwrap().unwrap();
        assert_eq!(texts(&data.threads["main"]), ["a", "b"], "{name}");
    }
}

#[test]
fn a_repeated_turn_id_is_stored_once() {
    let pair = Pair::new(OnConflict::Append, None);
    for (name, store) in &pair.stores {
        store
            .commit("s", &turn("t1", 0, "main", 0, &["a"]))
            .unwrap();
        let again = store
            .commit("s", &turn("t1", 0, "main", 0, &["a"]))
            .unwrap();
        assert!(again.duplicate, "{name}");
        assert_eq!(again.version, 1, "{name}");
        assert_eq!(
            texts(&again.threads[0].1),
            ["a"],
            "{name}: the tail, its own turn included"
        );
        let (data, version) = store.load_versioned("s").unwrap().unwrap();
        assert_eq!(
            (texts(&data.threads["main"]), version),
            (vec!["a".to_owned()], 1),
            "{name}"
        );
    }
}

#[test]
fn a_vanished_session_is_lost_not_rebuilt() {
    let pair = Pair::new(OnConflict::Append, None);
    for (name, store) in &pair.stores {
        let err = store
            .commit("gone", &turn("t9", 7, "main", 4, &["x"]))
            .unwrap_err();
        assert!(matches!(err, Error::SessionLost { .. }), "{name}: {err}");
        assert!(err.to_string().contains("\"gone\""), "{name}: {err}");
        assert!(
            store.load("gone").unwrap().is_none(),
            "{name}: nothing was written"
        );
    }
}

#[test]
fn a_replace_conflicts_even_in_append_mode() {
    let pair = Pair::new(OnConflict::Append, None);
    for (name, store) in &pair.stores {
        store
            .commit("s", &turn("t1", 0, "main", 0, &["a"]))
            .unwrap();
        store
            .commit("s", &turn("t2", 1, "main", 1, &["b"]))
            .unwrap();
        let mut replace = turn("t3", 1, "main", 1, &["sys", "a"]);
        replace.threads[0].kind = ThreadWriteKind::Replace;
        let err = store.commit("s", &replace).unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{name}: {err}");
        replace.expected_version = 2;
        store.commit("s", &replace).unwrap();
        assert_eq!(
            texts(&store.load("s").unwrap().unwrap().threads["main"]),
            ["sys", "a"],
            "{name}"
        );
    }
}

#[test]
fn state_patches_from_stale_writers_merge_key_by_key() {
    let pair = Pair::new(OnConflict::Append, None);
    for (name, store) in &pair.stores {
        for (i, key) in ["k0", "k1"].iter().enumerate() {
            let commit = Commit {
                turn_id: Some(format!("s{i}")),
                expected_version: 0,
                threads: Vec::new(),
                state: StateWrite::Merge(
                    RawValue::from_string(format!(r#"{{"{key}":{i}}}"#)).unwrap(),
                ),
            };
            store.commit("s", &commit).unwrap();
        }
        let state = store.load("s").unwrap().unwrap().state.unwrap();
        let state: serde_json::Value = serde_json::from_str(state.get()).unwrap();
        assert_eq!(state, serde_json::json!({"k0": 0, "k1": 1}), "{name}");
    }
}

#[test]
fn sessions_expire_after_their_ttl() {
    let pair = Pair::new(OnConflict::Append, Some(Duration::from_millis(500)));
    for (name, store) in &pair.stores {
        store
            .commit("s", &turn("t1", 0, "main", 0, &["a"]))
            .unwrap();
        assert!(store.load("s").unwrap().is_some(), "{name}");
    }
    std::thread::sleep(Duration::from_millis(900));
    for (name, store) in &pair.stores {
        assert!(
            store.load("s").unwrap().is_none(),
            "{name}: expired reads as unknown"
        );
        let err = store
            .commit("s", &turn("t2", 1, "main", 1, &["b"]))
            .unwrap_err();
        assert!(matches!(err, Error::SessionLost { .. }), "{name}: {err}");
    }
}

#[test]
fn records_written_by_something_else_are_data_loss() {
    let pair = Pair::new(OnConflict::Append, None);
    for (_, store) in &pair.stores {
        store
            .commit("s", &turn("t1", 0, "main", 0, &["a"]))
            .unwrap();
    }
    let redis = Redis::open(REDIS, RedisOptions::default()).unwrap();
    let list = format!("{}:s:{{s}}:t:0", pair.redis_prefix);
    block_on(redis.run(Retry::Safe, async |conn| {
        redis::cmd("RPUSH")
            .arg(&list)
            .arg("not json")
            .query_async::<i64>(conn)
            .await
    }))
    .unwrap();
    let pg = Postgres::open(PG, PgOptions::default()).unwrap();
    let table = format!("{}session_messages", pair.pg_prefix);
    block_on(pg.run(async |c| {
        c.batch_execute(&format!(
            "INSERT INTO {table} (session_id, thread, seq, version, message) VALUES ('s', 'main', 1, 1, '\"x\"')"
        ))
        .await?;
        Ok(())
    }))
    .unwrap();
    for (name, store) in &pair.stores {
        let err = store.load("s").unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{name}: {err}");
        assert!(err.to_string().contains("message 1"), "{name}: {err}");
    }
}

#[test]
fn hostile_ids_stay_in_their_own_keys() {
    let pair = Pair::new(OnConflict::Append, None);
    for (name, store) in &pair.stores {
        // `a}:t:0` would collide with a's first thread list without escaping.
        store
            .commit("a", &turn("t1", 0, "main", 0, &["mine"]))
            .unwrap();
        store
            .commit("a}:t:0", &turn("t2", 0, "x", 0, &["theirs"]))
            .unwrap();
        store
            .commit("%7D'; DROP TABLE x;--", &turn("t3", 0, "main", 0, &["q"]))
            .unwrap();
        assert_eq!(
            texts(&store.load("a").unwrap().unwrap().threads["main"]),
            ["mine"],
            "{name}"
        );
        assert_eq!(
            texts(&store.load("a}:t:0").unwrap().unwrap().threads["x"]),
            ["theirs"],
            "{name}"
        );
        assert_eq!(
            texts(
                &store
                    .load("%7D'; DROP TABLE x;--")
                    .unwrap()
                    .unwrap()
                    .threads["main"]
            ),
            ["q"],
            "{name}"
        );
    }
}

#[test]
fn concurrent_writers_lose_nothing_and_keep_turns_whole() {
    let pair = Pair::new(OnConflict::Append, None);
    for (name, store) in &pair.stores {
        std::thread::scope(|scope| {
            for w in 0..4 {
                let store = &**store;
                scope.spawn(move || {
                    let (mut version, mut len) = (0, 0);
                    for i in 0..10 {
                        let (u, m) = (format!("u{w}.{i}"), format!("m{w}.{i}"));
                        let done = store
                            .commit(
                                "s",
                                &turn(&format!("{w}.{i}"), version, "main", len, &[&u, &m]),
                            )
                            .unwrap();
                        version = done.version;
                        len += done.threads[0].1.len() + 2;
                    }
                });
            }
        });
        let (data, version) = store.load_versioned("s").unwrap().unwrap();
        let all = texts(&data.threads["main"]);
        assert_eq!((all.len(), version), (80, 40), "{name}");
        for pair in all.chunks(2) {
            assert_eq!(pair[0][1..], pair[1][1..], "{name}: a turn split: {pair:?}");
        }
    }
}
