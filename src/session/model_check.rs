//! Property test: random operation sequences against every store agree with a plain model,
//! including after the store is reopened from disk.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::value::RawValue;

use super::data::{RawMessage, SessionData};
use super::file::FileStore;
use super::memory::MemoryStore;
use super::sqlite::SqliteStore;
use super::store::SessionStore;

#[derive(Debug, Clone)]
enum Op {
    Append {
        session: u8,
        thread: u8,
        texts: Vec<u16>,
    },
    Replace {
        session: u8,
        thread: u8,
        texts: Vec<u16>,
    },
    State {
        session: u8,
        value: Option<u16>,
    },
    Save {
        session: u8,
    },
    Delete {
        session: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let texts = prop::collection::vec(any::<u16>(), 0..4);
    prop_oneof![
        4 => (0..3u8, 0..3u8, texts.clone()).prop_map(|(session, thread, texts)| Op::Append { session, thread, texts }),
        1 => (0..3u8, 0..3u8, texts).prop_map(|(session, thread, texts)| Op::Replace { session, thread, texts }),
        2 => (0..3u8, prop::option::of(any::<u16>())).prop_map(|(session, value)| Op::State { session, value }),
        1 => (0..3u8).prop_map(|session| Op::Save { session }),
        1 => (0..3u8).prop_map(|session| Op::Delete { session }),
    ]
}

fn message(text: u16) -> RawMessage {
    RawValue::from_string(format!(
        r#"{{"role":"user","content":[{{"text":"m{text}"}}]}}"#
    ))
    .unwrap()
}

/// What a session should hold: state, and threads in first-written order.
#[derive(Debug, Clone, Default, PartialEq)]
struct Expected {
    state: Option<String>,
    threads: Vec<(String, Vec<String>)>,
}

impl Expected {
    fn thread(&mut self, name: &str) -> &mut Vec<String> {
        if let Some(index) = self.threads.iter().position(|(n, _)| n == name) {
            return &mut self.threads[index].1;
        }
        self.threads.push((name.to_owned(), Vec::new()));
        &mut self.threads.last_mut().unwrap().1
    }

    fn to_data(&self, id: &str) -> SessionData {
        let mut data = SessionData::empty(id);
        data.state = self
            .state
            .clone()
            .map(|s| RawValue::from_string(s).unwrap());
        for (name, texts) in &self.threads {
            let messages = texts
                .iter()
                .map(|t| RawValue::from_string(t.clone()).unwrap())
                .collect();
            data.threads.insert(name.clone(), messages);
        }
        data
    }
}

fn observed(data: &SessionData) -> Expected {
    Expected {
        state: data.state.as_ref().map(|s| s.get().to_owned()),
        threads: data
            .threads
            .iter()
            .map(|(name, messages)| {
                (
                    name.clone(),
                    messages.iter().map(|m| m.get().to_owned()).collect(),
                )
            })
            .collect(),
    }
}

fn apply(store: &dyn SessionStore, model: &mut BTreeMap<String, Expected>, op: &Op) {
    match op {
        Op::Append {
            session,
            thread,
            texts,
        } => {
            let id = format!("s{session}");
            let messages: Vec<_> = texts.iter().map(|t| message(*t)).collect();
            store.append(&id, &format!("t{thread}"), &messages).unwrap();
            if !messages.is_empty() {
                let entry = model.entry(id).or_default();
                entry
                    .thread(&format!("t{thread}"))
                    .extend(messages.iter().map(|m| m.get().to_owned()));
            }
        }
        Op::Replace {
            session,
            thread,
            texts,
        } => {
            let id = format!("s{session}");
            let messages: Vec<_> = texts.iter().map(|t| message(*t)).collect();
            store
                .replace_thread(&id, &format!("t{thread}"), &messages)
                .unwrap();
            *model.entry(id).or_default().thread(&format!("t{thread}")) =
                messages.iter().map(|m| m.get().to_owned()).collect();
        }
        Op::State { session, value } => {
            let id = format!("s{session}");
            let state = value.map(|v| format!(r#"{{"v":{v}}}"#));
            let raw = state.clone().map(|s| RawValue::from_string(s).unwrap());
            store.set_state(&id, raw.as_deref()).unwrap();
            model.entry(id).or_default().state = state;
        }
        Op::Save { session } => {
            let id = format!("s{session}");
            let expected = model.get(&id).cloned().unwrap_or_default();
            store.save(&expected.to_data(&id)).unwrap();
            model.insert(id, expected);
        }
        Op::Delete { session } => {
            let id = format!("s{session}");
            assert_eq!(store.delete(&id).unwrap(), model.remove(&id).is_some());
        }
    }
}

fn check(store: &dyn SessionStore, model: &BTreeMap<String, Expected>, name: &str) {
    for session in 0..3 {
        let id = format!("s{session}");
        let got = store.load(&id).unwrap().map(|data| observed(&data));
        assert_eq!(got.as_ref(), model.get(&id), "{name}: session {id}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_store_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let file_dir = dir.path().join("files");
        let db = dir.path().join("db.sqlite");
        let stores: Vec<(&str, Arc<dyn SessionStore>)> = vec![
            ("memory", Arc::new(MemoryStore::new())),
            ("file", Arc::new(FileStore::open(&file_dir, false).unwrap())),
            ("sqlite", Arc::new(SqliteStore::open(&db, false).unwrap())),
        ];
        for (name, store) in &stores {
            let mut model = BTreeMap::new();
            for op in &ops {
                apply(store.as_ref(), &mut model, op);
            }
            check(store.as_ref(), &model, name);
            // Reopened from disk, the persistent stores hold the same.
            match *name {
                "file" => check(&FileStore::open(&file_dir, false).unwrap(), &model, "file reopened"),
                "sqlite" => check(&SqliteStore::open(&db, false).unwrap(), &model, "sqlite reopened"),
                _ => {}
            }
        }
    }
}
