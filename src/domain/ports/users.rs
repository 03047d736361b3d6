//! Users and their messages inside a transaction: who wrote, what they sent, what we
//! answered, and erasing all of it on request.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::RepositoryError;
use crate::domain::model::{InboundMessage, InteractionId, User, UserId};

/// What inserting an inbound interaction found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundInsert {
    /// A message we have not seen: go on and handle it.
    New(InteractionId),
    /// A `MessageSid` already stored; `reply` is what we answered then, `sender` whose
    /// message it was (a redelivery only when it is the same sender).
    AlreadyHandled { reply: Option<String>, sender: UserId },
}

/// A message sent (or not) through the REST API, recorded as an outbound interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub user_id: UserId,
    pub in_reply_to: Option<InteractionId>,
    pub body: String,
    /// Twilio's sid when it accepted the message.
    pub twilio_sid: Option<String>,
    /// `queued`, … or `failed`.
    pub status: String,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// A status the channel reported for a message we sent (Meta's `statuses[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStatus {
    /// The channel's id of our message (a `wamid.…`).
    pub message_id: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
}

/// Users and their messages, inside one transaction (see [`super::UnitOfWork`]).
///
/// # Errors
/// Every method fails with [`RepositoryError`]; the caller aborts the whole unit.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserTransaction: Send {
    /// Finds the user by WhatsApp id or creates them. Does not change an existing user.
    async fn find_or_create_user(
        &mut self,
        wa_id: &str,
        phone_number: &str,
        display_name: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<User, RepositoryError>;

    /// Keeps the WhatsApp profile name the user shows now.
    async fn update_display_name(
        &mut self,
        user: UserId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// Stores the user's chosen IANA zone name.
    async fn set_timezone(&mut self, user: UserId, zone: &str, now: DateTime<Utc>) -> Result<(), RepositoryError>;

    /// Inserts the inbound interaction unless its `MessageSid` is already stored; the
    /// unique index decides, never a read before the write.
    async fn insert_inbound(
        &mut self,
        user: UserId,
        message: &InboundMessage,
    ) -> Result<InboundInsert, RepositoryError>;

    /// Records the answer on the inbound row (so a redelivery answers the same) and as
    /// an outbound interaction.
    async fn record_reply(
        &mut self,
        user: UserId,
        inbound: InteractionId,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// Records a message sent (or refused) through the REST API.
    async fn record_delivery(&mut self, delivery: Delivery) -> Result<(), RepositoryError>;

    /// Records what the channel later reported about a message we sent (`delivered`,
    /// `read`, `failed` with its error), found by the channel's message id. Returns
    /// whether such a message of ours was found (a status of something we did not send,
    /// or of a send whose record is not committed yet, changes nothing).
    async fn update_delivery_status(&mut self, update: DeliveryStatus) -> Result<bool, RepositoryError>;

    /// Erases a user and everything held about them (interactions, memories and their
    /// search entries, media records, queued jobs). Returns the stored files that no
    /// other user's media refers to, for the caller to delete once this commits.
    async fn erase_user(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError>;
}
