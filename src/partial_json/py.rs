//! Python bindings: per-stream parsers for genkit's `json` and `array` formats, and a strict
//! one-shot parse for `jsonl` lines. Values become Python objects as `json`/`json5` build them.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString};

use super::extract::{JsonExtractor, Outcome};
use super::items::ArrayItems;
use super::parser::{PushParser, Status};
use super::text::{Surrogates, Text};
use super::value::{JsonValue, Number, View};

/// Returned in place of a value when genkit's own parser must decide.
const ORACLE: u8 = 1;
const VALUE: u8 = 0;

/// `extract_json` for one stream of model output.
///
/// `push(delta)` appends a chunk's text and returns `(0, value)` — the value genkit's
/// `extract_json(text, throw_on_bad_json=False)` gives for all text so far — or `(1, None)`
/// when the text is outside strict JSON and genkit's function must be asked instead.
///
/// Each push returns new containers for the document's open spine, but a finished member or
/// item is converted once and the same Python object is handed out again on later pushes,
/// so a chunk costs its new text plus the spine, not the whole document.
#[pyclass(module = "genkit_parity._native")]
pub struct JsonStream {
    extractor: JsonExtractor,
    /// Per open container (by depth): the Python objects of its finished children.
    converted: Vec<Converted>,
    /// The finished document, converted once (later chunks hand out the same object).
    finished: Option<Py<PyAny>>,
}

/// Finished children already converted for one open container.
#[derive(Default)]
struct Converted {
    /// The container (`View` id) they belong to.
    id: Option<u64>,
    keys: Vec<Py<PyAny>>,
    values: Vec<Py<PyAny>>,
}

impl Converted {
    /// This depth's cache, emptied if it belonged to another container.
    fn for_container(cache: &mut Vec<Converted>, depth: usize, id: u64) -> &mut Converted {
        if cache.len() <= depth {
            cache.resize_with(depth + 1, Converted::default);
        }
        let entry = &mut cache[depth];
        if entry.id != Some(id) {
            *entry = Converted {
                id: Some(id),
                ..Converted::default()
            };
        }
        entry
    }
}

#[pymethods]
impl JsonStream {
    #[new]
    fn new() -> Self {
        JsonStream {
            extractor: JsonExtractor::new(),
            converted: Vec::new(),
            finished: None,
        }
    }

    fn push<'py>(&mut self, py: Python<'py>, delta: &str) -> PyResult<(u8, Bound<'py, PyAny>)> {
        Ok(match self.extractor.push(delta) {
            Outcome::Nothing => (VALUE, py.None().into_bound(py)),
            // Unfinished documents go through Python's json (surrogate pairs joined),
            // finished ones through json5 (kept apart), as in genkit.
            Outcome::Partial(view) => (VALUE, spine_to_py(py, &view, 0, &mut self.converted)?),
            Outcome::Complete(value) => {
                if self.finished.is_none() {
                    self.converted.clear();
                    self.finished = Some(value_to_py(py, value, Surrogates::Separate)?.unbind());
                }
                let finished = self.finished.as_ref().expect("set above");
                (VALUE, finished.bind(py).clone())
            }
            Outcome::Oracle => (ORACLE, py.None().into_bound(py)),
        })
    }
}

/// An unfinished document as Python objects (as Python's json reads it: surrogate pairs
/// joined), reusing the objects of finished children converted on earlier pushes.
fn spine_to_py<'py>(
    py: Python<'py>,
    view: &View<'_>,
    depth: usize,
    cache: &mut Vec<Converted>,
) -> PyResult<Bound<'py, PyAny>> {
    const S: Surrogates = Surrogates::Paired;
    Ok(match view {
        View::Array { id, items, tail } => {
            let done = Converted::for_container(cache, depth, *id);
            for item in &items[done.values.len()..] {
                done.values.push(value_to_py(py, item, S)?.unbind());
            }
            let list = PyList::new(py, done.values.iter().map(|v| v.bind(py)))?;
            if let Some(tail) = tail {
                list.append(spine_to_py(py, tail, depth + 1, cache)?)?;
            }
            list.into_any()
        }
        View::Object { id, members, tail } => {
            let done = Converted::for_container(cache, depth, *id);
            for (key, value) in &members[done.values.len()..] {
                done.keys.push(text_to_py(py, key, S)?.unbind());
                done.values.push(value_to_py(py, value, S)?.unbind());
            }
            let dict = PyDict::new(py);
            for (key, value) in done.keys.iter().zip(&done.values) {
                dict.set_item(key.bind(py), value.bind(py))?;
            }
            if let Some((key, value)) = tail {
                dict.set_item(
                    text_to_py(py, key, S)?,
                    spine_to_py(py, value, depth + 1, cache)?,
                )?;
            }
            dict.into_any()
        }
        View::Value(value) => value_to_py(py, value, S)?,
        View::Scalar(value) => value_to_py(py, value, S)?,
        View::PartialString { text, len } => text_prefix_to_py(py, text, *len, S)?,
    })
}

/// The `array` format's per-chunk items for one stream.
///
/// `push(delta, fallback)` returns the items genkit reports for a chunk with text `delta`.
/// Objects that are not strict JSON are read with `fallback` (genkit's `json5.loads`); one
/// that raises is skipped, as genkit skips it.
#[pyclass(module = "genkit_parity._native")]
pub struct ArrayItemsStream {
    items: ArrayItems,
}

#[pymethods]
impl ArrayItemsStream {
    #[new]
    fn new() -> Self {
        ArrayItemsStream {
            items: ArrayItems::new(),
        }
    }

    fn push<'py>(
        &mut self,
        py: Python<'py>,
        delta: &str,
        fallback: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut error = None;
        let mut parse = |slice: &str| match read_strict_or_fallback(py, slice, fallback) {
            Ok(item) => item,
            Err(e) => {
                error.get_or_insert(e);
                None
            }
        };
        let items = self.items.push(delta, &mut parse);
        if let Some(e) = error {
            return Err(e);
        }
        PyList::new(py, items)
    }
}

/// One object slice: strict JSON read here, anything else by `fallback`, where an exception
/// means genkit would skip the object.
fn read_strict_or_fallback<'py>(
    py: Python<'py>,
    slice: &str,
    fallback: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if let Ok((value, end)) = PushParser::parse_complete(slice)
        && end == slice.len()
    {
        return value_to_py(py, &value, Surrogates::Separate).map(Some);
    }
    match fallback.call1((slice,)) {
        Ok(item) => Ok(Some(item)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyException>(py) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses `text` as one strict JSON object or array, as `json5.loads` would read it.
///
/// Returns `(0, value)` for a complete document with nothing but JSON whitespace after it,
/// `(2, None)` for a valid but unfinished one (json5 would raise too), and `(1, None)` for
/// anything else (ask json5).
#[pyfunction]
pub fn parse_strict_json<'py>(py: Python<'py>, text: &str) -> PyResult<(u8, Bound<'py, PyAny>)> {
    let mut parser = PushParser::new();
    Ok(match parser.push(text) {
        Status::Complete { end }
            if text[end..].trim_matches([' ', '\t', '\n', '\r']).is_empty() =>
        {
            let value = parser.value().expect("complete");
            (VALUE, value_to_py(py, value, Surrogates::Separate)?)
        }
        Status::Incomplete => (2, py.None().into_bound(py)),
        _ => (ORACLE, py.None().into_bound(py)),
    })
}

fn text_to_py<'py>(
    py: Python<'py>,
    text: &Text,
    surrogates: Surrogates,
) -> PyResult<Bound<'py, PyAny>> {
    text_prefix_to_py(py, text, text.len(), surrogates)
}

/// The first `len` bytes of `text` (a boundary the parser recorded) as a Python str.
fn text_prefix_to_py<'py>(
    py: Python<'py>,
    text: &Text,
    len: usize,
    surrogates: Surrogates,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some(s) = text.as_str() {
        return Ok(PyString::new(py, &s[..len]).into_any());
    }
    PyBytes::new(py, &text.wtf8_prefix(len, surrogates))
        .call_method1("decode", ("utf-8", "surrogatepass"))
}

fn number_to_py<'py>(py: Python<'py>, number: &Number) -> PyResult<Bound<'py, PyAny>> {
    Ok(match number {
        Number::Int(i) => i.into_pyobject(py)?.into_any(),
        Number::BigInt(digits) => py.get_type::<PyInt>().call1((digits.as_str(),))?,
        Number::Float(f) => f.into_pyobject(py)?.into_any(),
    })
}

pub(crate) fn value_to_py<'py>(
    py: Python<'py>,
    value: &JsonValue,
    surrogates: Surrogates,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        JsonValue::Null => py.None().into_bound(py),
        JsonValue::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        JsonValue::Number(n) => number_to_py(py, n)?,
        JsonValue::String(t) => text_to_py(py, t, surrogates)?,
        JsonValue::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item, surrogates)?)?;
            }
            list.into_any()
        }
        JsonValue::Object(members) => members_to_py(py, members, surrogates)?.into_any(),
    })
}

fn members_to_py<'py>(
    py: Python<'py>,
    members: &[(Text, JsonValue)],
    surrogates: Surrogates,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in members {
        dict.set_item(
            text_to_py(py, key, surrogates)?,
            value_to_py(py, value, surrogates)?,
        )?;
    }
    Ok(dict)
}
