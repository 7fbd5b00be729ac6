//! genkit's `extract_json`, for a text that grows chunk by chunk.
//!
//! genkit 0.12 (`genkit/_core/_extract_json.py`) reads model output in three steps: the whole
//! stripped text through `json5`; else the first `{` or `[` outside double-quoted text and, if
//! its brackets balance, `json5` on that slice; else `partial_json_parser` from that bracket
//! on. [`JsonExtractor`] keeps the scan state and a [`PushParser`] from the opening bracket, so
//! a chunk is read once. Where the result could differ from a strict-JSON reading (the text may
//! be a json5 scalar, or the document is not strict JSON) it answers [`Outcome::Oracle`] for
//! the rest of the stream and the caller asks genkit's own function.

use super::parser::{PushParser, Status};
use super::text::is_python_space;
use super::value::{JsonValue, View};

/// What the text received so far amounts to.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// No JSON has started: genkit returns None (or raises when asked to throw).
    Nothing,
    /// An unfinished document, as `partial_json_parser` completes it.
    Partial(View<'a>),
    /// The first JSON document in the text, finished (read as `json5` reads it).
    Complete(&'a JsonValue),
    /// Outside strict JSON: only genkit's own parser gives its exact answer.
    Oracle,
}

/// Words `json5` reads as a whole value; text starting with one might be exactly that value.
const JSON5_WORDS: [&str; 5] = ["true", "false", "null", "Infinity", "NaN"];

/// Decides from the first non-blank characters whether `json5.loads` could accept the whole
/// stripped text as a scalar value (then genkit's first step, not the scan, decides).
#[derive(Debug, Default)]
enum Lead {
    /// Only blanks so far.
    #[default]
    Blank,
    /// Could still become one of [`JSON5_WORDS`].
    Word(String),
    /// Cannot be a json5 scalar.
    Plain,
    /// Might be one: defer to genkit.
    Scalar,
}

impl Lead {
    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            match self {
                Lead::Plain | Lead::Scalar => return,
                Lead::Blank if is_lead_space(c) => {}
                Lead::Blank => {
                    *self = if "\"'0123456789+-./".contains(c) {
                        Lead::Scalar
                    } else {
                        Lead::Word(String::new())
                    };
                    if let Lead::Word(_) = self {
                        self.feed_word(c);
                    }
                }
                Lead::Word(_) => self.feed_word(c),
            }
        }
    }

    fn feed_word(&mut self, c: char) {
        let Lead::Word(word) = self else { return };
        word.push(c);
        *self = if JSON5_WORDS.iter().any(|w| word.starts_with(w)) {
            Lead::Scalar
        } else if JSON5_WORDS.iter().any(|w| w.starts_with(word.as_str())) {
            return;
        } else {
            Lead::Plain
        };
    }
}

/// Python's `str.isspace()` (what `str.strip()` removes), plus the BOM json5 also skips;
/// treating more as blank only ever sends more texts to genkit.
fn is_lead_space(c: char) -> bool {
    is_python_space(c) || c == '\u{feff}'
}

/// genkit's scan for the opening bracket: double quotes toggle "in a string" and a backslash
/// skips the next character, anywhere in the text.
#[derive(Debug, Default)]
struct OpenerScan {
    in_string: bool,
    escape_next: bool,
}

impl OpenerScan {
    /// The byte offset of the first `{` or `[` genkit would take as the start of the JSON.
    fn find(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            if self.escape_next {
                self.escape_next = false;
            } else if b == b'\\' {
                self.escape_next = true;
            } else if b == b'"' {
                self.in_string = !self.in_string;
            } else if !self.in_string && (b == b'{' || b == b'[') {
                return Some(i);
            }
        }
        None
    }
}

/// `extract_json` over a text received in pieces.
#[derive(Default)]
pub struct JsonExtractor {
    lead: Lead,
    scan: OpenerScan,
    parser: Option<PushParser>,
    oracle: bool,
}

impl JsonExtractor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `delta` to the text and says what the whole text now amounts to.
    pub fn push(&mut self, delta: &str) -> Outcome<'_> {
        if !self.oracle {
            self.read(delta);
        }
        self.outcome()
    }

    fn read(&mut self, delta: &str) {
        self.lead.feed(delta);
        if matches!(self.lead, Lead::Scalar) {
            self.oracle = true;
            return;
        }
        let rest = match &self.parser {
            Some(_) => delta,
            None => match self.scan.find(delta.as_bytes()) {
                Some(at) => {
                    self.parser = Some(PushParser::new());
                    &delta[at..]
                }
                None => return,
            },
        };
        let parser = self.parser.as_mut().expect("started above");
        if let Status::Invalid { .. } = parser.push(rest) {
            self.oracle = true;
        }
    }

    /// What the text received so far amounts to.
    pub fn outcome(&self) -> Outcome<'_> {
        if self.oracle {
            return Outcome::Oracle;
        }
        match &self.parser {
            None => Outcome::Nothing,
            Some(parser) => match parser.value() {
                Some(done) => Outcome::Complete(done),
                None => Outcome::Partial(parser.partial().expect("the opener was read")),
            },
        }
    }
}
