//! Document ids as JS dev-local-vectorstore computes them: the md5 of the embedding
//! document's `JSON.stringify` text (compact, JS key order and number text, UTF-8 bytes).
//! The embedding is not part of the id, so the first write of a document wins.

use md5::{Digest, Md5};
use serde_json::Value;

use super::jsjson;

/// A row id: 16 md5 bytes, shown as 32 lowercase hex digits (the JS file's keys).
pub type DocId = [u8; 16];

/// The text JS hashes for a document, from any JSON text of it (Python's `1.0` becomes `1`).
/// `Err` carries serde_json's message when `doc_json` is not JSON.
pub fn canonical_doc_json(doc_json: &str) -> std::result::Result<(String, Value), String> {
    let value: Value = serde_json::from_str(doc_json).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("a document must be a JSON object".into());
    }
    Ok((jsjson::to_compact(&value), value))
}

/// The elements of a JSON array of documents, each as its own JSON text (not re-encoded:
/// [`canonical_doc_json`] does that per document). `Err` carries serde_json's message.
pub fn split_doc_array(array_json: &str) -> std::result::Result<Vec<String>, String> {
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(array_json).map_err(|e| e.to_string())?;
    Ok(items.into_iter().map(|raw| raw.get().to_owned()).collect())
}

/// The id of a document given its canonical text.
pub fn doc_id(canonical: &str) -> DocId {
    Md5::digest(canonical.as_bytes()).into()
}

/// 32 lowercase hex digits.
pub fn to_hex(id: &DocId) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for byte in id {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 15)] as char);
    }
    out
}

/// Parses 32 hex digits (either case).
pub fn from_hex(text: &str) -> Option<DocId> {
    let bytes = text.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut id = [0u8; 16];
    for (i, slot) in id.iter_mut().enumerate() {
        *slot = nibble(bytes[2 * i])? << 4 | nibble(bytes[2 * i + 1])?;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(doc_json: &str) -> String {
        let (canonical, _) = canonical_doc_json(doc_json).expect("doc");
        to_hex(&doc_id(&canonical))
    }

    /// The ids in rag.md §2.1, verified against ts-md5 / observed from JS.
    #[test]
    fn ids_match_javascript() {
        let cases = [
            (
                r#"{"content":[{"text":"aaa"}],"metadata":{"src":1}}"#,
                "44215990ebe501ee3dee68fac034f131",
            ),
            (
                r#"{"content":[{"text":"bbb"}]}"#,
                "615810d9e26e082236497e14a564bc47",
            ),
            (
                r#"{"content":[{"text":"aaa"}],"metadata":{"src":2}}"#,
                "cb15353ccfc1c8ed5e1a8ca27ab7705f",
            ),
            (
                r#"{"content":[{"text":"abc"}]}"#,
                "1c32efdb61e7f5823f27a4babf472886",
            ),
            (
                r#"{"content":[{"text":"ccc"}]}"#,
                "e6ccbb45343f2864c8b7e1b8a4913dd0",
            ),
            (
                r#"{"content":[{"text":"aab"}]}"#,
                "5b594685f0143abe515c561f40e68587",
            ),
            (
                r#"{"content":[{"text":"ab"}],"metadata":{"embedMetadata":{"part":0}}}"#,
                "7f9d6c477d0e99f3190e3f6743ff066a",
            ),
            (
                r#"{"content":[{"text":"ab"}],"metadata":{"embedMetadata":{"part":1}}}"#,
                "d04136bed9e45f77bb36b4692471d2e4",
            ),
        ];
        for (doc, id) in cases {
            assert_eq!(id_of(doc), id, "{doc}");
        }
    }

    #[test]
    fn python_float_text_and_spacing_hash_as_javascript() {
        // json.dumps writes `1.0` and spaces; JS hashes `1` with no spaces.
        assert_eq!(
            id_of(r#"{"content": [{"text": "aaa"}], "metadata": {"src": 1.0}}"#),
            "44215990ebe501ee3dee68fac034f131"
        );
    }

    #[test]
    fn hex_round_trips() {
        let id = doc_id("x");
        assert_eq!(from_hex(&to_hex(&id)), Some(id));
        assert_eq!(from_hex(&to_hex(&id).to_uppercase()), Some(id));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(32)), None);
    }

    #[test]
    fn non_objects_are_rejected() {
        assert!(canonical_doc_json("[1]").is_err());
        assert!(canonical_doc_json("{").is_err());
    }
}
