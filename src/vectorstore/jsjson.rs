//! JSON text exactly as JavaScript's `JSON.stringify` writes it.
//!
//! Two things differ from serde_json's output: numbers use ECMAScript's `Number#toString`
//! (`1` not `1.0`, `1e+21`, `1e-7`, integers past 2^53 rounded as doubles), and object keys
//! that are array indices (`"0"`, `"17"`) come first in ascending order, as JS objects keep
//! them. Strings are escaped the same way by both (`\n`, `\u001f`, no escaping of `/` or
//! non-ASCII), so serde_json writes them.

use serde_json::{Map, Number, Value};

/// Compact text (`JSON.stringify(value)`).
pub fn to_compact(value: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_value(&mut out, value, None, 0);
    out
}

/// Indented text (`JSON.stringify(value, null, indent)`).
pub fn to_indented(value: &Value, indent: usize) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value, Some(indent), 0);
    out
}

/// Appends `value` to `out`; `indent` is `None` for compact output, `level` the nesting depth.
pub fn write_value(out: &mut String, value: &Value, indent: Option<usize>, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_value(out, item, indent, level + 1);
            }
            newline(out, indent, level);
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, indent, level),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>, indent: Option<usize>, level: usize) {
    if map.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (key, item)) in js_key_order(map).into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline(out, indent, level + 1);
        write_string(out, key);
        out.push(':');
        if indent.is_some() {
            out.push(' ');
        }
        write_value(out, item, indent, level + 1);
    }
    newline(out, indent, level);
    out.push('}');
}

fn newline(out: &mut String, indent: Option<usize>, level: usize) {
    if let Some(width) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', width * level));
    }
}

/// JS property order: array-index keys ascending, then the rest in insertion order.
fn js_key_order(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    if entries.iter().any(|(key, _)| array_index(key).is_some()) {
        // A stable sort keeps insertion order among the non-index keys.
        entries.sort_by_key(|(key, _)| match array_index(key) {
            Some(index) => (0, index),
            None => (1, 0),
        });
    }
    entries
}

/// The index a key denotes when JS treats it as an array index (canonical, < 2^32 - 1).
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if key.len() > 1 && key.starts_with('0') {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|&n| n < u64::from(u32::MAX))
        .map(|n| n as u32)
}

fn write_string(out: &mut String, s: &str) {
    // serde_json's string escaping is JSON.stringify's (see the module doc).
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn write_number(out: &mut String, n: &Number) {
    const SAFE: u64 = 1 << 53;
    if let Some(u) = n.as_u64() {
        if u <= SAFE {
            out.push_str(&u.to_string());
            return;
        }
    } else if let Some(i) = n.as_i64()
        && i.unsigned_abs() <= SAFE
    {
        out.push_str(&i.to_string());
        return;
    }
    // Everything else is a double in JS (a big integer included, rounded as JS would).
    let f = n.as_f64().unwrap_or(0.0);
    out.push_str(&js_number_text(f));
}

/// ECMAScript `Number::toString(x)` for a finite double.
pub fn js_number_text(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        // -0 prints as "0"; JSON has no NaN or Infinity (JSON.stringify writes null).
        return if x == 0.0 { "0".into() } else { "null".into() };
    }
    // `{:e}` gives the shortest digits that round-trip, as "d.ddde<exp>".
    format_shortest(&format!("{x:e}"))
}

/// The text a float32 value reads back from: its shortest round-trip digits laid out as JS
/// lays out a number (so `3.0f32` is `3`, `0.1f32` is `0.1`).
pub fn js_f32_text(x: f32) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { "0".into() } else { "null".into() };
    }
    format_shortest(&format!("{x:e}"))
}

/// Lays out Rust's shortest scientific text (`-1.25e-7`) the way ECMAScript does.
fn format_shortest(sci: &str) -> String {
    let (negative, sci) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci),
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let k = digits.len() as i64;
    // ECMAScript's n: the value is 0.d1d2...dk × 10^n.
    let n = exponent.parse::<i64>().unwrap_or(0) + 1;
    let mut out = String::with_capacity(24);
    if negative {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(digits);
    } else {
        let e = n - 1;
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&e.abs().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let cases: [(f64, &str); 14] = [
            (1.0, "1"),
            (-3.0, "-3"),
            (0.5, "0.5"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-10, "1.5e-10"),
            (2.5e300, "2.5e+300"),
            (0.000123, "0.000123"),
        ];
        for (value, text) in cases {
            assert_eq!(js_number_text(value), text, "{value}");
        }
    }

    #[test]
    fn float32_values_print_their_shortest_digits() {
        assert_eq!(js_f32_text(3.0), "3");
        assert_eq!(js_f32_text(0.1), "0.1");
        assert_eq!(js_f32_text(-0.25), "-0.25");
        assert_eq!(js_f32_text(1e-8), "1e-8");
    }

    #[test]
    fn integers_past_two_to_the_53_are_doubles() {
        let value: Value =
            serde_json::from_str("[9007199254740993, 12345678901234567890, -5]").expect("json");
        assert_eq!(
            to_compact(&value),
            "[9007199254740992,12345678901234567000,-5]"
        );
    }

    #[test]
    fn array_index_keys_come_first_ascending() {
        let value: Value =
            serde_json::from_str(r#"{"b":1,"10":2,"a":3,"2":4,"01":5,"4294967295":6}"#)
                .expect("json");
        assert_eq!(
            to_compact(&value),
            r#"{"2":4,"10":2,"b":1,"a":3,"01":5,"4294967295":6}"#
        );
    }

    #[test]
    fn strings_keep_non_ascii_and_escape_controls() {
        let value = json!({"t": "café 日本 😀 \n\u{1f} / \"q\""});
        assert_eq!(
            to_compact(&value),
            "{\"t\":\"café 日本 😀 \\n\\u001f / \\\"q\\\"\"}"
        );
    }

    #[test]
    fn indented_output_matches_json_stringify_indent_2() {
        let value: Value =
            serde_json::from_str(r#"{"k":{"doc":{"content":[{"text":"a"}],"m":{}},"e":[3.0,[]]}}"#)
                .expect("json");
        let expected = "{\n  \"k\": {\n    \"doc\": {\n      \"content\": [\n        {\n          \"text\": \"a\"\n        }\n      ],\n      \"m\": {}\n    },\n    \"e\": [\n      3,\n      []\n    ]\n  }\n}";
        assert_eq!(to_indented(&value, 2), expected);
    }
}
