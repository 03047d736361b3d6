//! Reading a channel's webhook deliveries. Meta's Cloud API posts JSON that may batch
//! many messages and status reports; the raw delivery is stored first (so nothing Meta
//! sent is lost when our own processing fails) and decoded later by this port.

use chrono::{DateTime, Utc};

use super::DeliveryStatus;
use crate::domain::model::InboundMessage;

/// One thing a delivery carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelEvent {
    /// A message from a user, to store and answer.
    Message(InboundMessage),
    /// What became of a message we sent.
    Status(DeliveryStatus),
    /// Something acknowledged but not acted on (a reaction, an unsupported type, a
    /// change of another field); the text says what, for the log.
    Skipped(String),
}

/// Turns a raw webhook delivery into events.
#[cfg_attr(test, mockall::automock)]
pub trait DeliveryDecoder: Send + Sync {
    /// Every event of `body`, in order, stamped `received_at`.
    ///
    /// # Errors
    /// A message saying why the body is not a delivery at all (not JSON, another
    /// object); decoding it again will fail the same way.
    fn decode(&self, body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<ChannelEvent>, String>;
}
