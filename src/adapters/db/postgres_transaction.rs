//! PostgreSQL's unit of work: every statement a message or a job runs, on the one
//! database transaction its group commit shares (see `postgres_writer`), so a caller
//! never begins, commits or rolls back anything itself. The SQL and the row mappings
//! are shared with SQLite (see `statements`); what is here is binding PostgreSQL's
//! values and the order of statements where the engines' differ.
//! Concurrent deliveries of one `MessageSid` from another server wait on the unique
//! index, then see the first one's committed reply.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, Statement, Value};

use super::pool::map_db_err;
use super::row::Row;
use super::statements::indexes::*;
use super::statements::jobs::{
    claims, job_from_row, JOB_DEAD, JOB_DONE, JOB_INSERT, JOB_RELEASE, JOB_RETRY, LEASE_RENEW,
};
use super::statements::media::*;
use super::statements::memories::*;
use super::statements::users_messages::*;
use super::statements::Dialect;
use crate::domain::embedding::QuantizedEmbedding;
use crate::domain::model::{
    InboundMessage, InteractionId, Job, JobId, MediaAsset, MediaAssetId, Memory, MemoryId, User, UserId,
};
use crate::domain::perceptual::{bands, ImageHash};
use crate::domain::ports::{
    Delivery, DeliveryStatus, ImageHashCandidate, InboundInsert, IndexTransaction, JobSettlement, JobTransaction,
    MediaTransaction, Mem0Copies, Mem0IndexChange, MemoryTransaction, NewJob, NewMediaAsset, NewMemory,
    RepositoryError, UserTransaction,
};

/// One message's (or job's) view of the shared group transaction: its statements run on
/// the writer's open transaction, inside the savepoint the writer opened for it.
pub(super) struct PostgresTransaction<'c> {
    transaction: &'c DatabaseTransaction,
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

impl<'c> PostgresTransaction<'c> {
    /// Statements on `transaction`, which the caller (the writer) owns and ends.
    pub(super) fn new(transaction: &'c DatabaseTransaction) -> Self {
        Self { transaction }
    }

    /// Runs `sql`; how many rows it changed.
    pub(super) async fn execute(&self, sql: &str, values: Vec<Value>) -> Result<u64, RepositoryError> {
        self.transaction.execute_raw(statement(sql, values)).await.map(|r| r.rows_affected()).map_err(map_db_err)
    }

    /// The first row of `sql`, if there is one.
    pub(super) async fn one(&self, sql: &str, values: Vec<Value>) -> Result<Option<QueryResult>, RepositoryError> {
        self.transaction.query_one_raw(statement(sql, values)).await.map_err(map_db_err)
    }

    /// The row `sql` must return (an `INSERT … RETURNING`).
    pub(super) async fn returned(&self, sql: &str, values: Vec<Value>) -> Result<QueryResult, RepositoryError> {
        self.one(sql, values).await?.ok_or_else(|| RepositoryError::Internal("RETURNING returned no row".into()))
    }

    /// Every row of `sql`.
    pub(super) async fn all(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>, RepositoryError> {
        self.transaction.query_all_raw(statement(sql, values)).await.map_err(map_db_err)
    }

    /// Runs one of the statements that set a memory's Mem0 state (`$2` = `value`); the
    /// memory's user, when it has a Mem0 row.
    async fn set_mem0(
        &self,
        sql: &str,
        memory: MemoryId,
        value: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, RepositoryError> {
        let row = self.one(sql, vec![memory.0.into(), value.into(), now.into()]).await?;
        row.map(|row| row.value("user_id")).transpose()
    }
}

#[async_trait]
impl UserTransaction for PostgresTransaction<'_> {
    async fn find_or_create_user(
        &mut self,
        wa_id: &str,
        phone_number: &str,
        display_name: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<User, RepositoryError> {
        // Nearly every message comes from someone known: one round trip finds them (the
        // writer runs a batch's statements one after another, so each one counts).
        if let Some(row) = self.one(USER_BY_WA_ID.postgres(), vec![wa_id.into()]).await? {
            return user_from_row(&row);
        }
        self.execute(USER_INSERT.postgres(), vec![wa_id.into(), phone_number.into(), display_name.into(), now.into()])
            .await?;
        let row = self
            .one(USER_BY_WA_ID.postgres(), vec![wa_id.into()])
            .await?
            .ok_or_else(|| RepositoryError::Internal("a user vanished inside its own transaction".into()))?;
        user_from_row(&row)
    }

    async fn update_display_name(
        &mut self,
        user: UserId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.execute(USER_DISPLAY_NAME_UPDATE.postgres(), vec![user.0.into(), name.into(), now.into()]).await.map(drop)
    }

    async fn set_timezone(&mut self, user: UserId, zone: &str, now: DateTime<Utc>) -> Result<(), RepositoryError> {
        self.execute(USER_TIMEZONE_UPDATE.postgres(), vec![user.0.into(), zone.into(), now.into()]).await.map(drop)
    }

    async fn insert_inbound(
        &mut self,
        user: UserId,
        message: &InboundMessage,
    ) -> Result<InboundInsert, RepositoryError> {
        let inserted = self
            .one(
                INBOUND_INSERT.postgres(),
                vec![
                    user.0.into(),
                    message.sid.0.clone().into(),
                    message.message_type.clone().into(),
                    message.body.clone().into(),
                    message.raw_form.to_string().into(),
                    message.received_at.into(),
                ],
            )
            .await?;
        if let Some(row) = inserted {
            return Ok(InboundInsert::New(InteractionId(row.value("id")?)));
        }
        let row = self
            .one(INBOUND_BY_SID.postgres(), vec![message.sid.0.clone().into()])
            .await?
            .ok_or_else(|| RepositoryError::Internal("a conflicting interaction is not visible".into()))?;
        Ok(InboundInsert::AlreadyHandled { reply: row.value("reply")?, sender: UserId(row.value("user_id")?) })
    }

    async fn record_reply(
        &mut self,
        user: UserId,
        inbound: InteractionId,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if reply.is_empty() {
            return self.execute(REPLY_SET.postgres(), vec![inbound.0.into(), reply.into()]).await.map(drop);
        }
        self.execute(
            REPLY_WITH_OUTBOUND_POSTGRES.postgres(),
            vec![user.0.into(), reply.into(), inbound.0.into(), now.into()],
        )
        .await
        .map(drop)
    }

    async fn record_delivery(&mut self, delivery: Delivery) -> Result<(), RepositoryError> {
        self.execute(
            DELIVERY_INSERT.postgres(),
            vec![
                delivery.user_id.0.into(),
                delivery.twilio_sid.into(),
                delivery.body.into(),
                delivery.in_reply_to.map(|i| i.0).into(),
                delivery.occurred_at.into(),
                delivery.status.into(),
                delivery.error_code.into(),
                delivery.error_message.into(),
            ],
        )
        .await
        .map(drop)
    }

    async fn update_delivery_status(&mut self, update: DeliveryStatus) -> Result<bool, RepositoryError> {
        let changed = self
            .execute(
                DELIVERY_STATUS_UPDATE.postgres(),
                vec![
                    update.message_id.into(),
                    update.status.into(),
                    update.error_code.into(),
                    update.error_message.into(),
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn erase_user(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError> {
        let rows = self.all(ORPHANED_MEDIA_PATHS.postgres(), vec![user.0.into()]).await?;
        let orphaned = rows.iter().map(|row| row.value("local_path")).collect::<Result<Vec<String>, _>>()?;
        for statement in [
            QUEUED_JOBS_OF_USER_DELETE.postgres(),
            MEM0_LINKS_OF_USER_DELETE.postgres(),
            MEM0_INDEX_OF_USER_DELETE.postgres(),
            USER_DELETE.postgres(),
        ] {
            self.execute(statement, vec![user.0.into()]).await?;
        }
        Ok(orphaned)
    }
}

#[async_trait]
impl MemoryTransaction for PostgresTransaction<'_> {
    async fn save_memory(&mut self, memory: NewMemory) -> Result<MemoryId, RepositoryError> {
        let row = self
            .returned(
                MEMORY_INSERT.postgres(),
                vec![
                    memory.user_id.0.into(),
                    memory.interaction_id.map(|i| i.0).into(),
                    memory.kind.as_str().into(),
                    memory.text.into(),
                    memory.created_at.into(),
                    memory.media_asset_id.map(|a| a.0).into(),
                    labels_json(&memory.labels).into(),
                ],
            )
            .await?;
        row.value("id").map(MemoryId)
    }

    async fn delete_memory(&mut self, memory: MemoryId) -> Result<bool, RepositoryError> {
        Ok(self.execute(MEMORY_DELETE.postgres(), vec![memory.0.into()]).await? > 0)
    }

    async fn update_memory(
        &mut self,
        memory: MemoryId,
        text: Option<String>,
        labels: Option<Vec<String>>,
    ) -> Result<bool, RepositoryError> {
        let labels_given = labels.is_some();
        let labels = labels.as_deref().and_then(labels_json);
        let values = vec![memory.0.into(), text.into(), labels_given.into(), labels.into()];
        Ok(self.execute(MEMORY_UPDATE.postgres(), values).await? > 0)
    }

    async fn record_extracted_text(
        &mut self,
        memory: MemoryId,
        extracted: &str,
        saved_text: &str,
        text: &str,
    ) -> Result<bool, RepositoryError> {
        let values = vec![memory.0.into(), extracted.into(), saved_text.into(), text.into()];
        Ok(self.execute(EXTRACTED_TEXT_UPDATE.postgres(), values).await? > 0)
    }

    async fn delete_last_memory(&mut self, user: UserId) -> Result<Option<Memory>, RepositoryError> {
        self.one(LAST_MEMORY_DELETE.postgres(), vec![user.0.into()]).await?.as_ref().map(memory_from_row).transpose()
    }

    async fn memory_text(&mut self, memory: MemoryId) -> Result<Option<String>, RepositoryError> {
        self.one(MEMORY_TEXT.postgres(), vec![memory.0.into()]).await?.map(|row| row.value("text")).transpose()
    }
}

#[async_trait]
impl JobTransaction for PostgresTransaction<'_> {
    async fn enqueue_job(&mut self, job: NewJob) -> Result<(), RepositoryError> {
        self.execute(
            JOB_INSERT.postgres(),
            vec![
                job.kind.into(),
                job.payload.to_string().into(),
                job.max_attempts.into(),
                job.due_at.into(),
                job.priority.as_i16().into(),
            ],
        )
        .await
        .map(drop)
    }

    async fn claim_job(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Job>, RepositoryError> {
        for claim in claims(Dialect::Postgres) {
            if let Some(row) = self.one(claim, vec![now.into(), lease_until.into()]).await? {
                return job_from_row(&row).map(Some);
            }
        }
        Ok(None)
    }

    async fn settle_job(
        &mut self,
        job: JobId,
        attempt: i32,
        settlement: JobSettlement,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        let mut values: Vec<Value> = vec![job.0.into(), attempt.into(), now.into()];
        let sql = match settlement {
            JobSettlement::Done => JOB_DONE.postgres(),
            JobSettlement::Retry { due_at, error } => {
                values.extend([due_at.into(), error.into()]);
                JOB_RETRY.postgres()
            }
            JobSettlement::Dead { error } => {
                values.push(error.into());
                JOB_DEAD.postgres()
            }
            JobSettlement::Release => JOB_RELEASE.postgres(),
        };
        match self.execute(sql, values).await? {
            0 => Err(RepositoryError::LeaseLost(job.0)),
            _ => Ok(()),
        }
    }

    async fn renew_lease(
        &mut self,
        job: JobId,
        attempt: i32,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let changed =
            self.execute(LEASE_RENEW.postgres(), vec![job.0.into(), attempt.into(), lease_until.into()]).await?;
        Ok(changed > 0)
    }
}

#[async_trait]
impl MediaTransaction for PostgresTransaction<'_> {
    async fn find_media_by_sha256(
        &mut self,
        user: UserId,
        sha256: &str,
    ) -> Result<Option<MediaAsset>, RepositoryError> {
        let row = self.one(MEDIA_BY_SHA256.postgres(), vec![user.0.into(), sha256.into()]).await?;
        row.as_ref().map(media_from_row).transpose()
    }

    async fn find_image_hashes_sharing_a_band(
        &mut self,
        user: UserId,
        bands: [i64; 6],
    ) -> Result<Vec<ImageHashCandidate>, RepositoryError> {
        let mut values: Vec<Value> = vec![user.0.into()];
        values.extend(bands.iter().map(|b| Value::from(*b)));
        let rows = self.all(IMAGE_HASHES_SHARING_A_BAND.postgres(), values).await?;
        rows.iter()
            .map(|row| Ok(ImageHashCandidate { asset_id: MediaAssetId(row.value("id")?), hash: row.value("ahash")? }))
            .collect()
    }

    async fn find_media_asset(&mut self, id: MediaAssetId) -> Result<Option<MediaAsset>, RepositoryError> {
        self.one(MEDIA_BY_ID.postgres(), vec![id.0.into()]).await?.as_ref().map(media_from_row).transpose()
    }

    async fn insert_media_asset(&mut self, asset: NewMediaAsset) -> Result<MediaAssetId, RepositoryError> {
        let bands = asset.bands.map(|b| b.map(Some)).unwrap_or([None; 6]);
        let mut values: Vec<Value> = vec![
            asset.user_id.0.into(),
            asset.interaction_id.map(|i| i.0).into(),
            asset.sha256.into(),
            asset.ahash.into(),
            asset.media_url.into(),
            asset.local_path.into(),
            asset.content_type.into(),
            asset.size_bytes.into(),
            asset.width_px.into(),
            asset.height_px.into(),
            asset.duration_seconds.into(),
            asset.created_at.into(),
        ];
        values.extend(bands.iter().map(|b| Value::from(*b)));
        self.returned(MEDIA_INSERT.postgres(), values).await?.value("id").map(MediaAssetId)
    }

    async fn link_interaction_media(
        &mut self,
        interaction: InteractionId,
        index: i32,
        asset: MediaAssetId,
        outcome: &str,
    ) -> Result<(), RepositoryError> {
        let values = vec![interaction.0.into(), index.into(), asset.0.into(), outcome.into()];
        self.execute(INTERACTION_MEDIA_LINK.postgres(), values).await.map(drop)
    }

    async fn store_rehashed_image(&mut self, media: MediaAssetId, hash: ImageHash) -> Result<(), RepositoryError> {
        let mut values: Vec<Value> = vec![hash.to_i64().into()];
        values.extend(bands(hash).map(Value::from));
        values.push(media.0.into());
        self.execute(REHASHED_IMAGE_UPDATE.postgres(), values).await?;
        self.drop_image_rehash(media).await
    }

    async fn drop_image_rehash(&mut self, media: MediaAssetId) -> Result<(), RepositoryError> {
        self.execute(IMAGE_REHASH_DEQUEUE.postgres(), vec![media.0.into()]).await.map(drop)
    }
}

#[async_trait]
impl IndexTransaction for PostgresTransaction<'_> {
    async fn mem0_copies(&mut self, memory: MemoryId) -> Result<Mem0Copies, RepositoryError> {
        let rows = self.all(MEM0_LINK_IDS.postgres(), vec![memory.0.into()]).await?;
        let ids = rows.iter().map(|row| row.value("mem0_id")).collect::<Result<Vec<String>, _>>()?;
        let event_id = match self.one(MEM0_EVENT_ID.postgres(), vec![memory.0.into()]).await? {
            Some(row) => row.value("event_id")?,
            None => None,
        };
        Ok(Mem0Copies { ids, event_id })
    }

    async fn update_mem0_index(
        &mut self,
        memory: MemoryId,
        change: Mem0IndexChange,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        match change {
            Mem0IndexChange::Pending { user } => {
                self.execute(MEM0_PENDING_UPSERT.postgres(), vec![memory.0.into(), user.0.into(), now.into()]).await?;
            }
            Mem0IndexChange::EventStarted(event) => {
                self.set_mem0(MEM0_EVENT_SET.postgres(), memory, Some(event), now).await?;
            }
            Mem0IndexChange::EventFailed => {
                self.set_mem0(MEM0_EVENT_SET.postgres(), memory, None, now).await?;
            }
            Mem0IndexChange::Failed(error) => {
                self.set_mem0(MEM0_FAILED_SET.postgres(), memory, Some(error), now).await?;
            }
            Mem0IndexChange::Indexed(ids) => {
                if let Some(user) = self.set_mem0(MEM0_INDEXED_SET.postgres(), memory, None, now).await? {
                    for id in ids {
                        self.execute(MEM0_LINK_INSERT.postgres(), vec![memory.0.into(), id.into(), user.into()])
                            .await?;
                    }
                }
            }
            Mem0IndexChange::Forgotten => {
                self.execute(MEM0_LINKS_OF_MEMORY_DELETE.postgres(), vec![memory.0.into()]).await?;
                self.execute(MEM0_INDEX_OF_MEMORY_DELETE.postgres(), vec![memory.0.into()]).await?;
            }
        }
        self.returned(MEMORY_EXISTS.postgres(), vec![memory.0.into()]).await?.value("present")
    }

    async fn queue_embedding(&mut self, memory: MemoryId) -> Result<(), RepositoryError> {
        self.execute(EMBED_QUEUE_INSERT.postgres(), vec![memory.0.into()]).await.map(drop)
    }

    async fn queue_missing_embeddings(&mut self, model: &str) -> Result<u64, RepositoryError> {
        self.execute(MISSING_EMBEDDINGS_QUEUE.postgres(), vec![model.into()]).await
    }

    async fn dequeue_embeddings(&mut self, memories: &[MemoryId]) -> Result<(), RepositoryError> {
        if memories.is_empty() {
            return Ok(());
        }
        let sql = embed_queue_delete_postgres(memories.len());
        self.execute(&sql, memories.iter().map(|m| m.0.into()).collect()).await.map(drop)
    }

    async fn save_embedding(
        &mut self,
        memory: MemoryId,
        embedded_text: &str,
        model: &str,
        vector: &QuantizedEmbedding,
    ) -> Result<bool, RepositoryError> {
        self.execute(EMBEDDING_OWNER_LOCK_POSTGRES.postgres(), vec![memory.0.into()]).await?;
        let values =
            vec![memory.0.into(), embedded_text.into(), model.into(), vector.scale.into(), vector.to_bytes().into()];
        Ok(self.execute(EMBEDDING_UPSERT.postgres(), values).await? > 0)
    }
}
