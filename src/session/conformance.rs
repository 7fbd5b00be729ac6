//! One behaviour suite, run against every built-in store.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::data::{RawMessage, SessionData};
use super::file::FileStore;
use super::memory::MemoryStore;
use super::sqlite::SqliteStore;
use super::store::{Commit, SessionStore, StateWrite, ThreadDelta, ThreadWriteKind};
use crate::errors::Error;

fn msg(text: &str) -> RawMessage {
    RawValue::from_string(format!(
        r#"{{"role":"user","content":[{{"text":"{text}"}}]}}"#
    ))
    .unwrap()
}

fn texts(data: &SessionData, thread: &str) -> Vec<String> {
    data.threads[thread]
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_str(m.get()).unwrap();
            v["content"][0]["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn stores(dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn SessionStore>)> {
    vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "file",
            Arc::new(FileStore::open(dir.join("files"), false).unwrap()),
        ),
        (
            "sqlite",
            Arc::new(SqliteStore::open(dir.join("db.sqlite"), false).unwrap()),
        ),
    ]
}

#[test]
fn unknown_session_is_none() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()) {
        assert!(store.load("nope").unwrap().is_none(), "{name}");
        assert!(!store.delete("nope").unwrap(), "{name}");
    }
}

#[test]
fn save_then_load_round_trips_whole_session() {
    let dir = tempfile::tempdir().unwrap();
    let json = r#"{"id":"s1","state":{"foo":"bar"},"threads":{"main":[{"role":"user","content":[{"text":"hi"}]}],"other":[]}}"#;
    for (name, store) in stores(dir.path()) {
        store
            .save(&SessionData::from_json("s1", json).unwrap())
            .unwrap();
        assert_eq!(store.load("s1").unwrap().unwrap().to_json(), json, "{name}");
    }
}

#[test]
fn appends_accumulate_in_order_and_keep_state() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()) {
        let mut data = SessionData::empty("s2");
        data.state = Some(RawValue::from_string(r#"{"n":1}"#.into()).unwrap());
        store.save(&data).unwrap();
        store.append("s2", "main", &[msg("a"), msg("b")]).unwrap();
        store.append("s2", "side", &[msg("x")]).unwrap();
        store.append("s2", "main", &[msg("c")]).unwrap();
        let loaded = store.load("s2").unwrap().unwrap();
        assert_eq!(texts(&loaded, "main"), ["a", "b", "c"], "{name}");
        assert_eq!(texts(&loaded, "side"), ["x"], "{name}");
        assert_eq!(
            loaded.threads.keys().collect::<Vec<_>>(),
            ["main", "side"],
            "{name}"
        );
        assert_eq!(loaded.state.unwrap().get(), r#"{"n":1}"#, "{name}");
    }
}

#[test]
fn append_creates_missing_session() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()) {
        store.append("fresh", "main", &[msg("a")]).unwrap();
        let loaded = store.load("fresh").unwrap().unwrap();
        assert_eq!(texts(&loaded, "main"), ["a"], "{name}");
        assert!(loaded.state.is_none(), "{name}");
    }
}

#[test]
fn replace_thread_and_set_state() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()) {
        store.append("s3", "main", &[msg("a"), msg("b")]).unwrap();
        store.append("s3", "t2", &[msg("keep")]).unwrap();
        store.replace_thread("s3", "main", &[msg("z")]).unwrap();
        let state = RawValue::from_string(r#"{"k":[1,2]}"#.into()).unwrap();
        store.set_state("s3", Some(&state)).unwrap();
        let loaded = store.load("s3").unwrap().unwrap();
        assert_eq!(texts(&loaded, "main"), ["z"], "{name}");
        assert_eq!(texts(&loaded, "t2"), ["keep"], "{name}");
        assert_eq!(loaded.state.unwrap().get(), r#"{"k":[1,2]}"#, "{name}");
        store.set_state("s3", None).unwrap();
        assert!(store.load("s3").unwrap().unwrap().state.is_none(), "{name}");
    }
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.into()).unwrap()
}

/// A turn's commit as the Python session makes it: one thread delta against the writer's
/// copy (`loaded_len` messages, loaded at `expected_version`).
fn thread_commit(
    expected_version: u64,
    kind: ThreadWriteKind,
    loaded_len: usize,
    messages: &[RawMessage],
) -> Commit {
    Commit {
        turn_id: Some("turn".into()),
        expected_version,
        threads: vec![ThreadDelta {
            thread: "main".into(),
            loaded_len,
            kind,
            messages: messages.to_vec(),
        }],
        state: StateWrite::Keep,
    }
}

fn merge_commit(patch: &str) -> Commit {
    Commit {
        turn_id: None,
        expected_version: 0,
        threads: Vec::new(),
        state: StateWrite::Merge(raw(patch)),
    }
}

#[test]
fn stale_writers_append_after_what_landed_and_cannot_replace() {
    use ThreadWriteKind::{Append, Replace};
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()) {
        let done = store
            .commit("r", &thread_commit(0, Append, 0, &[msg("a"), msg("b")]))
            .unwrap();
        assert_eq!(done.version, 1, "{name}");
        // Nobody else wrote: this writer's replace (a new preamble) goes through.
        let replace = thread_commit(1, Replace, 2, &[msg("sys"), msg("b")]);
        assert_eq!(store.commit("r", &replace).unwrap().version, 2, "{name}");
        // Another writer appends; this writer's copy (version 2) is now stale.
        store.append("r", "main", &[msg("theirs")]).unwrap();
        let (_, version) = store.load_versioned("r").unwrap().unwrap();
        assert_eq!(version, 3, "{name}: every write is a version");
        let stale = thread_commit(2, Replace, 2, &[msg("sys2"), msg("b")]);
        let error = store.commit("r", &stale).unwrap_err();
        assert!(
            matches!(&error, Error::Conflict { session_id, detail }
                if session_id == "r" && detail.contains("saved version 3 after this session loaded version 2")),
            "{name}: {error}"
        );
        // Its append lands after what it had not seen, and it is told what that was.
        let done = store
            .commit("r", &thread_commit(2, Append, 2, &[msg("mine")]))
            .unwrap();
        assert_eq!(done.version, 4, "{name}");
        let unseen: Vec<&str> = done.threads[0].1.iter().map(|m| m.get()).collect();
        assert_eq!(unseen, [msg("theirs").get()], "{name}");
        let loaded = store.load("r").unwrap().unwrap();
        assert_eq!(
            texts(&loaded, "main"),
            ["sys", "b", "theirs", "mine"],
            "{name}"
        );
        // An append to a thread that got shorter than the writer's copy is refused.
        store.replace_thread("r", "main", &[msg("z")]).unwrap();
        let error = store
            .commit("r", &thread_commit(4, Append, 4, &[msg("late")]))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("holds 1 messages, fewer than the 4"),
            "{name}: {error}"
        );
        assert_eq!(
            texts(&store.load("r").unwrap().unwrap(), "main"),
            ["z"],
            "{name}"
        );
        // A whole save is a version too.
        let (data, before) = store.load_versioned("r").unwrap().unwrap();
        store.save(&data).unwrap();
        assert_eq!(
            store.load_versioned("r").unwrap().unwrap().1,
            before + 1,
            "{name}"
        );
    }
}

#[test]
fn a_state_merge_keeps_keys_other_writers_stored() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()) {
        store
            .set_state("m", Some(&raw(r#"{"user":"Ada"}"#)))
            .unwrap();
        store.commit("m", &merge_commit(r#"{"k0":1}"#)).unwrap();
        store
            .commit("m", &merge_commit(r#"{"k1":2,"user":"Bo"}"#))
            .unwrap();
        let state = store.load("m").unwrap().unwrap().state.unwrap();
        assert_eq!(state.get(), r#"{"user":"Bo","k0":1,"k1":2}"#, "{name}");
        // A patch that is not an object is refused, and nothing is written.
        assert!(store.commit("m", &merge_commit("[1]")).is_err(), "{name}");
        let again = store.load("m").unwrap().unwrap().state.unwrap();
        assert_eq!(again.get(), state.get(), "{name}");
        // A merge into a session that does not exist yet creates it.
        store.commit("m2", &merge_commit(r#"{"a":1}"#)).unwrap();
        let created = store.load("m2").unwrap().unwrap();
        assert_eq!(created.state.unwrap().get(), r#"{"a":1}"#, "{name}");
    }
}

#[test]
fn concurrent_state_merges_from_two_openings_lose_no_key() {
    // Two openings of one file directory / database stand for two processes.
    let dir = tempfile::tempdir().unwrap();
    let pairs: Vec<(&str, [Arc<dyn SessionStore>; 2])> = vec![
        (
            "file",
            [
                Arc::new(FileStore::open(dir.path().join("f"), false).unwrap()),
                Arc::new(FileStore::open(dir.path().join("f"), false).unwrap()),
            ],
        ),
        (
            "sqlite",
            [
                Arc::new(SqliteStore::open(dir.path().join("d.sqlite"), false).unwrap()),
                Arc::new(SqliteStore::open(dir.path().join("d.sqlite"), false).unwrap()),
            ],
        ),
    ];
    for (name, openings) in pairs {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let store = Arc::clone(&openings[w % 2]);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let patch = format!(r#"{{"k{w}":{i}}}"#);
                        store.commit("keys", &merge_commit(&patch)).unwrap();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        let state = openings[0].load("keys").unwrap().unwrap().state.unwrap();
        let state: serde_json::Value = serde_json::from_str(state.get()).unwrap();
        for w in 0..4 {
            assert_eq!(state[format!("k{w}")], 49, "{name}: {state}");
        }
    }
}

#[test]
fn delete_removes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()) {
        store.append("gone", "main", &[msg("a")]).unwrap();
        assert!(store.delete("gone").unwrap(), "{name}");
        assert!(store.load("gone").unwrap().is_none(), "{name}");
    }
}

#[test]
fn concurrent_appends_from_threads_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()) {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        store
                            .append("busy", "main", &[msg(&format!("{w}-{i}"))])
                            .unwrap();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        let loaded = store.load("busy").unwrap().unwrap();
        let got = texts(&loaded, "main");
        assert_eq!(got.len(), 200, "{name}");
        for w in 0..4 {
            let mine: Vec<_> = got
                .iter()
                .filter(|t| t.starts_with(&format!("{w}-")))
                .collect();
            let want: Vec<_> = (0..50).map(|i| format!("{w}-{i}")).collect();
            assert_eq!(
                mine,
                want.iter().collect::<Vec<_>>(),
                "{name}: per-writer order"
            );
        }
    }
}

#[test]
fn file_store_ignores_and_repairs_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), false).unwrap();
    store.append("torn", "main", &[msg("a")]).unwrap();
    let path = store.log_path("torn");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"op":"append","thread":"main","mess"#);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(texts(&store.load("torn").unwrap().unwrap(), "main"), ["a"]);
    store.append("torn", "main", &[msg("b")]).unwrap();
    assert_eq!(
        texts(&store.load("torn").unwrap().unwrap(), "main"),
        ["a", "b"]
    );
}

#[test]
fn file_store_reports_corrupt_line_naming_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), false).unwrap();
    store.append("bad", "main", &[msg("a")]).unwrap();
    store.append("bad", "main", &[msg("b")]).unwrap();
    let path = store.log_path("bad");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{not json";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = store.load("bad").unwrap_err().to_string();
    assert!(err.contains("\"bad\"") && err.contains("line 2"), "{err}");
}

#[test]
fn file_store_rejects_a_log_of_another_session() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), false).unwrap();
    store.append("one", "main", &[msg("a")]).unwrap();
    std::fs::copy(store.log_path("one"), store.log_path("two")).unwrap();
    let err = store.load("two").unwrap_err().to_string();
    assert!(err.contains("belongs to session \"one\""), "{err}");
}

#[test]
fn file_store_compacts_superseding_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), false).unwrap();
    store.append("c", "main", &[msg("a")]).unwrap();
    for i in 0..40 {
        let state = RawValue::from_string(format!("{{\"i\":{i}}}")).unwrap();
        store.set_state("c", Some(&state)).unwrap();
    }
    let lines = std::fs::read_to_string(store.log_path("c"))
        .unwrap()
        .lines()
        .count();
    assert!(lines < 10, "log was not compacted: {lines} lines");
    let loaded = store.load("c").unwrap().unwrap();
    assert_eq!(loaded.state.as_ref().unwrap().get(), r#"{"i":39}"#);
    assert_eq!(texts(&loaded, "main"), ["a"]);
    // Merge records count too, and compaction keeps every merged key.
    for i in 0..40 {
        store
            .commit("c", &merge_commit(&format!(r#"{{"m{}":{i}}}"#, i % 3)))
            .unwrap();
    }
    let log = std::fs::read_to_string(store.log_path("c")).unwrap();
    assert!(log.lines().count() < 40, "log was not compacted");
    assert!(
        log.contains(r#""op":"merge""#),
        "the last merges stay records"
    );
    let reopened = FileStore::open(dir.path(), false).unwrap();
    let state = reopened.load("c").unwrap().unwrap().state.unwrap();
    assert_eq!(state.get(), r#"{"i":39,"m0":39,"m1":37,"m2":38}"#);
}

#[test]
fn file_store_reads_a_log_older_than_versions_and_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), false).unwrap();
    let m = msg("a");
    let log = format!(
        "{{\"op\":\"snapshot\",\"id\":\"old\",\"threads\":{{\"main\":[{m}]}}}}\n\
         {{\"op\":\"append\",\"thread\":\"main\",\"messages\":[{m}]}}\n",
        m = m.get()
    );
    std::fs::write(store.log_path("old"), log).unwrap();
    let (data, version) = store.load_versioned("old").unwrap().unwrap();
    assert_eq!((texts(&data, "main").len(), version), (2, 2));
    let done = store
        .commit(
            "old",
            &thread_commit(2, ThreadWriteKind::Append, 2, &[msg("b")]),
        )
        .unwrap();
    assert_eq!(done.version, 3);
    let written = std::fs::read_to_string(store.log_path("old")).unwrap();
    assert!(
        written.lines().last().unwrap().contains(r#""v":3"#),
        "{written}"
    );
    assert_eq!(store.load_versioned("old").unwrap().unwrap().1, 3);
}

#[test]
fn file_store_names_unusual_ids_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), false).unwrap();
    let id = "Ünïcode id with spaces and a very long tail".repeat(20);
    store.append(&id, "main", &[msg("a")]).unwrap();
    let name = store
        .log_path(&id)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with('~') && name.len() < 80, "{name}");
    assert_eq!(texts(&store.load(&id).unwrap().unwrap(), "main"), ["a"]);
}

#[test]
fn sqlite_store_reports_corrupt_rows_naming_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = SqliteStore::open(&path, false).unwrap();
    store.append("broken", "main", &[msg("a")]).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE genkit_session_messages SET message = '{oops'", [])
        .unwrap();
    let err = store.load("broken").unwrap_err().to_string();
    assert!(
        err.contains("\"broken\"") && err.contains("corrupt"),
        "{err}"
    );
}

#[test]
fn sqlite_open_rejects_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.sqlite");
    std::fs::write(
        &path,
        b"this is not a database, just text that is long enough........",
    )
    .unwrap();
    assert!(SqliteStore::open(&path, false).is_err());
}
