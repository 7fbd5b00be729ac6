//! JS dev-local-vectorstore's file, `__db_<name>.json`, in and out, so an index moves
//! between JS and Python projects.
//!
//! The file is `{"<md5 id>": {"doc": DocumentData, "embedding": {"embedding": [..],
//! "metadata"?: {..}}}}`, written by JS with `JSON.stringify(data, null, 2)`. Vectors are
//! stored as float32 (what embedding models produce); export writes each value's shortest
//! text that reads back as the same float32, laid out as JS lays out numbers (`3`, not
//! `3.0`), so a JS file of float32 values round-trips byte for byte.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value};

use super::docid;
use super::jsjson;
use super::local::{LocalIndex, NewRow};
use crate::errors::{Error, Result};

fn bad_file(index: &LocalIndex, path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::VectorInvalid {
        index: index.name().to_owned(),
        detail: format!(
            "{} is not a dev-local-vectorstore file: {detail}",
            path.display()
        ),
    }
}

/// Adds every entry of a JS file (keeping its ids); returns how many were new.
pub fn import_js(index: &LocalIndex, path: &Path) -> Result<usize> {
    let text = fs::read_to_string(path).map_err(|e| Error::VectorStorage {
        index: index.name().to_owned(),
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let Value::Object(entries) =
        serde_json::from_str::<Value>(&text).map_err(|e| bad_file(index, path, e))?
    else {
        return Err(bad_file(index, path, "the top level is not an object"));
    };
    let mut prepared = Vec::with_capacity(entries.len());
    for (position, (key, entry)) in entries.into_iter().enumerate() {
        let id = docid::from_hex(&key)
            .ok_or_else(|| bad_file(index, path, format!("key {key:?} is not an md5 id")))?;
        let mut entry = match entry {
            Value::Object(entry) => entry,
            _ => {
                return Err(bad_file(
                    index,
                    path,
                    format!("entry {key} is not an object"),
                ));
            }
        };
        let doc = match entry.remove("doc") {
            Some(doc @ Value::Object(_)) => doc,
            _ => {
                return Err(bad_file(
                    index,
                    path,
                    format!("entry {key} has no \"doc\" object"),
                ));
            }
        };
        let mut embedding = match entry.remove("embedding") {
            Some(Value::Object(e)) => e,
            _ => {
                return Err(bad_file(
                    index,
                    path,
                    format!("entry {key} has no \"embedding\" object"),
                ));
            }
        };
        let vector = match embedding.remove("embedding") {
            Some(Value::Array(values)) => values
                .iter()
                .map(|v| v.as_f64().map(|x| x as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| {
                    bad_file(
                        index,
                        path,
                        format!("entry {key}: an embedding value is not a number"),
                    )
                })?,
            _ => {
                return Err(bad_file(
                    index,
                    path,
                    format!("entry {key} has no embedding array"),
                ));
            }
        };
        let embed_meta = embedding.remove("metadata").map(|m| jsjson::to_compact(&m));
        let row = NewRow {
            doc_json: jsjson::to_compact(&doc),
            embed_meta_json: embed_meta,
            vector,
        };
        prepared.push(index.prepare(position, row, Some(id))?);
    }
    index.add_prepared(prepared)
}

/// Writes the whole index as a JS file (indent 2, JS number text), atomically.
pub fn export_js(index: &LocalIndex, path: &Path) -> Result<usize> {
    let storage = |e: std::io::Error| Error::VectorStorage {
        index: index.name().to_owned(),
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let mut out = String::from("{");
    let mut count = 0usize;
    index.for_each_row(|id, doc, embed_meta, vector| {
        let doc: Value = serde_json::from_str(doc).map_err(|e| Error::Internal(e.to_string()))?;
        let mut embedding = Map::new();
        embedding.insert(
            "embedding".into(),
            Value::Array(vector.iter().map(|&x| f32_value(x)).collect()),
        );
        if let Some(meta) = embed_meta {
            embedding.insert(
                "metadata".into(),
                serde_json::from_str(meta).map_err(|e| Error::Internal(e.to_string()))?,
            );
        }
        let mut entry = Map::new();
        entry.insert("doc".into(), doc);
        entry.insert("embedding".into(), Value::Object(embedding));
        if count > 0 {
            out.push(',');
        }
        out.push_str("\n  ");
        out.push_str(&serde_json::to_string(&docid::to_hex(id)).unwrap_or_default());
        out.push_str(": ");
        jsjson::write_value(&mut out, &Value::Object(entry), Some(2), 1);
        count += 1;
        Ok(())
    })?;
    out.push_str(if count > 0 { "\n}" } else { "}" });
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(out.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(storage(e));
    }
    Ok(count)
}

/// The JSON number whose shortest text is the float32's shortest text.
fn f32_value(x: f32) -> Value {
    jsjson::js_f32_text(x)
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first entry of rag.md §2.1's observed file, plus the two-embedding document.
    const JS_FILE: &str = r#"{
  "44215990ebe501ee3dee68fac034f131": {
    "doc": {
      "content": [
        {
          "text": "aaa"
        }
      ],
      "metadata": {
        "src": 1
      }
    },
    "embedding": {
      "embedding": [
        3,
        0,
        0
      ]
    }
  },
  "7f9d6c477d0e99f3190e3f6743ff066a": {
    "doc": {
      "content": [
        {
          "text": "ab"
        }
      ],
      "metadata": {
        "embedMetadata": {
          "part": 0
        }
      }
    },
    "embedding": {
      "embedding": [
        1,
        1,
        0.25
      ],
      "metadata": {
        "part": 0
      }
    }
  }
}"#;

    #[test]
    fn a_js_file_round_trips_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tmp");
        let js = dir.path().join("__db_facts.json");
        fs::write(&js, JS_FILE).expect("write");
        let index = LocalIndex::open(&dir.path().join("store"), "facts", false).expect("open");
        assert_eq!(import_js(&index, &js).expect("import"), 2);
        assert_eq!(
            import_js(&index, &js).expect("again"),
            0,
            "ids already present"
        );
        let out = dir.path().join("out.json");
        assert_eq!(export_js(&index, &out).expect("export"), 2);
        assert_eq!(fs::read_to_string(&out).expect("read"), JS_FILE);
    }

    #[test]
    fn an_empty_index_exports_an_empty_object() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = LocalIndex::open(dir.path(), "empty", false).expect("open");
        let out = dir.path().join("out.json");
        assert_eq!(export_js(&index, &out).expect("export"), 0);
        assert_eq!(fs::read_to_string(&out).expect("read"), "{}");
    }

    #[test]
    fn malformed_files_are_rejected_naming_the_problem() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = LocalIndex::open(dir.path(), "x", false).expect("open");
        for (text, needle) in [
            ("[]", "top level"),
            (r#"{"nothex": {}}"#, "md5"),
            (
                r#"{"44215990ebe501ee3dee68fac034f131": {"doc": {}, "embedding": {"embedding": ["a"]}}}"#,
                "not a number",
            ),
        ] {
            let path = dir.path().join("bad.json");
            fs::write(&path, text).expect("write");
            let err = import_js(&index, &path).expect_err(text).to_string();
            assert!(err.contains(needle), "{err}");
        }
        assert_eq!(index.len().expect("len"), 0);
    }
}
