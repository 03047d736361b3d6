//! Webhook deliveries that must never be lost (Meta's Cloud API): once the signature is
//! checked, the raw delivery is stored as a job in one short transaction and answered
//! 200 at once; a worker then decodes it and hands each message to ingestion (which
//! de-duplicates on the message id and queues the reply) and records each status. A
//! delivery our own code cannot process stays stored (dead-lettered, with its error)
//! instead of being refused, so Meta never disables the subscription because of us.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::ingest::IngestService;
use super::jobs::{JobError, JobHandler, JobSignal};
use crate::domain::model::{Channel, Job, MaskedPhone};
use crate::domain::ports::{transact, ChannelEvent, DeliveryDecoder, JobPriority, NewJob, Repository, RepositoryError};
use crate::domain::text::clean_text;

/// The job kind that processes one stored Cloud API delivery.
pub const META_DELIVERY_JOB_KIND: &str = "meta.delivery";
/// A delivery whose processing keeps failing for a reason that may pass (the database
/// busy, a search backend down) is tried this often before it is dead-lettered.
const DELIVERY_MAX_ATTEMPTS: i32 = 10;

/// What the job keeps of a delivery: its body as received (after the signature check).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredDelivery {
    pub channel: Channel,
    /// The raw body. Control characters other than newline and tab are dropped (JSON
    /// allows none outside whitespace, and PostgreSQL's JSON refuses U+0000).
    pub body: String,
}

/// Stores a delivery to be processed by a worker, and wakes one.
///
/// # Errors
/// When the job cannot be written: the webhook must then ask Meta to deliver again.
pub async fn store_delivery(
    repository: &dyn Repository,
    signal: Option<&JobSignal>,
    channel: Channel,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    let body = clean_text(&String::from_utf8_lossy(body)).into_owned();
    let payload = serde_json::to_value(StoredDelivery { channel, body }).unwrap_or_default();
    transact(repository, move |tx| {
        Box::pin(tx.enqueue_job(NewJob {
            kind: META_DELIVERY_JOB_KIND.to_string(),
            payload,
            max_attempts: DELIVERY_MAX_ATTEMPTS,
            due_at: now,
            // A person waits for the answer to what is inside.
            priority: JobPriority::Reply,
        }))
    })
    .await?;
    if let Some(signal) = signal {
        signal.notify();
    }
    Ok(())
}

/// Processes stored deliveries.
pub struct DeliveryJobHandler {
    repository: Arc<dyn Repository>,
    ingest: IngestService,
    decoder: Arc<dyn DeliveryDecoder>,
}

impl DeliveryJobHandler {
    /// Wires the handler.
    pub fn new(repository: Arc<dyn Repository>, ingest: IngestService, decoder: Arc<dyn DeliveryDecoder>) -> Self {
        Self { repository, ingest, decoder }
    }
}

#[async_trait]
impl JobHandler for DeliveryJobHandler {
    /// Handles every event. A retry handles the whole delivery again: messages already
    /// stored are recognised by their id and change nothing, statuses are idempotent.
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let stored: StoredDelivery = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("malformed delivery job: {e}")))?;
        let events = self.decoder.decode(stored.body.as_bytes(), job.created_at).map_err(|e| {
            tracing::error!(error = %e, "a signed webhook delivery could not be read; it stays stored as a dead job");
            JobError::Permanent(format!("the delivery could not be read: {e}"))
        })?;
        let mut retry: Option<String> = None;
        for event in events {
            match event {
                ChannelEvent::Message(message) => {
                    let from = message.phone_number.clone();
                    match self.ingest.ingest_message(message).await {
                        Ok(_) => {}
                        Err(error) if error.is_conflict() => {
                            tracing::warn!(from = %MaskedPhone(&from), "a message id already stored for another sender; skipped");
                        }
                        Err(error) if error.is_retryable() => retry = Some(error.to_string()),
                        Err(error) => {
                            tracing::error!(from = %MaskedPhone(&from), %error, "a message could not be stored; skipped");
                        }
                    }
                }
                ChannelEvent::Status(status) => {
                    let (id, state) = (status.message_id.clone(), status.status.clone());
                    match transact(&*self.repository, move |tx| Box::pin(tx.update_delivery_status(status))).await {
                        Ok(true) => tracing::debug!(message_id = %id, status = %state, "delivery status recorded"),
                        Ok(false) => {
                            tracing::debug!(message_id = %id, status = %state, "status of a message we have no record of")
                        }
                        Err(error) if error.is_retryable() => retry = Some(error.to_string()),
                        Err(error) => tracing::error!(%error, "a delivery status could not be recorded"),
                    }
                }
                ChannelEvent::Skipped(what) => tracing::info!(%what, "webhook event acknowledged, not acted on"),
            }
        }
        match retry {
            Some(message) => Err(JobError::Retryable { message, retry_after: None }),
            None => Ok(()),
        }
    }

    async fn dead_lettered(&self, _job: &Job, error: &str) {
        tracing::error!(%error, "a webhook delivery was given up; its body stays in the jobs table");
    }
}
