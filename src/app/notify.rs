//! Late replies: a message to a user is queued as a job in the same transaction as the
//! outcome it reports (an outbox), then sent through the `MessageSender` of the channel
//! the user wrote on (Twilio or Meta's Cloud API), retried on rate limits and 5xx, and
//! recorded as an outbound interaction with the channel's message id or error.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::{JobError, JobHandler};
use crate::domain::model::{Channel, InteractionId, Job, MaskedPhone, UserId};
use crate::domain::ports::{
    transact, Clock, Delivery, JobPriority, JobSettlement, JobTransaction, MessageSender, NewJob, Repository, SendError,
};

/// The job kind that sends one WhatsApp message.
pub const SEND_JOB_KIND: &str = "whatsapp.send";
/// Twilio asks to slow down now and then; a message is worth several tries.
const SEND_MAX_ATTEMPTS: i32 = 8;

/// A reply to send later.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueuedReply {
    pub user_id: i64,
    /// E.164.
    pub to: String,
    pub body: String,
    pub in_reply_to: Option<i64>,
    /// The channel the user wrote on; replies queued before channels existed are Twilio's.
    #[serde(default)]
    pub channel: Channel,
}

/// Queues `reply` inside the caller's transaction, so it is sent if and only if what it
/// reports is committed.
///
/// # Errors
/// When the job cannot be written.
pub async fn queue_reply(
    tx: &mut (impl JobTransaction + ?Sized),
    reply: QueuedReply,
    now: DateTime<Utc>,
) -> Result<(), crate::domain::ports::RepositoryError> {
    tx.enqueue_job(NewJob {
        kind: SEND_JOB_KIND.to_string(),
        payload: serde_json::to_value(&reply).unwrap_or_default(),
        max_attempts: SEND_MAX_ATTEMPTS,
        due_at: now,
        priority: JobPriority::Reply,
    })
    .await
}

/// Queues `reply` in a transaction of its own, for a job given up on: its user must
/// still hear what happened. A failure here can only be logged.
pub async fn queue_reply_alone(repository: &dyn Repository, reply: QueuedReply, now: DateTime<Utc>) {
    if let Err(error) = transact(repository, move |tx| Box::pin(queue_reply(tx, reply, now))).await {
        tracing::error!(%error, "could not queue a reply about a job that was given up");
    }
}

/// Sends queued replies.
pub struct SendJobHandler {
    repository: Arc<dyn Repository>,
    /// `None` when Twilio is not configured: its replies are recorded as not sent.
    sender: Option<Arc<dyn MessageSender>>,
    /// Meta's Cloud API; `None` when it is not configured.
    meta: Option<Arc<dyn MessageSender>>,
    clock: Arc<dyn Clock>,
}

impl SendJobHandler {
    /// Wires the handler to Twilio's sender.
    pub fn new(repository: Arc<dyn Repository>, sender: Option<Arc<dyn MessageSender>>, clock: Arc<dyn Clock>) -> Self {
        Self { repository, sender, meta: None, clock }
    }

    /// Sends the replies to messages that came through Meta's Cloud API with `sender`.
    pub fn with_meta(mut self, sender: Option<Arc<dyn MessageSender>>) -> Self {
        self.meta = sender;
        self
    }

    /// The sender of a channel, if it is configured.
    fn sender_for(&self, channel: Channel) -> Option<&Arc<dyn MessageSender>> {
        match channel {
            Channel::Twilio => self.sender.as_ref(),
            Channel::Meta => self.meta.as_ref(),
        }
    }

    /// The outbound interaction that records `outcome`.
    fn delivery(&self, reply: &QueuedReply, outcome: Result<(String, String), (Option<i64>, String)>) -> Delivery {
        let (twilio_sid, status, error_code, error_message) = match outcome {
            Ok((sid, status)) => (Some(sid), status, None, None),
            Err((code, message)) => (None, "failed".to_string(), code, Some(message)),
        };
        Delivery {
            user_id: UserId(reply.user_id),
            in_reply_to: reply.in_reply_to.map(InteractionId),
            body: reply.body.clone(),
            twilio_sid,
            status,
            error_code,
            error_message,
            occurred_at: self.clock.now(),
        }
    }

    /// Records the delivery and marks the job done in one transaction, so a crash after
    /// this commit cannot send the message again. (Between Twilio's answer and this
    /// commit a crash can still cause one resend: Twilio's Messages API takes no
    /// idempotency key.)
    async fn record(
        &self,
        job: &Job,
        reply: &QueuedReply,
        outcome: Result<(String, String), (Option<i64>, String)>,
    ) -> Result<(), JobError> {
        let delivery = self.delivery(reply, outcome);
        let (job_id, attempt, now) = (job.id, job.attempts, delivery.occurred_at);
        transact(&*self.repository, move |tx| {
            Box::pin(async move {
                tx.record_delivery(delivery).await?;
                tx.settle_job(job_id, attempt, JobSettlement::Done, now).await
            })
        })
        .await?;
        Ok(())
    }
}

fn parse(job: &Job) -> Result<QueuedReply, JobError> {
    serde_json::from_value(job.payload.clone()).map_err(|e| JobError::Permanent(format!("malformed send job: {e}")))
}

#[async_trait]
impl JobHandler for SendJobHandler {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let reply = parse(job)?;
        let Some(sender) = self.sender_for(reply.channel) else {
            let channel = reply.channel.as_str();
            tracing::warn!(to = %MaskedPhone(&reply.to), channel, "the channel is not configured; reply recorded but not sent");
            return self.record(job, &reply, Err((None, format!("the {channel} channel is not configured")))).await;
        };
        if job.attempts > 1 {
            // An earlier attempt may have been accepted by Twilio just before a crash.
            let found = sender.find_sent(&reply.to, &reply.body, job.created_at).await.map_err(|e| {
                JobError::Retryable { message: format!("could not check for an earlier send: {e}"), retry_after: None }
            })?;
            if let Some(sent) = found {
                tracing::info!(sid = %sent.sid, "an earlier attempt was delivered; not sending again");
                return self.record(job, &reply, Ok((sent.sid, sent.status))).await;
            }
        }
        match sender.send(&reply.to, &reply.body).await {
            Ok(sent) => self.record(job, &reply, Ok((sent.sid, sent.status))).await,
            Err(SendError::Retryable { message, retry_after, .. }) => Err(JobError::Retryable { message, retry_after }),
            Err(SendError::Rejected { code, message }) => {
                // Final: recorded as a failed delivery; sending again would fail the same way.
                tracing::warn!(to = %MaskedPhone(&reply.to), channel = reply.channel.as_str(), ?code, %message, "the channel refused a reply");
                self.record(job, &reply, Err((code, message))).await
            }
        }
    }

    /// Records the failed delivery on its own: the job is already settled as dead (by
    /// whichever worker held it last), so recording must not depend on still holding it.
    async fn dead_lettered(&self, job: &Job, error: &str) {
        let Ok(reply) = parse(job) else { return };
        let delivery = self.delivery(&reply, Err((None, error.to_string())));
        if let Err(error) = transact(&*self.repository, move |tx| Box::pin(tx.record_delivery(delivery))).await {
            tracing::error!(%error, "could not record a failed delivery");
        }
    }
}
