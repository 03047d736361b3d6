//! Sends WhatsApp messages through Twilio's REST API (late replies, outside a webhook's
//! answer) and translates Twilio's answers into "sent", "try later" or "refused".

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::adapters::outbound;
use crate::config::Secret;
use crate::domain::model::MaskedPhone;
use crate::domain::ports::{MessageSender, SendError, SentMessage};

/// The longest body one WhatsApp message may carry through Twilio (longer ones are
/// refused with error 21617).
pub const MAX_BODY_CHARS: usize = 1600;

/// The [`MessageSender`] that posts to Twilio's Messages resource.
///
/// Holds the account's credentials; they only ever go to the configured API base, in a
/// Basic `Authorization` header (never in a URL, never in a log).
pub struct TwilioSender {
    client: reqwest::Client,
    /// `{base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, built once.
    messages_url: url::Url,
    account_sid: String,
    auth_token: Secret,
    /// Our WhatsApp sender number, E.164 without the `whatsapp:` prefix.
    from_number: String,
}

impl TwilioSender {
    /// A sender for one account and sender number. `api_base` is `https://api.twilio.com`
    /// in production and a loopback fake in tests; `timeout` bounds each whole call.
    ///
    /// # Errors
    /// When `api_base` cannot carry a path (not an http(s) URL) or the HTTP client cannot
    /// be built (no TLS backend).
    pub fn new(
        api_base: url::Url,
        account_sid: String,
        auth_token: Secret,
        from_number: String,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let messages_url = api_url(&api_base, &["2010-04-01", "Accounts", &account_sid, "Messages.json"])?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A POST must never be replayed somewhere else (or turned into a GET) behind
            // our back: Twilio does not redirect this resource, so a redirect is an error.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("whatsapp-memory/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let from_number = strip_whatsapp_prefix(&from_number).to_string();
        Ok(Self { client, messages_url, account_sid, auth_token, from_number })
    }

    /// Posts one message to `to` with `content` (`Body`, or a template's fields).
    async fn post(&self, to: &str, content: Vec<(&str, String)>) -> Result<SentMessage, SendError> {
        let mut form = vec![("To", whatsapp_address(to)), ("From", whatsapp_address(&self.from_number))];
        form.extend(content);
        let request = self
            .client
            .post(self.messages_url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(&form);
        let response = outbound::send("twilio", "send_message", request).await.map_err(network_failure)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(network_failure)?;
        if status.is_success() {
            let sent = parse_sent(&bytes)?;
            tracing::info!(sid = %sent.sid, status = %sent.status, "message accepted by Twilio");
            return Ok(sent);
        }
        let error = classify_failure(status, &headers, &bytes);
        tracing::warn!(%status, %error, "Twilio did not accept the message");
        Err(error)
    }
}

impl std::fmt::Debug for TwilioSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSender")
            .field("messages_url", &self.messages_url.as_str())
            .field("account_sid", &self.account_sid)
            .field("auth_token", &self.auth_token)
            .field("from_number", &MaskedPhone(&self.from_number).to_string())
            .finish()
    }
}

#[async_trait]
impl MessageSender for TwilioSender {
    #[tracing::instrument(skip_all, fields(to = %MaskedPhone(to)))]
    async fn send(&self, to: &str, body: &str) -> Result<SentMessage, SendError> {
        self.post(to, vec![("Body", fit_body(body).into_owned())]).await
    }

    /// `ContentSid` with `ContentVariables` instead of `Body`: an approved Content
    /// template, which WhatsApp delivers outside the 24-hour window too.
    #[tracing::instrument(skip_all, fields(to = %MaskedPhone(to)))]
    async fn send_template(
        &self,
        to: &str,
        content_sid: &str,
        variables: &serde_json::Value,
    ) -> Result<SentMessage, SendError> {
        self.post(to, vec![("ContentSid", content_sid.to_string()), ("ContentVariables", variables.to_string())]).await
    }

    #[tracing::instrument(skip_all, fields(to = %MaskedPhone(to)))]
    async fn find_sent(&self, to: &str, body: &str, since: DateTime<Utc>) -> Result<Option<SentMessage>, SendError> {
        // No DateSent filter: a message accepted moments ago may not be sent yet, and
        // Twilio lists newest first, so the first page holds any recent one.
        let query =
            [("To", whatsapp_address(to)), ("From", whatsapp_address(&self.from_number)), ("PageSize", "50".into())];
        let request = self
            .client
            .get(self.messages_url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .query(&query);
        let response = outbound::send("twilio", "find_sent", request).await.map_err(network_failure)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(network_failure)?;
        if !status.is_success() {
            return Err(classify_failure(status, &headers, &bytes));
        }
        let page: MessagePage = serde_json::from_slice(&bytes).map_err(|e| SendError::Retryable {
            code: None,
            message: format!("Twilio's message list could not be read: {e}"),
            retry_after: None,
        })?;
        let body = fit_body(body);
        // Twilio's dates have whole seconds.
        let since = since - chrono::Duration::seconds(1);
        Ok(page
            .messages
            .into_iter()
            .find(|m| {
                m.body.as_deref() == Some(body.as_ref())
                    && m.date_created
                        .as_deref()
                        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                        .is_some_and(|d| d >= since)
            })
            .map(|m| SentMessage { sid: m.sid, status: m.status }))
    }
}

/// One page of `GET …/Messages.json`.
#[derive(Debug, Deserialize)]
struct MessagePage {
    #[serde(default)]
    messages: Vec<ListedMessage>,
}

/// A message as the list shows it.
#[derive(Debug, Deserialize)]
struct ListedMessage {
    sid: String,
    status: String,
    body: Option<String>,
    date_created: Option<String>,
}

/// Twilio's error document: `{"code": 21211, "message": "...", "more_info": "...",
/// "status": 400}`. Every field is optional here: proxies and outages answer other bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct TwilioApiError {
    pub code: Option<i64>,
    pub message: Option<String>,
    pub more_info: Option<String>,
    pub status: Option<u16>,
}

impl TwilioApiError {
    /// Reads Twilio's error JSON; `None` when the body is something else (an HTML page
    /// from a proxy, an empty body).
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(body).ok().filter(|e| e.code.is_some() || e.message.is_some())
    }

    /// Twilio's message with its reference page, or what the body and status tell when it
    /// is not Twilio's JSON (capped, so a large HTML page does not flood a log).
    pub(crate) fn describe(status: StatusCode, body: &[u8]) -> (Option<i64>, String) {
        match Self::parse(body) {
            Some(error) => {
                let mut message = error.message.unwrap_or_else(|| status.to_string());
                if let Some(more_info) = error.more_info {
                    message = format!("{message} ({more_info})");
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

/// What Twilio says about a message it accepted (it says much more; we keep these).
#[derive(Debug, Deserialize)]
struct MessageResource {
    sid: String,
    status: String,
}

/// Reads the 2xx answer. If it cannot be read the message may still have been sent, so
/// this is `Rejected`, never `Retryable`: a retry could deliver the message twice.
fn parse_sent(body: &[u8]) -> Result<SentMessage, SendError> {
    serde_json::from_slice::<MessageResource>(body).map(|m| SentMessage { sid: m.sid, status: m.status }).map_err(|e| {
        SendError::Rejected {
            code: None,
            message: format!("Twilio accepted the message but its answer could not be read: {e}"),
        }
    })
}

/// 429 and 5xx (and 408) can pass; every other status means this request will never
/// be accepted as it is.
fn classify_failure(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> SendError {
    let (code, message) = TwilioApiError::describe(status, body);
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        SendError::Retryable { code, message, retry_after: retry_after(headers) }
    } else {
        SendError::Rejected { code, message }
    }
}

/// A timeout or a connection failure: Twilio may not even have seen the request.
fn network_failure(error: reqwest::Error) -> SendError {
    SendError::Retryable { code: None, message: describe_transport_error(error), retry_after: None }
}

/// A transport failure with its causes ("connection refused" hides in the source chain),
/// without the URL: it carries the account sid and media ids, and the caller knows it.
pub(crate) fn describe_transport_error(error: reqwest::Error) -> String {
    describe_transport_error_of("Twilio", error)
}

/// As [`describe_transport_error`], for a request to `service`.
pub(crate) fn describe_transport_error_of(service: &str, error: reqwest::Error) -> String {
    let kind = if error.is_timeout() { "timed out" } else { "failed" };
    let error = error.without_url();
    let mut message = format!("the request to {service} {kind}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// `Retry-After` in seconds. The HTTP-date form is not used by Twilio (*unverified*);
/// it is ignored and the caller's own back-off applies.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Cuts a body longer than [`MAX_BODY_CHARS`] characters to that length, the last one
/// being "…". Callers already split long answers; this is a safety net, because Twilio
/// refuses an over-long body outright (21617) and a cut reply beats a lost one. Counts
/// Unicode scalar values, as the contract says "characters" (whether Twilio counts UTF-16
/// units for emoji is *unverified*).
fn fit_body(body: &str) -> Cow<'_, str> {
    let mut starts = body.char_indices().map(|(index, _)| index);
    // The start of the last character kept, and whether any character follows it.
    match (starts.nth(MAX_BODY_CHARS - 1), starts.next()) {
        (Some(last), Some(_)) => {
            tracing::warn!(chars = body.chars().count(), "message body over {MAX_BODY_CHARS} characters cut");
            Cow::Owned(format!("{}…", &body[..last]))
        }
        _ => Cow::Borrowed(body),
    }
}

/// Twilio's WhatsApp address for an E.164 number (`whatsapp:+15551234567`), whether or
/// not the number already carries the prefix.
fn whatsapp_address(number: &str) -> String {
    format!("whatsapp:{}", strip_whatsapp_prefix(number))
}

fn strip_whatsapp_prefix(number: &str) -> &str {
    number.trim().strip_prefix("whatsapp:").unwrap_or(number.trim())
}

/// `base` with `segments` appended, each percent-encoded as one path segment (an account
/// sid can never smuggle a `/` or `?` into the URL).
///
/// # Errors
/// When `base` cannot be a base (not an http(s) URL).
pub(crate) fn api_url(base: &url::Url, segments: &[&str]) -> anyhow::Result<url::Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("the Twilio API base {base} cannot carry a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn a_body_within_the_limit_is_sent_as_it_is() {
        let body = "é".repeat(MAX_BODY_CHARS);
        assert!(matches!(fit_body(&body), Cow::Borrowed(b) if b == body));
    }

    #[test]
    fn a_longer_body_is_cut_on_a_character_boundary_with_an_ellipsis() {
        let body = "🍝".repeat(MAX_BODY_CHARS + 1);
        let fitted = fit_body(&body);
        assert_eq!(fitted.chars().count(), MAX_BODY_CHARS);
        assert!(fitted.ends_with("🍝…"));
    }

    #[test]
    fn twilios_error_json_gives_code_and_message() {
        let body = br#"{"code": 21211, "message": "Invalid 'To' Phone Number", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        let (code, message) = TwilioApiError::describe(StatusCode::BAD_REQUEST, body);
        assert_eq!(code, Some(21211));
        assert_eq!(message, "Invalid 'To' Phone Number (https://www.twilio.com/docs/errors/21211)");
    }

    #[test]
    fn a_body_that_is_not_twilios_json_is_described_by_status_and_text() {
        let (code, message) = TwilioApiError::describe(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(code, None);
        assert_eq!(message, "HTTP 502 Bad Gateway: <html>bad gateway</html>");
        assert_eq!(TwilioApiError::describe(StatusCode::BAD_GATEWAY, b"").1, "HTTP 502 Bad Gateway");
        assert!(TwilioApiError::parse(br#"{"detail": "x"}"#).is_none());
    }

    #[test]
    fn rate_limits_and_server_errors_are_retryable_other_client_errors_are_not() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        let body = br#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#;
        assert_eq!(
            classify_failure(StatusCode::TOO_MANY_REQUESTS, &headers, body),
            SendError::Retryable {
                code: Some(20429),
                message: "Too Many Requests".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(classify_failure(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), b"").is_retryable());
        assert!(!classify_failure(StatusCode::UNAUTHORIZED, &HeaderMap::new(), b"").is_retryable());
        assert!(!classify_failure(StatusCode::BAD_REQUEST, &HeaderMap::new(), b"").is_retryable());
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
    }

    #[test]
    fn an_unreadable_success_is_not_retried() {
        assert!(!parse_sent(b"<html>").unwrap_err().is_retryable());
        let sent = parse_sent(br#"{"sid": "SM1", "status": "queued", "to": "whatsapp:+1"}"#).unwrap();
        assert_eq!(sent, SentMessage { sid: "SM1".into(), status: "queued".into() });
    }

    #[test]
    fn numbers_become_whatsapp_addresses_once() {
        assert_eq!(whatsapp_address("+15551234567"), "whatsapp:+15551234567");
        assert_eq!(whatsapp_address("whatsapp:+15551234567"), "whatsapp:+15551234567");
    }

    #[test]
    fn the_messages_url_keeps_the_base_path_and_encodes_the_sid() {
        let base = url::Url::parse("http://127.0.0.1:4010/").unwrap();
        let url = api_url(&base, &["2010-04-01", "Accounts", "AC1", "Messages.json"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:4010/2010-04-01/Accounts/AC1/Messages.json");
        let proxied = url::Url::parse("https://proxy.example/twilio/").unwrap();
        let url = api_url(&proxied, &["Accounts", "AC/../x?y"]).unwrap();
        assert_eq!(url.as_str(), "https://proxy.example/twilio/Accounts/AC%2F..%2Fx%3Fy");
    }

    #[test]
    fn the_token_never_prints() {
        let sender = TwilioSender::new(
            url::Url::parse("https://api.twilio.com").unwrap(),
            "AC1".into(),
            Secret::new("very-secret-token"),
            "+14155238886".into(),
            Duration::from_secs(5),
        )
        .unwrap();
        let printed = format!("{sender:?}");
        assert!(!printed.contains("very-secret-token"));
        assert!(printed.contains("[redacted]"));
    }
}
