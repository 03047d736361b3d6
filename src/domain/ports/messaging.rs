//! Sending WhatsApp messages outside a webhook's answer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A message Twilio accepted for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// Twilio's `SM…` sid.
    pub sid: String,
    /// Twilio's status at acceptance (`queued`, `accepted`, …).
    pub status: String,
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 429, 5xx, a timeout or a network failure: try again later (after `retry_after`
    /// when the service said so).
    #[error("sending failed, try again later: {message}")]
    Retryable { code: Option<i64>, message: String, retry_after: Option<std::time::Duration> },
    /// Any other 4xx (a bad number, no permission): retrying will not help.
    #[error("sending was refused ({code:?}): {message}")]
    Rejected { code: Option<i64>, message: String },
}

/// Twilio's error for a free-form WhatsApp message outside the 24-hour window.
pub const OUTSIDE_WINDOW_ERROR: i64 = 63016;

impl SendError {
    /// Whether the same send could succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }
}

/// Sends WhatsApp messages to users outside a webhook's answer (late replies).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MessageSender: Send + Sync {
    /// Sends `body` to the user at `to` (E.164, `+15551234567`).
    ///
    /// # Errors
    /// [`SendError`], saying whether a retry can help.
    async fn send(&self, to: &str, body: &str) -> Result<SentMessage, SendError>;

    /// Sends an approved template (`content_sid`, with `variables` such as
    /// `{"1": "call mom", "2": "Fri 09:00"}`): the only kind of message WhatsApp delivers
    /// more than 24 hours after the user last wrote. A channel without templates refuses.
    ///
    /// # Errors
    /// [`SendError`], saying whether a retry can help.
    async fn send_template(
        &self,
        to: &str,
        content_sid: &str,
        variables: &serde_json::Value,
    ) -> Result<SentMessage, SendError> {
        let _ = (to, content_sid, variables);
        Err(SendError::Rejected { code: None, message: "this channel cannot send templates".into() })
    }

    /// A message with this body already accepted for `to` at or after `since`: asked
    /// before sending again after a crash, so a reply is not delivered twice.
    ///
    /// # Errors
    /// [`SendError`] when the lookup itself fails.
    async fn find_sent(&self, to: &str, body: &str, since: DateTime<Utc>) -> Result<Option<SentMessage>, SendError>;
}
