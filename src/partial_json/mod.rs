//! Incremental partial-JSON parsing for genkit's structured output formats.
//!
//! genkit 0.12 re-parses the whole accumulated model output on every streamed chunk
//! (`extract_json`: a json5 attempt, a character scan, then `partial_json_parser`), which is
//! quadratic in the length of the output. The types here keep their state per stream, so a
//! chunk costs time proportional to the new text plus building the value handed back:
//!
//! * [`parser::PushParser`] — a push parser for strict JSON containers whose partial value
//!   follows `partial_json_parser`'s rules (what genkit shows for an unfinished document);
//! * [`extract::JsonExtractor`] — genkit's `extract_json` for a growing text: preamble and code
//!   fences before the first `{`/`[`, then the push parser;
//! * [`items::ArrayItems`] — genkit's `extract_json_array_from_text` for the `array` format.
//!
//! Anything outside strict JSON (single quotes, comments, trailing commas, top-level scalars, ...)
//! is reported as [`extract::Outcome::Oracle`]: the Python layer then asks genkit's own
//! pure-Python functions, so results stay identical to genkit's on every input.

pub mod extract;
pub mod items;
pub mod parser;
pub mod py;
pub mod text;
pub mod value;

#[cfg(test)]
mod tests;
