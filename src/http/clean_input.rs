//! Control characters out of every text the REST API receives, before any handler parses
//! it: query values and JSON string values (names included) go through
//! [`crate::domain::text::clean_text`], so `{"text": "a\u0000b"}` is stored as `ab` on
//! SQLite and on PostgreSQL alike (PostgreSQL cannot store U+0000 at all).
//!
//! One middleware in front of every operation, rather than a call per field, so a field
//! added later is covered too. Requests without control characters, nearly all of them,
//! pass untouched: only a body that could hold one (an escape, DEL or a C1 character) is
//! parsed here.

use poem::http::uri::PathAndQuery;
use poem::http::{header, Uri};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::domain::text::{clean_string, is_unwanted_control};

/// Drops control characters other than newline and tab from query values and JSON bodies.
/// Must run inside [`super::body_limit::BodyLimit`], which has already read (and capped)
/// the body.
pub struct CleanInput;

impl<E: Endpoint> Middleware<E> for CleanInput {
    type Output = CleanInputEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CleanInputEndpoint { inner }
    }
}

/// The endpoint [`CleanInput`] wraps.
pub struct CleanInputEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for CleanInputEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Self::Output> {
        if request.uri().path() == super::whatsapp_cloud::PATH {
            // Signed by Meta byte for byte: cleaned after the signature is checked.
            return self.inner.call(request).await.map(IntoResponse::into_response);
        }
        if let Some(uri) = request.uri().query().and_then(cleaned_query).and_then(|query| {
            let mut parts = request.uri().clone().into_parts();
            parts.path_and_query = PathAndQuery::try_from(format!("{}?{query}", request.uri().path())).ok();
            Uri::from_parts(parts).ok()
        }) {
            *request.uri_mut() = uri;
        }
        if is_json(&request) {
            let bytes = request.take_body().into_bytes().await?;
            let body = match cleaned_json(&bytes) {
                Some(cleaned) => Body::from(cleaned),
                None => Body::from(bytes),
            };
            request.set_body(body);
        }
        self.inner.call(request).await.map(IntoResponse::into_response)
    }
}

fn is_json(request: &Request) -> bool {
    request
        .header(header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
        .unwrap_or(false)
}

/// The query re-encoded without control characters, or `None` when it has none.
fn cleaned_query(query: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let unwanted = |s: &String| s.chars().any(is_unwanted_control);
    if !pairs.iter().any(|(k, v)| unwanted(k) || unwanted(v)) {
        return None;
    }
    let mut cleaned = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        cleaned.append_pair(&clean_string(name), &clean_string(value));
    }
    Some(cleaned.finish())
}

/// Whether JSON text may hold a control character in a string: as an escape
/// (`\u0000`–`\u009f` all start `\u00`), or raw as DEL or a C1 character (raw C0
/// characters are not valid JSON and are refused by the parser anyway).
fn may_hold_control(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"\\u00")
        || bytes.contains(&0x7f)
        || bytes.windows(2).any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]))
}

/// The JSON document re-serialized without control characters in its strings, or `None`
/// when it has none or is not JSON (the handler then answers its usual 400).
fn cleaned_json(bytes: &[u8]) -> Option<Vec<u8>> {
    if !may_hold_control(bytes) {
        return None;
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !clean_json_strings(&mut value) {
        return None;
    }
    serde_json::to_vec(&value).ok()
}

/// Cleans every string (and object key) in `value`; whether anything changed.
fn clean_json_strings(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) if text.chars().any(is_unwanted_control) => {
            *text = clean_string(std::mem::take(text));
            true
        }
        Value::Array(items) => {
            // Every item is cleaned: no short cut at the first change.
            let mut changed = false;
            for item in items {
                changed |= clean_json_strings(item);
            }
            changed
        }
        Value::Object(object) => {
            let mut changed = false;
            if object.keys().any(|k| k.chars().any(is_unwanted_control)) {
                *object = std::mem::take(object).into_iter().map(|(k, v)| (clean_string(k), v)).collect();
                changed = true;
            }
            for item in object.values_mut() {
                changed |= clean_json_strings(item);
            }
            changed
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_without_control_characters_is_left_as_it_is() {
        assert_eq!(cleaned_query("user_id=%2B1555&query=milk+and%20eggs"), None);
    }

    #[test]
    fn control_characters_are_dropped_from_query_values() {
        let cleaned = cleaned_query("user_id=1555&query=mi%00lk%0D%0Ax").unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(cleaned.as_bytes()).into_owned().collect();
        assert_eq!(pairs, vec![("user_id".into(), "1555".into()), ("query".into(), "milk\nx".into())]);
    }

    #[test]
    fn json_without_control_characters_is_not_reparsed() {
        assert_eq!(cleaned_json(br#"{"text": "caf\u00e9 \n", "labels": ["a"]}"#), None);
        assert_eq!(cleaned_json(br#"{"text": "plain"}"#), None);
    }

    #[test]
    fn control_characters_are_dropped_from_every_json_string_and_key() {
        let cleaned = cleaned_json(
            br#"{"text": "a\u0000b", "labels": ["x\u0007", "y"], "nested": {"k\u001b": "\u0085v"}, "n": 1}"#,
        )
        .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&cleaned).unwrap();
        assert_eq!(value, serde_json::json!({"text": "ab", "labels": ["x", "y"], "nested": {"k": "v"}, "n": 1}));
    }

    #[test]
    fn a_body_that_is_not_json_is_passed_on_for_the_handler_to_refuse() {
        assert_eq!(cleaned_json(b"{\"text\": \"\\u0000"), None);
    }
}
