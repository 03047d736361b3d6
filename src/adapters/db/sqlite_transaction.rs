//! SQLite's transaction: the statements of one unit of work over rusqlite, on the
//! single writer's connection inside its savepoint (see `sqlite_writer`). The SQL and
//! the row mappings are shared with PostgreSQL (see `statements`); what is here is
//! binding SQLite's values (timestamps as `sqlite_timestamp` text) and the order of
//! statements where the engines' differ.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Params};

use super::row::Row as _;
use super::sqlite_connection::{map_sqlite_err, sqlite_timestamp};
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

/// The statements of one inbound message, on the writer's connection, inside the
/// writer's savepoint.
pub(super) struct SqliteTransaction<'c> {
    connection: &'c mut Connection,
}

impl<'c> SqliteTransaction<'c> {
    pub(super) fn new(connection: &'c mut Connection) -> Self {
        Self { connection }
    }

    /// Runs `sql` (cached by its text); how many rows it changed.
    pub(super) fn execute(&self, sql: &str, params: impl Params) -> Result<usize, RepositoryError> {
        self.connection.prepare_cached(sql).and_then(|mut s| s.execute(params)).map_err(map_sqlite_err)
    }

    /// The first row of `sql`, mapped, if there is one.
    pub(super) fn one<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, RepositoryError>,
    ) -> Result<Option<T>, RepositoryError> {
        let mut statement = self.connection.prepare_cached(sql).map_err(map_sqlite_err)?;
        let mut rows = statement.query(params).map_err(map_sqlite_err)?;
        rows.next().map_err(map_sqlite_err)?.map(map).transpose()
    }

    /// The row `sql` must return (an `INSERT … RETURNING`), mapped.
    pub(super) fn returned<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, RepositoryError>,
    ) -> Result<T, RepositoryError> {
        self.one(sql, params, map)?.ok_or_else(|| RepositoryError::Internal("RETURNING returned no row".into()))
    }

    /// Every row of `sql`, mapped.
    pub(super) fn all<T>(
        &self,
        sql: &str,
        params: impl Params,
        mut map: impl FnMut(&rusqlite::Row<'_>) -> Result<T, RepositoryError>,
    ) -> Result<Vec<T>, RepositoryError> {
        let mut statement = self.connection.prepare_cached(sql).map_err(map_sqlite_err)?;
        let mut rows = statement.query(params).map_err(map_sqlite_err)?;
        let mut mapped = Vec::new();
        while let Some(row) = rows.next().map_err(map_sqlite_err)? {
            mapped.push(map(row)?);
        }
        Ok(mapped)
    }
}

#[async_trait]
impl UserTransaction for SqliteTransaction<'_> {
    async fn find_or_create_user(
        &mut self,
        wa_id: &str,
        phone_number: &str,
        display_name: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<User, RepositoryError> {
        // In process, a statement costs no round trip: insert-or-nothing, then read.
        self.execute(USER_INSERT.sqlite(), params![wa_id, phone_number, display_name, sqlite_timestamp(now)])?;
        self.returned(USER_BY_WA_ID.sqlite(), params![wa_id], |row| user_from_row(row))
    }

    async fn update_display_name(
        &mut self,
        user: UserId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.execute(USER_DISPLAY_NAME_UPDATE.sqlite(), params![user.0, name, sqlite_timestamp(now)]).map(drop)
    }

    async fn set_timezone(&mut self, user: UserId, zone: &str, now: DateTime<Utc>) -> Result<(), RepositoryError> {
        self.execute(USER_TIMEZONE_UPDATE.sqlite(), params![user.0, zone, sqlite_timestamp(now)]).map(drop)
    }

    async fn insert_inbound(
        &mut self,
        user: UserId,
        message: &InboundMessage,
    ) -> Result<InboundInsert, RepositoryError> {
        let inserted = self.one(
            INBOUND_INSERT.sqlite(),
            params![
                user.0,
                message.sid.0,
                message.message_type,
                message.body,
                message.raw_form.to_string(),
                sqlite_timestamp(message.received_at)
            ],
            |row| row.value("id"),
        )?;
        if let Some(id) = inserted {
            return Ok(InboundInsert::New(InteractionId(id)));
        }
        self.returned(INBOUND_BY_SID.sqlite(), params![message.sid.0], |row| {
            Ok(InboundInsert::AlreadyHandled { reply: row.value("reply")?, sender: UserId(row.value("user_id")?) })
        })
    }

    async fn record_reply(
        &mut self,
        user: UserId,
        inbound: InteractionId,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.execute(REPLY_SET.sqlite(), params![inbound.0, reply])?;
        if reply.is_empty() {
            return Ok(());
        }
        self.execute(OUTBOUND_REPLY_INSERT.sqlite(), params![user.0, reply, inbound.0, sqlite_timestamp(now)]).map(drop)
    }

    async fn record_delivery(&mut self, delivery: Delivery) -> Result<(), RepositoryError> {
        self.execute(
            DELIVERY_INSERT.sqlite(),
            params![
                delivery.user_id.0,
                delivery.twilio_sid,
                delivery.body,
                delivery.in_reply_to.map(|i| i.0),
                sqlite_timestamp(delivery.occurred_at),
                delivery.status,
                delivery.error_code,
                delivery.error_message
            ],
        )
        .map(drop)
    }

    async fn update_delivery_status(&mut self, update: DeliveryStatus) -> Result<bool, RepositoryError> {
        self.execute(
            DELIVERY_STATUS_UPDATE.sqlite(),
            params![update.message_id, update.status, update.error_code, update.error_message],
        )
        .map(|changed| changed > 0)
    }

    async fn erase_user(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError> {
        let orphaned = self.all(ORPHANED_MEDIA_PATHS.sqlite(), params![user.0], |row| row.value("local_path"))?;
        for statement in [
            QUEUED_JOBS_OF_USER_DELETE.sqlite(),
            MEM0_LINKS_OF_USER_DELETE.sqlite(),
            MEM0_INDEX_OF_USER_DELETE.sqlite(),
            USER_DELETE.sqlite(),
        ] {
            self.execute(statement, params![user.0])?;
        }
        Ok(orphaned)
    }
}

#[async_trait]
impl MemoryTransaction for SqliteTransaction<'_> {
    async fn save_memory(&mut self, memory: NewMemory) -> Result<MemoryId, RepositoryError> {
        self.returned(
            MEMORY_INSERT.sqlite(),
            params![
                memory.user_id.0,
                memory.interaction_id.map(|i| i.0),
                memory.kind.as_str(),
                memory.text,
                sqlite_timestamp(memory.created_at),
                memory.media_asset_id.map(|a| a.0),
                labels_json(&memory.labels)
            ],
            |row| row.value("id").map(MemoryId),
        )
    }

    async fn delete_memory(&mut self, memory: MemoryId) -> Result<bool, RepositoryError> {
        self.execute(MEMORY_DELETE.sqlite(), params![memory.0]).map(|deleted| deleted > 0)
    }

    async fn update_memory(
        &mut self,
        memory: MemoryId,
        text: Option<String>,
        labels: Option<Vec<String>>,
    ) -> Result<bool, RepositoryError> {
        let labels_given = labels.is_some();
        let labels = labels.as_deref().and_then(labels_json);
        self.execute(MEMORY_UPDATE.sqlite(), params![memory.0, text, labels_given, labels]).map(|changed| changed > 0)
    }

    async fn record_extracted_text(
        &mut self,
        memory: MemoryId,
        extracted: &str,
        saved_text: &str,
        text: &str,
    ) -> Result<bool, RepositoryError> {
        self.execute(EXTRACTED_TEXT_UPDATE.sqlite(), params![memory.0, extracted, saved_text, text])
            .map(|changed| changed > 0)
    }

    async fn delete_last_memory(&mut self, user: UserId) -> Result<Option<Memory>, RepositoryError> {
        self.one(LAST_MEMORY_DELETE.sqlite(), params![user.0], |row| memory_from_row(row))
    }

    async fn memory_text(&mut self, memory: MemoryId) -> Result<Option<String>, RepositoryError> {
        self.one(MEMORY_TEXT.sqlite(), params![memory.0], |row| row.value("text"))
    }
}

#[async_trait]
impl JobTransaction for SqliteTransaction<'_> {
    async fn enqueue_job(&mut self, job: NewJob) -> Result<(), RepositoryError> {
        let due = sqlite_timestamp(job.due_at);
        self.execute(
            JOB_INSERT.sqlite(),
            params![job.kind, job.payload.to_string(), job.max_attempts, due, job.priority.as_i16()],
        )
        .map(drop)
    }

    async fn claim_job(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Job>, RepositoryError> {
        let now = sqlite_timestamp(now);
        let lease_until = sqlite_timestamp(lease_until);
        for claim in claims(Dialect::Sqlite) {
            if let Some(job) = self.one(claim, params![now, lease_until], |row| job_from_row(row))? {
                return Ok(Some(job));
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
        let now = sqlite_timestamp(now);
        let changed = match settlement {
            JobSettlement::Done => self.execute(JOB_DONE.sqlite(), params![job.0, attempt, now]),
            JobSettlement::Retry { due_at, error } => {
                self.execute(JOB_RETRY.sqlite(), params![job.0, attempt, now, sqlite_timestamp(due_at), error])
            }
            JobSettlement::Dead { error } => self.execute(JOB_DEAD.sqlite(), params![job.0, attempt, now, error]),
            JobSettlement::Release => self.execute(JOB_RELEASE.sqlite(), params![job.0, attempt, now]),
        }?;
        match changed {
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
        self.execute(LEASE_RENEW.sqlite(), params![job.0, attempt, sqlite_timestamp(lease_until)])
            .map(|changed| changed > 0)
    }
}

#[async_trait]
impl MediaTransaction for SqliteTransaction<'_> {
    async fn find_media_by_sha256(
        &mut self,
        user: UserId,
        sha256: &str,
    ) -> Result<Option<MediaAsset>, RepositoryError> {
        self.one(MEDIA_BY_SHA256.sqlite(), params![user.0, sha256], |row| media_from_row(row))
    }

    async fn find_image_hashes_sharing_a_band(
        &mut self,
        user: UserId,
        bands: [i64; 6],
    ) -> Result<Vec<ImageHashCandidate>, RepositoryError> {
        self.all(
            IMAGE_HASHES_SHARING_A_BAND.sqlite(),
            params![user.0, bands[0], bands[1], bands[2], bands[3], bands[4], bands[5]],
            |row| Ok(ImageHashCandidate { asset_id: MediaAssetId(row.value("id")?), hash: row.value("ahash")? }),
        )
    }

    async fn find_media_asset(&mut self, id: MediaAssetId) -> Result<Option<MediaAsset>, RepositoryError> {
        self.one(MEDIA_BY_ID.sqlite(), params![id.0], |row| media_from_row(row))
    }

    async fn insert_media_asset(&mut self, asset: NewMediaAsset) -> Result<MediaAssetId, RepositoryError> {
        let bands = asset.bands.map(|b| b.map(Some)).unwrap_or([None; 6]);
        self.returned(
            MEDIA_INSERT.sqlite(),
            params![
                asset.user_id.0,
                asset.interaction_id.map(|i| i.0),
                asset.sha256,
                asset.ahash,
                asset.media_url,
                asset.local_path,
                asset.content_type,
                asset.size_bytes,
                asset.width_px,
                asset.height_px,
                asset.duration_seconds,
                sqlite_timestamp(asset.created_at),
                bands[0],
                bands[1],
                bands[2],
                bands[3],
                bands[4],
                bands[5]
            ],
            |row| row.value("id").map(MediaAssetId),
        )
    }

    async fn link_interaction_media(
        &mut self,
        interaction: InteractionId,
        index: i32,
        asset: MediaAssetId,
        outcome: &str,
    ) -> Result<(), RepositoryError> {
        self.execute(INTERACTION_MEDIA_LINK.sqlite(), params![interaction.0, index, asset.0, outcome]).map(drop)
    }

    async fn store_rehashed_image(&mut self, media: MediaAssetId, hash: ImageHash) -> Result<(), RepositoryError> {
        let b = bands(hash);
        self.execute(
            REHASHED_IMAGE_UPDATE.sqlite(),
            params![hash.to_i64(), b[0], b[1], b[2], b[3], b[4], b[5], media.0],
        )?;
        self.drop_image_rehash(media).await
    }

    async fn drop_image_rehash(&mut self, media: MediaAssetId) -> Result<(), RepositoryError> {
        self.execute(IMAGE_REHASH_DEQUEUE.sqlite(), params![media.0]).map(drop)
    }
}

#[async_trait]
impl IndexTransaction for SqliteTransaction<'_> {
    async fn mem0_copies(&mut self, memory: MemoryId) -> Result<Mem0Copies, RepositoryError> {
        let ids = self.all(MEM0_LINK_IDS.sqlite(), params![memory.0], |row| row.value("mem0_id"))?;
        let event_id: Option<Option<String>> =
            self.one(MEM0_EVENT_ID.sqlite(), params![memory.0], |row| row.value("event_id"))?;
        Ok(Mem0Copies { ids, event_id: event_id.flatten() })
    }

    async fn update_mem0_index(
        &mut self,
        memory: MemoryId,
        change: Mem0IndexChange,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let now = sqlite_timestamp(now);
        // The statements that set a state return the memory's user, if it has a row.
        let set = |this: &Self, statement: &str, value: Option<String>| {
            this.one(statement, params![memory.0, value, now], |row| row.value::<i64>("user_id"))
        };
        match change {
            Mem0IndexChange::Pending { user } => {
                self.execute(MEM0_PENDING_UPSERT.sqlite(), params![memory.0, user.0, now])?;
            }
            Mem0IndexChange::EventStarted(event) => {
                set(self, MEM0_EVENT_SET.sqlite(), Some(event))?;
            }
            Mem0IndexChange::EventFailed => {
                set(self, MEM0_EVENT_SET.sqlite(), None)?;
            }
            Mem0IndexChange::Failed(error) => {
                set(self, MEM0_FAILED_SET.sqlite(), Some(error))?;
            }
            Mem0IndexChange::Indexed(ids) => {
                if let Some(user) = set(self, MEM0_INDEXED_SET.sqlite(), None)? {
                    for id in ids {
                        self.execute(MEM0_LINK_INSERT.sqlite(), params![memory.0, id, user])?;
                    }
                }
            }
            Mem0IndexChange::Forgotten => {
                self.execute(MEM0_LINKS_OF_MEMORY_DELETE.sqlite(), params![memory.0])?;
                self.execute(MEM0_INDEX_OF_MEMORY_DELETE.sqlite(), params![memory.0])?;
            }
        }
        self.returned(MEMORY_EXISTS.sqlite(), params![memory.0], |row| row.value("present"))
    }

    async fn queue_embedding(&mut self, memory: MemoryId) -> Result<(), RepositoryError> {
        self.execute(EMBED_QUEUE_INSERT.sqlite(), params![memory.0]).map(drop)
    }

    async fn queue_missing_embeddings(&mut self, model: &str) -> Result<u64, RepositoryError> {
        self.execute(MISSING_EMBEDDINGS_QUEUE.sqlite(), params![model]).map(|added| added as u64)
    }

    async fn dequeue_embeddings(&mut self, memories: &[MemoryId]) -> Result<(), RepositoryError> {
        for memory in memories {
            self.execute(EMBED_QUEUE_DELETE.sqlite(), params![memory.0])?;
        }
        Ok(())
    }

    async fn save_embedding(
        &mut self,
        memory: MemoryId,
        embedded_text: &str,
        model: &str,
        vector: &QuantizedEmbedding,
    ) -> Result<bool, RepositoryError> {
        // One writer: the user's next number is their latest plus one, in commit order.
        self.execute(
            EMBEDDING_UPSERT.sqlite(),
            params![memory.0, embedded_text, model, vector.scale, vector.to_bytes()],
        )
        .map(|stored| stored > 0)
    }
}
