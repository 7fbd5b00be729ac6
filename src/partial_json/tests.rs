//! Unit and property tests of the incremental parser. The differential tests against
//! genkit's own Python functions live in tests/test_formats*.py.

use proptest::prelude::*;

use super::extract::{JsonExtractor, Outcome};
use super::items::ArrayItems;
use super::parser::{PushParser, Status};
use super::text::{Surrogates, Text};
use super::value::{JsonValue, Number, View};

/// A finished value as serde_json sees it (strings must be free of lone surrogates).
fn to_serde(value: &JsonValue) -> serde_json::Value {
    match value {
        JsonValue::Null => serde_json::Value::Null,
        JsonValue::Bool(b) => (*b).into(),
        JsonValue::Number(Number::Int(i)) => (*i).into(),
        JsonValue::Number(Number::BigInt(s)) => serde_json::from_str(s).unwrap(),
        JsonValue::Number(Number::Float(f)) => serde_json::Number::from_f64(*f).unwrap().into(),
        JsonValue::String(t) => t.as_str().unwrap().into(),
        JsonValue::Array(items) => items.iter().map(to_serde).collect(),
        JsonValue::Object(members) => members
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().to_owned(), to_serde(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// The partial view flattened to a finished value, for comparisons.
fn view_to_value(view: &View<'_>) -> JsonValue {
    match view {
        View::Value(v) => (*v).clone(),
        View::PartialString { text, len } => {
            JsonValue::String(Text::from(&text.as_str().unwrap()[..*len]))
        }
        View::Scalar(v) => v.clone(),
        View::Array { items, tail, .. } => {
            let mut items = items.to_vec();
            items.extend(tail.as_deref().map(view_to_value));
            JsonValue::Array(items)
        }
        View::Object { members, tail, .. } => {
            let mut members = members.to_vec();
            members.extend(tail.as_ref().map(|(k, v)| ((*k).clone(), view_to_value(v))));
            JsonValue::Object(members)
        }
    }
}

fn partial_of(text: &str) -> Option<serde_json::Value> {
    let mut parser = PushParser::new();
    assert_eq!(parser.push(text), Status::Incomplete, "{text:?}");
    parser.partial().map(|v| to_serde(&view_to_value(&v)))
}

#[test]
fn unfinished_documents_read_like_partial_json_parser() {
    use serde_json::json;
    let cases = [
        (r#"{"a": 1."#, json!({"a": 1})),
        (r#"{"a": tru"#, json!({"a": true})),
        (r#"{"a": {"b": nul"#, json!({"a": {"b": null}})),
        (r#"{"a": -"#, json!({})),
        (r#"[1, -"#, json!([1])),
        (r#"{"a": "x", "b"#, json!({"a": "x"})),
        (r#"[{"a":1},{"b""#, json!([{"a": 1}, {}])),
        (r#"{"a": 1e+"#, json!({"a": 1})),
        (r#"{"a" "#, json!({})),
        (r#"["a\"#, json!(["a"])),
        (r#"{"a":"\u00"#, json!({"a": ""})),
        (r#"[1, 2"#, json!([1, 2])),
        (
            r#"{"a": [], "b": {"c": 1, "d""#,
            json!({"a": [], "b": {"c": 1}}),
        ),
        (r#"{"k": "caf\u00e9 ok"#, json!({"k": "café ok"})),
    ];
    for (text, expected) in cases {
        assert_eq!(partial_of(text), Some(expected), "{text:?}");
    }
}

#[test]
fn surrogate_escapes_keep_python_semantics() {
    let (value, _) = PushParser::parse_complete(r#"["\ud83d\ude00", "\ud83d"]"#).unwrap();
    let JsonValue::Array(items) = value else {
        panic!()
    };
    let JsonValue::String(pair) = &items[0] else {
        panic!()
    };
    assert!(pair.has_surrogates());
    // json5 keeps the two halves; Python's json joins them into one character.
    assert_eq!(pair.wtf8(Surrogates::Separate).len(), 6);
    assert_eq!(&*pair.wtf8(Surrogates::Paired), "😀".as_bytes());
    let JsonValue::String(lone) = &items[1] else {
        panic!()
    };
    assert_eq!(&*lone.wtf8(Surrogates::Paired), b"\xED\xA0\xBD");
}

#[test]
fn rejects_what_strict_json_rejects() {
    for text in [
        "{'a': 1}",
        r#"{"a": 1,}"#,
        "[1,]",
        "[01]",
        "[1.]",
        r#"{"a" 1}"#,
        "[tru ]",
        "[\"a\nb\"]",
        r#"["\x41"]"#,
        "{a: 1}",
        "[NaN]",
        "[+1]",
        "[.5]",
        "// c\n[1]",
        "1",
    ] {
        let mut parser = PushParser::new();
        assert!(
            matches!(parser.push(text), Status::Invalid { .. }),
            "{text:?}"
        );
    }
}

#[test]
fn nesting_deeper_than_the_limit_is_handed_back() {
    let deep = "[".repeat(super::parser::MAX_DEPTH + 1);
    assert!(matches!(
        PushParser::new().push(&deep),
        Status::Invalid { .. }
    ));
    let ok = "[".repeat(super::parser::MAX_DEPTH);
    assert_eq!(PushParser::new().push(&ok), Status::Incomplete);
}

#[test]
fn extractor_skips_preamble_and_fences_and_stops_at_the_end() {
    let mut ex = JsonExtractor::new();
    assert!(matches!(
        ex.push("Here you go:\n```json\n"),
        Outcome::Nothing
    ));
    assert!(matches!(ex.push("{\"a\": [1, 2"), Outcome::Partial(_)));
    match ex.push("]}\n```\nand some \"text {") {
        Outcome::Complete(v) => assert_eq!(to_serde(v), serde_json::json!({"a": [1, 2]})),
        other => panic!("{other:?}"),
    }
}

#[test]
fn extractor_defers_json5_scalars_and_non_strict_documents() {
    for text in ["true", "  12", "'x'", "NaN", "// note\n{}", "{'a': 1}"] {
        assert!(
            matches!(JsonExtractor::new().push(text), Outcome::Oracle),
            "{text:?}"
        );
    }
    for text in ["the answer", "nothing", "Sure: [1"] {
        assert!(
            !matches!(JsonExtractor::new().push(text), Outcome::Oracle),
            "{text:?}"
        );
    }
    // A quote in the preamble hides the brackets after it, as in genkit's scan.
    assert!(matches!(
        JsonExtractor::new().push("say \"hi {\"a\": 1}"),
        Outcome::Nothing
    ));
    assert!(matches!(
        JsonExtractor::new().push("say \"hi\" {\"a\": 1"),
        Outcome::Partial(_)
    ));
}

#[test]
fn array_items_are_reported_once_each() {
    let doc = r#"```json
[{"n": 1}, {"n": "}"}, {"n": 3}]"#;
    let mut items = ArrayItems::new();
    let mut seen = Vec::new();
    for piece in doc.as_bytes().chunks(3) {
        let piece = std::str::from_utf8(piece).unwrap();
        seen.extend(items.push(piece, &mut |s: &str| Some(s.to_owned())));
    }
    assert_eq!(seen, [r#"{"n": 1}"#, r#"{"n": "}"}"#, r#"{"n": 3}"#]);
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(Into::into),
        any::<i64>().prop_map(Into::into),
        (-1e300f64..1e300).prop_map(|f| serde_json::Number::from_f64(f).unwrap().into()),
        "\\PC{0,12}".prop_map(Into::into),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Into::into),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..8)
                .prop_map(|m| m.into_iter().collect::<serde_json::Map<_, _>>().into()),
        ]
    })
}

fn container() -> impl Strategy<Value = serde_json::Value> {
    json_value().prop_filter("a container", |v| v.is_array() || v.is_object())
}

proptest! {
    #[test]
    fn agrees_with_serde_json_on_complete_documents(doc in container(), pretty in any::<bool>(), cuts in prop::collection::vec(0usize..400, 0..6)) {
        let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { doc.to_string() };
        let mut parser = PushParser::new();
        let mut last = 0;
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).filter(|&c| text.is_char_boundary(c)).collect();
        cuts.sort_unstable();
        for cut in cuts.into_iter().chain([text.len()]) {
            let status = parser.push(&text[last..cut]);
            prop_assert!(!matches!(status, Status::Invalid { .. }), "{text:?} at {cut}");
            // Every prefix has a partial reading.
            prop_assert!(cut == 0 || parser.partial().is_some());
            last = cut;
        }
        prop_assert_eq!(parser.push(""), Status::Complete { end: text.len() });
        prop_assert_eq!(to_serde(parser.value().unwrap()), serde_json::from_str::<serde_json::Value>(&text).unwrap());
    }

    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC{0,64}", cuts in prop::collection::vec(0usize..64, 0..8)) {
        let mut parser = PushParser::new();
        let mut ex = JsonExtractor::new();
        let mut items = ArrayItems::new();
        let mut last = 0;
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).filter(|&c| text.is_char_boundary(c)).collect();
        cuts.sort_unstable();
        for cut in cuts.into_iter().chain([text.len()]) {
            let piece = &text[last..cut];
            parser.push(piece);
            let _ = parser.partial().map(|v| view_to_value(&v));
            let _ = ex.push(piece);
            items.push(piece, &mut |s: &str| PushParser::parse_complete(s).ok());
            last = cut;
        }
    }

    #[test]
    fn strict_json_bytes_never_panic(bytes in prop::collection::vec(prop::sample::select(b"{}[]\",:\\ 0123456789.eE+-tfnrul\"ax".to_vec()), 0..80)) {
        let text = String::from_utf8(bytes).unwrap();
        let mut parser = PushParser::new();
        for piece in text.as_bytes().chunks(5) {
            parser.push(std::str::from_utf8(piece).unwrap());
            let _ = parser.partial().map(|v| view_to_value(&v));
        }
    }
}
