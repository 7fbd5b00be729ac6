//! Stored messages straight from their JSON text to Python objects, in one pass under the
//! GIL: the objects `json.loads` would build, without its scanner or an intermediate tree
//! (measured on 10k messages: an off-GIL tree converted afterwards cost twice `json.loads`,
//! its allocations freed on the event loop).
//!
//! serde reads almost every JSON text as Python does, except where it cannot tell what the
//! text was: an integer beyond i64/u64 and `-0` arrive as floats (Python makes ints of
//! them), numbers out of f64 range and lone surrogate escapes are refused (Python reads
//! them). Such a message, once checked valid, goes to `json.loads` itself.

use std::collections::HashMap;
use std::fmt;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::data::stored_message;

/// Builds the messages of one session; dict keys are one str each, shared by every message
/// (as `json.loads` shares them within one document), and so are short string values (a
/// message's `role`): equal str objects either way, one allocation fewer per message.
pub struct MessageBuilder<'py> {
    py: Python<'py>,
    loads: Bound<'py, PyAny>,
    keys: Shared,
    values: Shared,
}

/// Longest string value shared, in bytes ("assistant", "model", "system", "user", ...).
const SHARED_VALUE_MAX: usize = 12;

/// str objects by their text. The first few are found by a scan: messages have a handful
/// of keys, which a scan comparing short strings finds faster than hashing them (SipHash of
/// every key was ~3% of a load). Past `scan` entries texts go to a map, up to `cap` in all;
/// texts beyond that are built each time, not kept. Held as `Py` (not bound to one GIL
/// scope), so a builder's strings carry over from one batch of a load to the next.
struct Shared {
    first: Vec<(Box<str>, Py<PyString>)>,
    more: HashMap<Box<str>, Py<PyString>>,
    scan: usize,
    cap: usize,
}

impl Shared {
    fn new(scan: usize, cap: usize) -> Self {
        Shared {
            first: Vec::new(),
            more: HashMap::new(),
            scan,
            cap,
        }
    }

    fn get<'py>(&mut self, py: Python<'py>, text: &str) -> Bound<'py, PyString> {
        if let Some((_, string)) = self.first.iter().find(|(t, _)| **t == *text) {
            return string.bind(py).clone();
        }
        if let Some(string) = self.more.get(text) {
            return string.bind(py).clone();
        }
        let string = PyString::new(py, text);
        if self.first.len() < self.scan {
            self.first.push((text.into(), string.clone().unbind()));
        } else if self.scan + self.more.len() < self.cap {
            self.more.insert(text.into(), string.clone().unbind());
        }
        string
    }
}

/// A [`MessageBuilder`]'s shared strings between two batches of one session's messages
/// (built as they arrive), so every batch shares the same keys.
pub struct Suspended {
    keys: Shared,
    values: Shared,
}

impl<'py> MessageBuilder<'py> {
    /// `loads` is Python's `json.loads`, for the messages serde cannot read exactly.
    pub fn new(py: Python<'py>, loads: Bound<'py, PyAny>) -> Self {
        Self::resume(py, loads, None)
    }

    /// A builder sharing the strings of the one `suspended` (if any).
    pub fn resume(py: Python<'py>, loads: Bound<'py, PyAny>, suspended: Option<Suspended>) -> Self {
        let Suspended { keys, values } = suspended.unwrap_or_else(|| Suspended {
            keys: Shared::new(16, usize::MAX),
            values: Shared::new(16, 16),
        });
        MessageBuilder {
            py,
            loads,
            keys,
            values,
        }
    }

    /// Its shared strings, for the next batch's [`resume`](Self::resume).
    pub fn suspend(self) -> Suspended {
        Suspended {
            keys: self.keys,
            values: self.values,
        }
    }

    /// Message `index` of `thread` as a dict; a message that is not a JSON object is
    /// `Corrupt`, as [`stored_message`] (which defines what is valid) says.
    pub fn message(
        &mut self,
        session_id: &str,
        thread: &str,
        index: usize,
        text: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        if text.starts_with('{') {
            let mut reader = serde_json::Deserializer::from_str(text);
            if let Ok(Some(dict)) = ValueSeed(self).deserialize(&mut reader)
                && reader.end().is_ok()
            {
                return Ok(dict);
            }
        }
        stored_message(session_id, thread, index, text.to_owned())?;
        self.loads.call1((text,))
    }
}

/// One value; `None` when serde could not read it exactly as Python would.
struct ValueSeed<'b, 'py>(&'b mut MessageBuilder<'py>);

/// Python makes an int of an integer literal; serde hands these to `visit_f64` (beyond
/// i64/u64, and `-0`), where a float literal of the same value cannot be told apart.
fn ambiguous(v: f64) -> bool {
    v.fract() == 0.0 && (v.abs() >= (1u64 << 63) as f64 || (v == 0.0 && v.is_sign_negative()))
}

fn py_error<E: de::Error>(e: PyErr) -> E {
    E::custom(e)
}

impl<'de, 'py> DeserializeSeed<'de> for ValueSeed<'_, 'py> {
    type Value = Option<Bound<'py, PyAny>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for ValueSeed<'_, 'py> {
    type Value = Option<Bound<'py, PyAny>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(self.0.py.None().into_bound(self.0.py)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(PyBool::new(self.0.py, v).to_owned().into_any()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.0.py);
        Ok(Some(int.into_any()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.0.py);
        Ok(Some(int.into_any()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok((!ambiguous(v)).then(|| PyFloat::new(self.0.py, v).into_any()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let builder = self.0;
        let string = if v.len() <= SHARED_VALUE_MAX {
            builder.values.get(builder.py, v)
        } else {
            PyString::new(builder.py, v)
        };
        Ok(Some(string.into_any()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut exact = true;
        while let Some(item) = seq.next_element_seed(ValueSeed(&mut *self.0))? {
            match item {
                Some(item) if exact => items.push(item),
                _ => exact = false, // read on to the end, so the text is still checked
            }
        }
        if !exact {
            return Ok(None);
        }
        Ok(Some(
            PyList::new(self.0.py, items).map_err(py_error)?.into_any(),
        ))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.0.py);
        let mut exact = true;
        while let Some(key) = map.next_key_seed(KeySeed(&mut *self.0))? {
            // One by one: a repeated key keeps its first place and its last value, as in
            // `json.loads`.
            match map.next_value_seed(ValueSeed(&mut *self.0))? {
                Some(value) if exact => dict.set_item(key, value).map_err(py_error)?,
                _ => exact = false,
            }
        }
        Ok(exact.then(|| dict.into_any()))
    }
}

/// A dict key: the builder's one str for that text.
struct KeySeed<'b, 'py>(&'b mut MessageBuilder<'py>);

impl<'de, 'py> DeserializeSeed<'de> for KeySeed<'_, 'py> {
    type Value = Bound<'py, PyString>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'py> Visitor<'de> for KeySeed<'_, 'py> {
    type Value = Bound<'py, PyString>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let builder = self.0;
        Ok(builder.keys.get(builder.py, v))
    }
}
