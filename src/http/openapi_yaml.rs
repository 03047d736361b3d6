//! The OpenAPI document as YAML that every YAML reader reads as the JSON document, YAML
//! 1.1 ones (PyYAML, js-yaml's default) included. serde_yaml, which poem-openapi uses,
//! writes for YAML 1.2 and leaves `2026-11-26T15:55:00Z` or `2026-11-26` plain, which
//! YAML 1.1 readers turn into timestamps and dates.
//!
//! Hand-written because the fix is in quoting, not structure: every string is written
//! double-quoted with JSON's escapes (a valid YAML double-quoted scalar in every YAML
//! version), so no value can be resolved as anything else; keys are quoted unless they are
//! plain words. The layout is block style, as people read it.

use serde_json::Value;

/// `document` as block-style YAML, equal to it under YAML 1.1 and 1.2 readers alike.
pub fn to_yaml(document: &Value) -> String {
    let mut out = String::new();
    match document {
        Value::Object(map) if !map.is_empty() => write_mapping(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

fn write_mapping(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (index, (key, value)) in map.iter().enumerate() {
        // The first key of a sequence item follows its "- " on the same line.
        if index > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&key_text(key));
        out.push(':');
        write_value(out, value, indent);
    }
}

fn write_sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => write_mapping(out, map, indent + 2),
            Value::Array(inner) if !inner.is_empty() => {
                out.pop();
                out.push('\n');
                write_sequence(out, inner, indent + 2);
            }
            scalar => {
                out.push_str(&scalar_text(scalar));
                out.push('\n');
            }
        }
    }
}

/// A mapping value after its `key:`: nested collections on the next lines, scalars (and
/// empty collections) on the same line.
fn write_value(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_mapping(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_sequence(out, items, indent);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

/// A scalar, or an empty collection, as YAML flow text.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        // JSON's own text is valid YAML for null, booleans, numbers and quoted strings.
        other => other.to_string(),
    }
}

/// Words YAML 1.1 reads as booleans or null when plain.
const YAML_11_WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"];

/// A key plain when it is a word no YAML reader takes for anything but a string,
/// double-quoted otherwise (paths, status codes, media types).
fn key_text(key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !YAML_11_WORDS.contains(&key.to_ascii_lowercase().as_str());
    if plain {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_is_written_in_block_style_with_every_string_quoted() {
        let document = json!({
            "openapi": "3.0.0",
            "paths": {"/memories/{id}": {"get": {"responses": {"200": {"description": "ok"}}}}},
            "example": {"created_at": "2026-11-26T15:55:00Z", "day": "2026-11-26", "on": "yes", "n": 3},
            "tags": [{"name": "Memories", "x": []}, "plain", ["nested"]],
            "empty": {}
        });
        let expected = "\
empty: {}
example:
  created_at: \"2026-11-26T15:55:00Z\"
  day: \"2026-11-26\"
  \"n\": 3
  \"on\": \"yes\"
openapi: \"3.0.0\"
paths:
  \"/memories/{id}\":
    get:
      responses:
        \"200\":
          description: \"ok\"
tags:
- name: \"Memories\"
  x: []
- \"plain\"
-
  - \"nested\"
";
        assert_eq!(to_yaml(&document), expected);
    }

    #[test]
    fn strings_keep_their_escapes() {
        assert_eq!(to_yaml(&json!({"d": "two\nlines \"quoted\" ✅"})), "d: \"two\\nlines \\\"quoted\\\" ✅\"\n");
    }
}
