//! Decoded JSON string text that may hold lone surrogates.
//!
//! JSON's `\uD83D` escapes can name UTF-16 surrogates, and Python strings can hold them
//! (`json.loads('"\\ud83d"')` is a one-character str). Rust strings cannot, so decoded text is
//! kept as WTF-8-style bytes: valid UTF-8 except that a surrogate escape is stored as its
//! three-byte generalized UTF-8 form. Python decodes those bytes with `surrogatepass`.

/// Decoded string contents (WTF-8 when `has_surrogates`, plain UTF-8 otherwise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text {
    bytes: Vec<u8>,
    has_surrogates: bool,
}

/// How a surrogate pair written as two escapes is decoded.
///
/// genkit finishes complete documents with `json5`, which keeps `\ud83d\ude00` as two lone
/// surrogates, and unfinished ones with `json`, which joins them into one character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surrogates {
    /// Keep every escaped surrogate as its own code point (json5).
    Separate,
    /// Join a high surrogate directly followed by a low one (Python's json).
    Paired,
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        let mut text = Text::default();
        text.push_str(s);
        text
    }
}

impl Text {
    /// Appends ordinary UTF-8 text.
    pub fn push_str(&mut self, s: &str) {
        self.bytes.extend_from_slice(s.as_bytes());
    }

    /// Appends bytes already known to be UTF-8 (a slice of a `&str` input).
    pub(crate) fn push_utf8(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Appends the character (or lone surrogate) a `\uXXXX` escape names.
    pub fn push_code_unit(&mut self, unit: u16) {
        match char::from_u32(u32::from(unit)) {
            Some(c) => {
                let mut buf = [0u8; 4];
                self.bytes
                    .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            None => {
                self.has_surrogates = true;
                self.bytes.extend_from_slice(&encode_surrogate(unit));
            }
        }
    }

    /// The text as UTF-8, when it holds no surrogate.
    pub fn as_str(&self) -> Option<&str> {
        if self.has_surrogates {
            None
        } else {
            // Only ever filled from `&str` slices and `char`s.
            std::str::from_utf8(&self.bytes).ok()
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether some escape named a surrogate.
    pub fn has_surrogates(&self) -> bool {
        self.has_surrogates
    }

    /// The WTF-8 bytes, with surrogate pairs joined or not; for Python's `surrogatepass`.
    pub fn wtf8(&self, surrogates: Surrogates) -> std::borrow::Cow<'_, [u8]> {
        self.wtf8_prefix(self.bytes.len(), surrogates)
    }

    /// [`Text::wtf8`] of the first `len` bytes (a boundary the parser recorded).
    pub fn wtf8_prefix(&self, len: usize, surrogates: Surrogates) -> std::borrow::Cow<'_, [u8]> {
        let bytes = &self.bytes[..len];
        if !self.has_surrogates || surrogates == Surrogates::Separate {
            return std::borrow::Cow::Borrowed(bytes);
        }
        std::borrow::Cow::Owned(join_pairs(bytes))
    }
}

/// Python's `str.isspace()`: what `str.strip()` removes.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Generalized UTF-8 for a surrogate code unit (always three bytes, lead byte 0xED).
fn encode_surrogate(unit: u16) -> [u8; 3] {
    let u = u32::from(unit);
    [
        0xE0 | (u >> 12) as u8,
        0x80 | ((u >> 6) & 0x3F) as u8,
        0x80 | (u & 0x3F) as u8,
    ]
}

/// The surrogate encoded at `bytes[i..i + 3]`, if any.
fn surrogate_at(bytes: &[u8], i: usize) -> Option<u32> {
    match bytes.get(i..i + 3) {
        Some(&[0xED, b1, b2]) if b1 >= 0xA0 => {
            Some(0xD000 | (u32::from(b1 & 0x3F) << 6) | u32::from(b2 & 0x3F))
        }
        _ => None,
    }
}

fn join_pairs(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(high @ 0xD800..=0xDBFF) = surrogate_at(bytes, i)
            && let Some(low @ 0xDC00..=0xDFFF) = surrogate_at(bytes, i + 3)
        {
            let cp = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            let c = char::from_u32(cp).expect("a surrogate pair names a valid scalar value");
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += 6;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
