//! What the Graph API calls share: their URLs (`{base}/{version}/…`) and Meta's error
//! document, classified by its `code` (130429 arrives with HTTP 400, 190 with 401: the
//! status alone says little).

use reqwest::StatusCode;
use serde::Deserialize;

/// Rate limits: Cloud API throughput (130429), app (4), account (80007), pair (131056).
pub const RATE_LIMIT_CODES: [i64; 4] = [130_429, 4, 80_007, 131_056];
/// The access token expired or is invalid.
pub const TOKEN_INVALID: i64 = 190;
/// Outside the 24-hour customer service window: only a template can be sent.
pub const REENGAGEMENT_REQUIRED: i64 = 131_047;

/// `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GraphError {
    pub message: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<i64>,
    pub error_subcode: Option<i64>,
    pub fbtrace_id: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: GraphError,
}

impl GraphError {
    /// Meta's error, or `None` when the body is something else (a proxy's page).
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Envelope>(body).ok().map(|e| e.error)
    }

    /// The code and a message for logs and records: Meta's own, or the status and the
    /// start of the body.
    pub fn describe(status: StatusCode, body: &[u8]) -> (Option<i64>, String) {
        match Self::parse(body) {
            Some(error) => {
                let mut message = error.message.unwrap_or_else(|| status.to_string());
                if let Some(trace) = error.fbtrace_id {
                    message = format!("{message} (fbtrace_id {trace})");
                }
                (error.code, message)
            }
            None => {
                let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
                let text = text.trim();
                (None, if text.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {text}") })
            }
        }
    }
}

/// Whether a failed call may pass later: a rate limit (by code, whatever the status),
/// 408, 429 or 5xx.
pub fn is_transient(status: StatusCode, code: Option<i64>) -> bool {
    code.is_some_and(|c| RATE_LIMIT_CODES.contains(&c))
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// `{base}/{version}/{segments…}`, each segment percent-encoded as one path segment.
///
/// # Errors
/// When `base` cannot carry a path.
pub fn graph_url(base: &url::Url, version: &str, segments: &[&str]) -> anyhow::Result<url::Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("the Graph API base {base} cannot carry a path"))?
        .pop_if_empty()
        .push(version)
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_code_not_status() {
        let rate = br#"{"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429, "fbtrace_id": "Az8"}}"#;
        let (code, message) = GraphError::describe(StatusCode::BAD_REQUEST, rate);
        assert_eq!(code, Some(130_429));
        assert_eq!(message, "(#130429) Rate limit hit (fbtrace_id Az8)");
        assert!(is_transient(StatusCode::BAD_REQUEST, code));
        assert!(!is_transient(StatusCode::UNAUTHORIZED, Some(TOKEN_INVALID)));
        assert!(!is_transient(StatusCode::BAD_REQUEST, Some(REENGAGEMENT_REQUIRED)));
        assert!(is_transient(StatusCode::BAD_GATEWAY, None));
        assert_eq!(GraphError::describe(StatusCode::BAD_GATEWAY, b"<html>").1, "HTTP 502 Bad Gateway: <html>");
    }

    #[test]
    fn urls_carry_the_version_and_encode_each_segment() {
        let base = url::Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            graph_url(&base, "v23.0", &["1065", "messages"]).unwrap().as_str(),
            "http://127.0.0.1:9/v23.0/1065/messages"
        );
        let proxied = url::Url::parse("https://proxy.example/graph").unwrap();
        assert_eq!(
            graph_url(&proxied, "v23.0", &["1/../x?y"]).unwrap().as_str(),
            "https://proxy.example/graph/v23.0/1%2F..%2Fx%3Fy"
        );
    }
}
