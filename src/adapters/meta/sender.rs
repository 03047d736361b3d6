//! Sends WhatsApp messages through the Cloud API (`POST /{phone-number-id}/messages`
//! with the bearer token) and translates Meta's answers into "sent", "try later" or
//! "refused", by Meta's error codes.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::graph::{graph_url, is_transient, GraphError, REENGAGEMENT_REQUIRED, TOKEN_INVALID};
use crate::adapters::twilio::sender::{describe_transport_error_of, retry_after};
use crate::config::{MetaConfig, Secret};
use crate::domain::model::MaskedPhone;
use crate::domain::ports::{MessageSender, SendError, SentMessage};

/// The longest text body the Cloud API takes.
pub const MAX_BODY_CHARS: usize = 4096;
/// How long a reply waits after Meta refused the token (190): long enough for an
/// operator to renew it, and the job's attempts bound how often it is tried.
const TOKEN_RETRY: Duration = Duration::from_secs(15 * 60);

/// The [`MessageSender`] for Meta's Cloud API. The token goes only to the configured
/// Graph API base, in the `Authorization` header.
pub struct MetaSender {
    client: reqwest::Client,
    /// `{base}/{version}/{phone-number-id}/messages`, built once.
    messages_url: url::Url,
    access_token: Secret,
}

impl MetaSender {
    /// A sender for one business phone number; `timeout` bounds each call.
    ///
    /// # Errors
    /// When the base URL cannot carry a path or the HTTP client cannot be built.
    pub fn new(config: &MetaConfig, timeout: Duration) -> anyhow::Result<Self> {
        let messages_url =
            graph_url(&config.graph_base_url, &config.graph_version, &[&config.phone_number_id, "messages"])?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("whatsapp-memory/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, messages_url, access_token: config.access_token.clone() })
    }
}

impl std::fmt::Debug for MetaSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaSender")
            .field("messages_url", &self.messages_url.as_str())
            .field("access_token", &self.access_token)
            .finish()
    }
}

/// `{"messages": [{"id": "wamid.…"}]}`, the part of a send's answer we keep.
#[derive(Deserialize)]
struct SendAnswer {
    #[serde(default)]
    messages: Vec<SentId>,
}

#[derive(Deserialize)]
struct SentId {
    id: String,
    message_status: Option<String>,
}

#[async_trait]
impl MessageSender for MetaSender {
    #[tracing::instrument(skip_all, fields(to = %MaskedPhone(to)))]
    async fn send(&self, to: &str, body: &str) -> Result<SentMessage, SendError> {
        let payload = serde_json::json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.trim().trim_start_matches("whatsapp:").trim_start_matches('+'),
            "type": "text",
            "text": {"body": fit_body(body), "preview_url": false},
        });
        let response = self
            .client
            .post(self.messages_url.clone())
            .bearer_auth(self.access_token.expose())
            .json(&payload)
            .send()
            .await
            .map_err(network_failure)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(network_failure)?;
        if status.is_success() {
            let sent = parse_sent(&bytes)?;
            tracing::info!(id = %sent.sid, "message accepted by Meta");
            return Ok(sent);
        }
        let (code, message) = GraphError::describe(status, &bytes);
        let error = match code {
            Some(TOKEN_INVALID) => {
                tracing::error!(
                    %message,
                    "META_ACCESS_TOKEN WAS REFUSED BY META (error 190: expired or invalid): no reply can be sent \
                     until it is renewed; replies wait and are tried again"
                );
                SendError::Retryable { code, message, retry_after: Some(TOKEN_RETRY) }
            }
            Some(REENGAGEMENT_REQUIRED) => SendError::Rejected {
                code,
                message: format!("{message} (outside the 24-hour window: only a template can be sent)"),
            },
            _ if is_transient(status, code) => {
                SendError::Retryable { code, message, retry_after: retry_after(&headers) }
            }
            _ => SendError::Rejected { code, message },
        };
        tracing::warn!(%status, %error, "Meta did not accept the message");
        Err(error)
    }

    /// The Cloud API cannot list sent messages, so an earlier attempt cannot be found:
    /// a crash between Meta's answer and our commit can send one reply twice.
    async fn find_sent(&self, _to: &str, _body: &str, _since: DateTime<Utc>) -> Result<Option<SentMessage>, SendError> {
        Ok(None)
    }
}

/// Reads a 2xx answer; an unreadable one may still have sent the message, so it is
/// `Rejected`, never retried.
fn parse_sent(body: &[u8]) -> Result<SentMessage, SendError> {
    let unreadable = |reason: String| SendError::Rejected {
        code: None,
        message: format!("Meta accepted the message but its answer could not be read: {reason}"),
    };
    let answer: SendAnswer = serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?;
    let sent = answer.messages.into_iter().next().ok_or_else(|| unreadable("no message id".into()))?;
    Ok(SentMessage { sid: sent.id, status: sent.message_status.unwrap_or_else(|| "accepted".into()) })
}

fn network_failure(error: reqwest::Error) -> SendError {
    SendError::Retryable { code: None, message: describe_transport_error_of("Meta", error), retry_after: None }
}

/// A body over [`MAX_BODY_CHARS`] characters cut to that length, ending in "…"; callers
/// already keep replies shorter, this only keeps Meta from refusing one outright.
fn fit_body(body: &str) -> Cow<'_, str> {
    let mut starts = body.char_indices().map(|(index, _)| index);
    match (starts.nth(MAX_BODY_CHARS - 1), starts.next()) {
        (Some(last), Some(_)) => Cow::Owned(format!("{}…", &body[..last])),
        _ => Cow::Borrowed(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bodies_are_cut_to_4096_characters() {
        assert_eq!(fit_body("short"), "short");
        let long = "é".repeat(MAX_BODY_CHARS + 5);
        let fitted = fit_body(&long);
        assert_eq!(fitted.chars().count(), MAX_BODY_CHARS);
        assert!(fitted.ends_with('…'));
        assert!(matches!(fit_body(&"x".repeat(MAX_BODY_CHARS)), Cow::Borrowed(_)));
    }

    #[test]
    fn a_send_answer_gives_the_wamid() {
        let sent = parse_sent(br#"{"messaging_product":"whatsapp","contacts":[{"input":"15551234567","wa_id":"15551234567"}],"messages":[{"id":"wamid.X"}]}"#).unwrap();
        assert_eq!(sent, SentMessage { sid: "wamid.X".into(), status: "accepted".into() });
        assert!(!parse_sent(b"<html>").unwrap_err().is_retryable());
        assert!(!parse_sent(br#"{"messages": []}"#).unwrap_err().is_retryable());
    }
}
