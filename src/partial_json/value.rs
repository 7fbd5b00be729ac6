//! Parsed JSON values, and views of a document that is still arriving.

use super::text::Text;

/// A JSON number as Python's `json`/`json5` would return it.
#[derive(Clone, Debug, PartialEq)]
pub enum Number {
    /// An integer that fits in i64.
    Int(i64),
    /// An integer literal too large for i64 (Python makes an `int` of any size).
    BigInt(String),
    /// Anything with a fraction or exponent (`1e3` is a float, as in Python).
    Float(f64),
}

impl Number {
    /// Reads a number whose text is valid JSON number syntax.
    pub fn from_json_text(text: &str) -> Number {
        if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
            // Correctly rounded like Python's float(); overflow gives +-inf like Python.
            Number::Float(text.parse().unwrap_or(f64::NAN))
        } else {
            match text.parse() {
                Ok(i) => Number::Int(i),
                Err(_) => Number::BigInt(text.to_owned()),
            }
        }
    }
}

/// A complete JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonValue {
    Null,
    Bool(bool),
    Number(Number),
    String(Text),
    Array(Vec<JsonValue>),
    /// Members in document order; a repeated key keeps its first position and last value
    /// once inserted into a Python dict, as `json.loads` does.
    Object(Vec<(Text, JsonValue)>),
}

/// What an unfinished document currently amounts to, borrowing from the parser.
///
/// Mirrors `partial_json_parser`: finished members and items as they are, then the one
/// member or item being written, cut back to what can already be read.
#[derive(Debug)]
pub enum View<'a> {
    /// A finished value.
    Value(&'a JsonValue),
    /// An array still open: finished items, then maybe an unfinished one.
    Array {
        /// Unique per container within one parser.
        id: u64,
        items: &'a [JsonValue],
        tail: Option<Box<View<'a>>>,
    },
    /// An object still open: finished members, then maybe an unfinished one.
    Object {
        /// Unique per container within one parser.
        id: u64,
        members: &'a [(Text, JsonValue)],
        tail: Option<(&'a Text, Box<View<'a>>)>,
    },
    /// A string still open: the first `len` bytes of its text so far (no half-written
    /// escape, no trailing raw whitespace).
    PartialString { text: &'a Text, len: usize },
    /// A number or literal still being written, read as far as it goes (`1.` is 1, `tr` is true).
    Scalar(JsonValue),
}
