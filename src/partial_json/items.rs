//! genkit's streamed `array` format, chunk by chunk.
//!
//! genkit 0.12's chunk parser calls `extract_json_array_from_text` twice per chunk: once on
//! the previous text to find its cursor (just after the last object it could read), then from
//! that cursor on the whole text; the chunk's items are the `{...}` objects read in between.
//! Both calls restart from the beginning, so a stream costs O(n²). [`ArrayItems`] keeps that
//! scan's state instead: each chunk only scans its own text.

/// The object scan of `extract_json_array_from_text`, resumable. Brace counting is signed and
/// a failed object leaves its start in place, exactly as genkit's loop does.
#[derive(Clone, Debug)]
struct ObjectScan {
    /// Next byte to read.
    pos: usize,
    braces: i64,
    in_string: bool,
    escape_next: bool,
    object_start: Option<usize>,
    /// Hit the array's closing `]`.
    stopped: bool,
}

impl ObjectScan {
    fn at(pos: usize) -> Self {
        ObjectScan {
            pos,
            braces: 0,
            in_string: false,
            escape_next: false,
            object_start: None,
            stopped: false,
        }
    }

    /// Reads `text[self.pos..]`, parsing each top-level `{...}` with `parse`.
    fn run<T>(&mut self, text: &str, parse: &mut impl FnMut(&str) -> Option<T>) -> Vec<T> {
        let mut items = Vec::new();
        let bytes = text.as_bytes();
        while !self.stopped && self.pos < bytes.len() {
            let i = self.pos;
            self.pos += 1;
            let b = bytes[i];
            if self.escape_next {
                self.escape_next = false;
                continue;
            }
            match b {
                b'\\' => self.escape_next = true,
                b'"' => self.in_string = !self.in_string,
                _ if self.in_string => {}
                b'{' => {
                    if self.braces == 0 {
                        self.object_start = Some(i);
                    }
                    self.braces += 1;
                }
                b'}' => {
                    self.braces -= 1;
                    if self.braces == 0
                        && let Some(start) = self.object_start
                        && let Some(item) = parse(&text[start..=i])
                    {
                        items.push(item);
                        self.object_start = None;
                    }
                }
                b']' if self.braces == 0 => self.stopped = true,
                _ => {}
            }
        }
        items
    }
}

/// The `array` format's per-chunk items for one stream.
#[derive(Debug, Default)]
pub struct ArrayItems {
    text: String,
    /// The scan genkit's cursor comes from; None until the text holds a `[`.
    cursor_scan: Option<ObjectScan>,
}

impl ArrayItems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk's text and returns the items genkit reports for that chunk.
    /// `parse` reads one `{...}` slice (None where genkit's json5 raises).
    pub fn push<T>(&mut self, delta: &str, parse: &mut impl FnMut(&str) -> Option<T>) -> Vec<T> {
        let previous_len = self.text.len();
        self.text.push_str(delta);
        if let Some(scan) = &mut self.cursor_scan {
            return scan.run(&self.text, parse);
        }
        let Some(open) = self.text.find('[') else {
            if previous_len == 0 {
                return Vec::new();
            }
            // No '[' before this chunk: genkit resumes at the old end of the text without
            // looking for one.
            return ObjectScan::at(previous_len).run(&self.text, parse);
        };
        let mut scan = ObjectScan::at(open + 1);
        if previous_len == 0 {
            let items = scan.run(&self.text, parse);
            self.cursor_scan = Some(scan);
            return items;
        }
        // The '[' arrived in this chunk after text without one: this chunk's items come from
        // scanning the new text; later chunks continue from the scan genkit's cursor uses.
        let items = ObjectScan::at(previous_len).run(&self.text, parse);
        scan.run(&self.text, parse);
        self.cursor_scan = Some(scan);
        items
    }
}
