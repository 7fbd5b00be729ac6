//! Turn a JSON Schema (schemars' or a Pydantic model's) into the draft-07 form JS Genkit's
//! `toJsonSchema` emits and the Dev UI renders config forms from.
//!
//! * `$ref`s into `$defs`/`definitions` are inlined (recursive ones are kept, under
//!   `definitions`); `allOf: [one]` wrappers are merged;
//! * an optional field's `anyOf: [X, null]` (or `type: [X, "null"]`) becomes X, and a
//!   required nullable one `type: [X, "null"]`, as zod's `.optional()` / `.nullable()`;
//! * `title`s, `default: null`, numeric `format`s and OpenAPI's `discriminator` go;
//!   `prefixItems` becomes draft-07's array form of `items`;
//! * objects get `additionalProperties: true` unless they say otherwise (zod's default);
//! * `$schema` (draft-07) sits on the root only, last; keys read `type` first and
//!   `description`, `default` last, as JS prints them.

use serde_json::{Map, Value, json};

pub const DRAFT_07: &str = "http://json-schema.org/draft-07/schema#";

const NUMERIC_FORMATS: [&str; 14] = [
    "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "int",
    "float", "double", "uint128", "int128",
];

/// The Dev UI form of `schema`. A non-object schema (`true`) is returned as `{}` with `$schema`.
pub fn normalize(schema: Value) -> Value {
    let mut root = match schema {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(found)) = root.remove(key) {
            defs.extend(found);
        }
    }
    root.remove("$schema");
    let mut inliner = Inliner {
        inlined: 0,
        defs,
        stack: Vec::new(),
        kept: Map::new(),
        to_define: Vec::new(),
    };
    let mut out = match inliner.node(Value::Object(root)) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    // Definitions still referred to (recursion, limits) are emitted under `definitions`.
    let mut definitions = Map::new();
    while let Some(name) = inliner.to_define.pop() {
        if definitions.contains_key(&name) {
            continue;
        }
        let raw = inliner
            .defs
            .get(&name)
            .cloned()
            .unwrap_or(Value::Bool(true));
        inliner.stack.push(name.clone());
        let normalized = inliner.node(raw);
        inliner.stack.pop();
        definitions.insert(name, normalized);
    }
    if !definitions.is_empty() {
        out.insert("definitions".into(), Value::Object(definitions));
    }
    out.insert("$schema".into(), Value::String(DRAFT_07.into()));
    Value::Object(out)
}

/// Inlining stops (the reference is kept, under `definitions`) this deep, or after this many
/// definitions were inlined: shared definitions could otherwise grow the schema exponentially
/// and long chains could exhaust the stack.
const MAX_INLINE_DEPTH: usize = 32;
const MAX_INLINES: usize = 2_000;

struct Inliner {
    inlined: usize,
    defs: Map<String, Value>,
    /// Definitions being inlined (a repeat means recursion).
    stack: Vec<String>,
    /// Definitions referenced (recursively, or past the limits) rather than inlined.
    kept: Map<String, Value>,
    /// Kept definitions not emitted yet.
    to_define: Vec<String>,
}

impl Inliner {
    fn node(&mut self, value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(self.object(map)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.node(v)).collect()),
            other => other,
        }
    }

    fn object(&mut self, mut map: Map<String, Value>) -> Map<String, Value> {
        if let Some(Value::String(reference)) = map.get("$ref").cloned()
            && let Some(name) = definition_name(&reference)
        {
            map.remove("$ref");
            let keep_reference = self.stack.iter().any(|n| n == name)
                || !self.defs.contains_key(name)
                || self.stack.len() >= MAX_INLINE_DEPTH
                || self.inlined >= MAX_INLINES;
            let resolved = if keep_reference {
                if self.kept.insert(name.to_owned(), Value::Null).is_none() {
                    self.to_define.push(name.to_owned());
                }
                let mut r = Map::new();
                r.insert(
                    "$ref".into(),
                    Value::String(format!("#/definitions/{name}")),
                );
                r
            } else {
                self.inlined += 1;
                self.stack.push(name.to_owned());
                let inlined = self.node(self.defs[name].clone());
                self.stack.pop();
                match inlined {
                    Value::Object(m) => m,
                    _ => Map::new(),
                }
            };
            return merge(resolved, self.object(map));
        }
        // allOf: [one schema] is how generators attach siblings to a reference.
        if let Some(Value::Array(all)) = map.get("allOf")
            && all.len() == 1
        {
            let Some(Value::Array(mut all)) = map.remove("allOf") else {
                unreachable!()
            };
            let inner = match self.node(all.remove(0)) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            return merge(inner, self.object(map));
        }
        map.remove("title");
        map.remove("discriminator");
        if map.get("default") == Some(&Value::Null) {
            map.remove("default");
        }
        if let Some(Value::String(format)) = map.get("format")
            && NUMERIC_FORMATS.contains(&format.as_str())
        {
            map.remove("format");
        }
        if let Some(prefix) = map.remove("prefixItems") {
            if map.get("items") == Some(&Value::Bool(false)) {
                map.insert("additionalItems".into(), Value::Bool(false));
            }
            map.insert("items".into(), prefix);
        }
        let required: Vec<String> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(Value::Object(properties)) = map.remove("properties") {
            let properties = properties
                .into_iter()
                .map(|(name, schema)| {
                    let schema = self.node(schema);
                    let schema = if required.contains(&name) {
                        nullable_as_type_list(schema)
                    } else {
                        without_null(schema)
                    };
                    (name, schema)
                })
                .collect();
            map.insert("properties".into(), Value::Object(properties));
        }
        for key in [
            "items",
            "additionalProperties",
            "not",
            "additionalItems",
            "contains",
        ] {
            if let Some(child) = map.remove(key) {
                map.insert(key.into(), self.node(child));
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(child) = map.remove(key) {
                map.insert(key.into(), self.node(child));
            }
        }
        if let Some(Value::Object(patterns)) = map.remove("patternProperties") {
            let patterns = patterns
                .into_iter()
                .map(|(k, v)| (k, self.node(v)))
                .collect();
            map.insert("patternProperties".into(), Value::Object(patterns));
        }
        let mut map = match nullable_as_type_list(Value::Object(map)) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let is_object = map.get("type") == Some(&json!("object")) || map.contains_key("properties");
        if is_object && !map.contains_key("additionalProperties") {
            map.insert("additionalProperties".into(), Value::Bool(true));
        }
        js_key_order(map)
    }
}

fn definition_name(reference: &str) -> Option<&str> {
    reference
        .strip_prefix("#/$defs/")
        .or_else(|| reference.strip_prefix("#/definitions/"))
}

/// `base` with `overrides`' keys on top (the referring node's own keys win, as in JS).
fn merge(mut base: Map<String, Value>, overrides: Map<String, Value>) -> Map<String, Value> {
    for (key, value) in overrides {
        base.insert(key, value);
    }
    js_key_order(base)
}

fn is_null_schema(value: &Value) -> bool {
    value.get("type") == Some(&json!("null")) && value.as_object().is_some_and(|m| m.len() == 1)
}

/// The non-null branch of `anyOf: [X, null]` / `type: [X, "null"]`, with the node's own keys.
fn without_null(schema: Value) -> Value {
    let Value::Object(mut map) = schema else {
        return schema;
    };
    if let Some(Value::Array(types)) = map.get("type") {
        let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if rest.len() == 1 && rest.len() < types.len() {
            map.insert("type".into(), rest[0].clone());
        }
    }
    if let Some(Value::Array(branches)) = map.get("anyOf")
        && branches.len() == 2
        && branches.iter().any(is_null_schema)
    {
        let Some(Value::Array(branches)) = map.remove("anyOf") else {
            unreachable!()
        };
        let other = branches
            .into_iter()
            .find(|b| !is_null_schema(b))
            .unwrap_or(Value::Null);
        if let Value::Object(inner) = other {
            return Value::Object(merge(inner, map));
        }
    }
    Value::Object(map)
}

/// `anyOf: [{type: X}, null]` as `type: [X, "null"]` (zod's `.nullable()`); other shapes stay.
fn nullable_as_type_list(schema: Value) -> Value {
    let Value::Object(mut map) = schema else {
        return schema;
    };
    if let Some(Value::Array(branches)) = map.get("anyOf")
        && branches.len() == 2
        && branches.iter().any(is_null_schema)
    {
        let other = branches.iter().find(|b| !is_null_schema(b)).cloned();
        if let Some(Value::Object(inner)) = other
            && inner.len() == 1
            && let Some(Value::String(t)) = inner.get("type")
        {
            map.remove("anyOf");
            map.insert("type".into(), json!([t, "null"]));
            return Value::Object(js_key_order(map));
        }
    }
    Value::Object(map)
}

/// `type` (then `items`) first, `description` then `default` last; the rest as they were.
fn js_key_order(map: Map<String, Value>) -> Map<String, Value> {
    let mut head = Map::new();
    let mut tail = Map::new();
    let mut body = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "type" | "items" => {
                head.insert(key, value);
            }
            "description" | "default" => {
                tail.insert(key, value);
            }
            _ => {
                body.insert(key, value);
            }
        }
    }
    head.extend(body);
    for key in ["description", "default"] {
        if let Some(v) = tail.remove(key) {
            head.insert(key.into(), v);
        }
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pydantic_schema_becomes_js_shaped() {
        let pydantic = json!({
            "$defs": {"Mode": {"enum": ["a", "b"], "title": "Mode", "type": "string"}},
            "properties": {
                "temperature": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": null,
                                "description": "How random", "title": "Temperature"},
                "count": {"default": 3, "maximum": 10, "minimum": 1, "title": "Count", "type": "integer"},
                "mode": {"anyOf": [{"$ref": "#/$defs/Mode"}, {"type": "null"}], "default": null},
                "name": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Name"},
                "pair": {"maxItems": 2, "minItems": 2, "prefixItems": [{"type": "integer"}, {"type": "string"}], "type": "array"}
            },
            "required": ["name"],
            "title": "EchoConfig",
            "type": "object"
        });
        let out = normalize(pydantic);
        assert_eq!(
            out,
            json!({
                "type": "object",
                "properties": {
                    "temperature": {"type": "number", "description": "How random"},
                    "count": {"type": "integer", "maximum": 10, "minimum": 1, "default": 3},
                    "mode": {"type": "string", "enum": ["a", "b"]},
                    "name": {"type": ["string", "null"]},
                    "pair": {"type": "array", "maxItems": 2, "minItems": 2, "items": [{"type": "integer"}, {"type": "string"}]}
                },
                "required": ["name"],
                "additionalProperties": true,
                "$schema": DRAFT_07
            })
        );
        let text = serde_json::to_string(&out).unwrap();
        assert!(text.ends_with(&format!("\"$schema\":\"{DRAFT_07}\"}}")));
    }

    #[test]
    fn forbidding_extra_keys_is_kept_and_recursion_survives() {
        let schema = json!({
            "$defs": {"Node": {"type": "object", "additionalProperties": false,
                      "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
            "$ref": "#/$defs/Node"
        });
        let out = normalize(schema);
        assert_eq!(out["additionalProperties"], false);
        assert_eq!(
            out["properties"]["children"]["items"],
            json!({"$ref": "#/definitions/Node"})
        );
        assert_eq!(out["definitions"]["Node"]["additionalProperties"], false);
        assert!(out["definitions"]["Node"].get("$schema").is_none());
    }

    #[test]
    fn shared_and_chained_definitions_stay_bounded() {
        // 30 levels, each referring to the next twice: 2^30 nodes if everything were inlined.
        let mut defs = Map::new();
        for i in 0..30 {
            let next = json!({"$ref": format!("#/$defs/D{}", i + 1)});
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "properties": {"a": next.clone(), "b": next}}),
            );
        }
        defs.insert("D30".into(), json!({"type": "string"}));
        let out = normalize(json!({"$defs": defs, "$ref": "#/$defs/D0"}));
        assert!(serde_json::to_string(&out).unwrap().len() < 5_000_000);
        // A chain of 20,000 definitions neither overflows the stack nor takes long.
        let mut defs = Map::new();
        for i in 0..20_000 {
            defs.insert(
                format!("C{i}"),
                json!({"type": "array", "items": {"$ref": format!("#/$defs/C{}", i + 1)}}),
            );
        }
        defs.insert("C20000".into(), json!({"type": "integer"}));
        let out = normalize(json!({"$defs": defs, "$ref": "#/$defs/C0"}));
        let definitions = out["definitions"].as_object().unwrap();
        assert!(definitions.len() <= 20_001);
        assert!(definitions.values().all(|d| d.get("$schema").is_none()));
    }

    #[test]
    fn non_object_schemas_become_empty_schemas() {
        assert_eq!(normalize(json!(true)), json!({"$schema": DRAFT_07}));
    }
}
