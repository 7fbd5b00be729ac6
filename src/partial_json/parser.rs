//! A push parser for one strict JSON container, fed in pieces.
//!
//! Each byte is looked at once: finished values are built as they complete, so feeding a
//! chunk costs time proportional to the chunk. [`PushParser::partial`] describes the value
//! so far the way `partial_json_parser` completes an unfinished document.

use super::text::{Text, is_python_space};
use super::value::{JsonValue, Number, View};

/// Deeper documents are handed back to genkit's Python path (which has its own recursion
/// limit), so nothing here recurses without bound.
pub const MAX_DEPTH: usize = 512;

/// Longer numbers are handed back to genkit (Python's default int limit is 4,300 digits).
pub const MAX_NUMBER_LEN: usize = 4_000;

/// Where the parser stands after a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Valid so far, not finished.
    Incomplete,
    /// The top-level container closed; `end` is the byte offset just after it.
    Complete { end: usize },
    /// Not strict JSON (or nested deeper than [`MAX_DEPTH`]) at byte offset `at`.
    Invalid { at: usize },
}

enum Frame {
    Array(Vec<JsonValue>),
    Object {
        members: Vec<(Text, JsonValue)>,
        /// The key whose value is being read.
        key: Option<Text>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The first byte: `{` or `[`.
    Opener,
    /// Just after `[`.
    ValueOrClose,
    /// After `,` in an array or `:` in an object.
    Value,
    /// After a value.
    CommaOrClose,
    /// Just after `{`.
    KeyOrClose,
    /// After `,` in an object.
    Key,
    /// After a key.
    Colon,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    Unicode { digits: u8, unit: u16 },
}

/// JSON number grammar, one state per position.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

enum Token {
    None,
    Str {
        text: Text,
        escape: Escape,
        is_key: bool,
        /// Bytes of raw whitespace ending the text so far: `partial_json_parser` strips its
        /// input, so an open string does not show them (they count once the string goes on).
        ws_tail: usize,
    },
    Number {
        raw: String,
        state: Num,
    },
    Literal {
        word: &'static [u8],
        matched: usize,
        value: JsonValue,
    },
}

struct Invalid;

/// Parses one JSON object or array from a stream of text pieces.
pub struct PushParser {
    stack: Vec<Frame>,
    /// A serial number per open container (parallel to `stack`): lets a caller that caches
    /// converted children per container tell a new container from the one it has seen.
    frame_ids: Vec<u64>,
    next_frame_id: u64,
    token: Token,
    expect: Expect,
    done: Option<JsonValue>,
    status: Status,
    /// Bytes consumed before the current push.
    offset: usize,
}

impl Default for PushParser {
    fn default() -> Self {
        Self::new()
    }
}

impl PushParser {
    pub fn new() -> Self {
        PushParser {
            stack: Vec::new(),
            frame_ids: Vec::new(),
            next_frame_id: 0,
            token: Token::None,
            expect: Expect::Opener,
            done: None,
            status: Status::Incomplete,
            offset: 0,
        }
    }

    /// Parses `text` in one go: the finished value, or the status saying why not.
    pub fn parse_complete(text: &str) -> Result<(JsonValue, usize), Status> {
        let mut parser = PushParser::new();
        match parser.push(text) {
            Status::Complete { end } => Ok((parser.done.take().expect("complete"), end)),
            other => Err(other),
        }
    }

    /// Feeds the next piece of the document. Text after the end of the container is not read.
    pub fn push(&mut self, input: &str) -> Status {
        if self.status != Status::Incomplete {
            return self.status;
        }
        let bytes = input.as_bytes();
        let mut i = 0;
        while i < bytes.len() && self.done.is_none() {
            match self.step(bytes, i) {
                Ok(next) => i = next,
                Err(Invalid) => {
                    self.status = Status::Invalid {
                        at: self.offset + i,
                    };
                    return self.status;
                }
            }
        }
        if self.done.is_some() {
            self.status = Status::Complete {
                end: self.offset + i,
            };
        }
        self.offset += i;
        self.status
    }

    /// The finished document, once [`Status::Complete`].
    pub fn value(&self) -> Option<&JsonValue> {
        self.done.as_ref()
    }

    /// The document so far, as `partial_json_parser` would complete it; None before the
    /// opening bracket.
    pub fn partial(&self) -> Option<View<'_>> {
        if let Some(done) = &self.done {
            return Some(View::Value(done));
        }
        if self.stack.is_empty() {
            return None;
        }
        Some(self.frame_view(0))
    }

    fn frame_view(&self, index: usize) -> View<'_> {
        let child = || {
            if index + 1 < self.stack.len() {
                Some(Box::new(self.frame_view(index + 1)))
            } else {
                self.token_view().map(Box::new)
            }
        };
        let id = self.frame_ids[index];
        match &self.stack[index] {
            Frame::Array(items) => View::Array {
                id,
                items,
                tail: child(),
            },
            Frame::Object { members, key } => View::Object {
                id,
                members,
                tail: key.as_ref().and_then(|k| child().map(|v| (k, v))),
            },
        }
    }

    fn token_view(&self) -> Option<View<'_>> {
        match &self.token {
            Token::None => None,
            Token::Str { is_key: true, .. } => None,
            Token::Str { text, ws_tail, .. } => Some(View::PartialString {
                text,
                len: text.len() - ws_tail,
            }),
            Token::Number { raw, .. } => {
                let readable = raw.trim_end_matches(['.', '-', '+', 'e', 'E']);
                if readable.is_empty() || readable == "-" {
                    None
                } else {
                    Some(View::Scalar(JsonValue::Number(Number::from_json_text(
                        readable,
                    ))))
                }
            }
            Token::Literal { value, .. } => Some(View::Scalar(value.clone())),
        }
    }

    /// Consumes input from `bytes[i]`, returning where to continue.
    fn step(&mut self, bytes: &[u8], i: usize) -> Result<usize, Invalid> {
        match &mut self.token {
            Token::Str { .. } => return self.string_bytes(bytes, i),
            Token::Number { raw, state } => {
                let b = bytes[i];
                if matches!(b, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E') {
                    // Python refuses to convert ints this long (sys.get_int_max_str_digits),
                    // and genkit's handling of that differs by path: let genkit decide.
                    if raw.len() >= MAX_NUMBER_LEN {
                        return Err(Invalid);
                    }
                    *state = next_num(*state, b).ok_or(Invalid)?;
                    raw.push(b as char);
                    return Ok(i + 1);
                }
                if !matches!(state, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits) {
                    return Err(Invalid);
                }
                let number = Number::from_json_text(raw);
                self.token = Token::None;
                self.complete_value(JsonValue::Number(number));
                return Ok(i); // the terminator is read as usual below
            }
            Token::Literal {
                word,
                matched,
                value,
            } => {
                if bytes[i] != word[*matched] {
                    return Err(Invalid);
                }
                *matched += 1;
                if *matched == word.len() {
                    let value = std::mem::replace(value, JsonValue::Null);
                    self.token = Token::None;
                    self.complete_value(value);
                }
                return Ok(i + 1);
            }
            Token::None => {}
        }
        let b = bytes[i];
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            return Ok(i + 1);
        }
        match self.expect {
            Expect::Opener => match b {
                b'{' | b'[' => self.open(b)?,
                _ => return Err(Invalid),
            },
            Expect::ValueOrClose if b == b']' => self.close(),
            Expect::ValueOrClose | Expect::Value => self.start_value(b)?,
            Expect::CommaOrClose => match (b, self.stack.last()) {
                (b',', Some(Frame::Array(_))) => self.expect = Expect::Value,
                (b',', Some(Frame::Object { .. })) => self.expect = Expect::Key,
                (b']', Some(Frame::Array(_))) | (b'}', Some(Frame::Object { .. })) => self.close(),
                _ => return Err(Invalid),
            },
            Expect::KeyOrClose if b == b'}' => self.close(),
            Expect::KeyOrClose | Expect::Key => {
                if b != b'"' {
                    return Err(Invalid);
                }
                self.token = Token::Str {
                    text: Text::default(),
                    escape: Escape::None,
                    is_key: true,
                    ws_tail: 0,
                };
            }
            Expect::Colon => {
                if b != b':' {
                    return Err(Invalid);
                }
                self.expect = Expect::Value;
            }
        }
        Ok(i + 1)
    }

    fn open(&mut self, b: u8) -> Result<(), Invalid> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Invalid);
        }
        self.frame_ids.push(self.next_frame_id);
        self.next_frame_id += 1;
        if b == b'{' {
            self.stack.push(Frame::Object {
                members: Vec::new(),
                key: None,
            });
            self.expect = Expect::KeyOrClose;
        } else {
            self.stack.push(Frame::Array(Vec::new()));
            self.expect = Expect::ValueOrClose;
        }
        Ok(())
    }

    fn start_value(&mut self, b: u8) -> Result<(), Invalid> {
        self.token = match b {
            b'{' | b'[' => return self.open(b),
            b'"' => Token::Str {
                text: Text::default(),
                escape: Escape::None,
                is_key: false,
                ws_tail: 0,
            },
            b'-' | b'0'..=b'9' => Token::Number {
                raw: (b as char).to_string(),
                state: match b {
                    b'-' => Num::Minus,
                    b'0' => Num::Zero,
                    _ => Num::Int,
                },
            },
            b't' => literal(b"true", JsonValue::Bool(true)),
            b'f' => literal(b"false", JsonValue::Bool(false)),
            b'n' => literal(b"null", JsonValue::Null),
            _ => return Err(Invalid),
        };
        Ok(())
    }

    fn close(&mut self) {
        self.frame_ids.pop();
        let value = match self.stack.pop().expect("close with an open frame") {
            Frame::Array(items) => JsonValue::Array(items),
            Frame::Object { members, .. } => JsonValue::Object(members),
        };
        if self.stack.is_empty() {
            self.done = Some(value);
        } else {
            self.complete_value(value);
        }
    }

    fn complete_value(&mut self, value: JsonValue) {
        match self.stack.last_mut() {
            Some(Frame::Array(items)) => items.push(value),
            Some(Frame::Object { members, key }) => {
                members.push((key.take().expect("a value follows its key"), value));
            }
            None => unreachable!("values only complete inside a container"),
        }
        self.expect = Expect::CommaOrClose;
    }

    /// Reads string bytes from `bytes[i]` up to the closing quote or the end of the piece.
    fn string_bytes(&mut self, bytes: &[u8], mut i: usize) -> Result<usize, Invalid> {
        let Token::Str {
            text,
            escape,
            ws_tail,
            ..
        } = &mut self.token
        else {
            unreachable!("called inside a string");
        };
        while i < bytes.len() {
            match *escape {
                Escape::None => {
                    let run = bytes[i..]
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                        .unwrap_or(bytes.len() - i);
                    // Runs stop only at ASCII bytes, so they are whole UTF-8 sequences.
                    let piece = &bytes[i..i + run];
                    text.push_utf8(piece);
                    let piece = std::str::from_utf8(piece).expect("a run of a &str");
                    let kept = piece.trim_end_matches(is_python_space).len();
                    *ws_tail = if kept == 0 {
                        *ws_tail + run
                    } else {
                        run - kept
                    };
                    i += run;
                    match bytes.get(i) {
                        None => break,
                        Some(b'"') => {
                            return Ok(self.finish_string(i + 1));
                        }
                        Some(b'\\') => {
                            *escape = Escape::Backslash;
                            *ws_tail = 0; // the raw text now ends in a backslash
                        }
                        Some(_) => return Err(Invalid), // raw control character
                    }
                }
                Escape::Backslash => {
                    let decoded = match bytes[i] {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            *escape = Escape::Unicode { digits: 0, unit: 0 };
                            i += 1;
                            continue;
                        }
                        _ => return Err(Invalid),
                    };
                    text.push_str(decoded.encode_utf8(&mut [0u8; 4]));
                    *escape = Escape::None;
                    *ws_tail = 0;
                }
                Escape::Unicode { digits, unit } => {
                    let digit = (bytes[i] as char).to_digit(16).ok_or(Invalid)?;
                    let unit = (unit << 4) | digit as u16;
                    if digits == 3 {
                        text.push_code_unit(unit);
                        *ws_tail = 0;
                        *escape = Escape::None;
                    } else {
                        *escape = Escape::Unicode {
                            digits: digits + 1,
                            unit,
                        };
                    }
                }
            }
            i += 1;
        }
        Ok(i)
    }

    fn finish_string(&mut self, next: usize) -> usize {
        let Token::Str { text, is_key, .. } = std::mem::replace(&mut self.token, Token::None)
        else {
            unreachable!("called inside a string");
        };
        if is_key {
            if let Some(Frame::Object { key, .. }) = self.stack.last_mut() {
                *key = Some(text);
            }
            self.expect = Expect::Colon;
        } else {
            self.complete_value(JsonValue::String(text));
        }
        next
    }
}

fn literal(word: &'static [u8], value: JsonValue) -> Token {
    Token::Literal {
        word,
        matched: 1,
        value,
    }
}

/// The number state after byte `b`, or None if `b` cannot come next.
fn next_num(state: Num, b: u8) -> Option<Num> {
    Some(match (state, b) {
        (Num::Minus, b'0') => Num::Zero,
        (Num::Minus, b'1'..=b'9') => Num::Int,
        (Num::Int, b'0'..=b'9') => Num::Int,
        (Num::Zero | Num::Int, b'.') => Num::Dot,
        (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Num::Exp,
        (Num::Dot | Num::Frac, b'0'..=b'9') => Num::Frac,
        (Num::Exp, b'+' | b'-') => Num::ExpSign,
        (Num::Exp | Num::ExpSign | Num::ExpDigits, b'0'..=b'9') => Num::ExpDigits,
        _ => return None,
    })
}
