//! PostgreSQL's unit of work: every statement a message or a job runs, on the one
//! database transaction its group commit shares (see `postgres_writer`), so a caller
//! never begins, commits or rolls back anything itself.
//! Concurrent deliveries of one `MessageSid` from another server wait on the unique
//! index, then see the first one's committed reply.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, Statement, Value};

use super::pool::map_db_err;
use super::statements::{claim_candidates, labels_json, IMAGE_REHASH_DEQUEUE, REHASHED_IMAGE_UPDATE};
use crate::domain::embedding::QuantizedEmbedding;
use crate::domain::model::{
    InboundMessage, InteractionId, Job, JobId, MediaAsset, MediaAssetId, Memory, MemoryId, MemoryKind, User, UserId,
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

    pub(super) async fn execute(&self, sql: &str, values: Vec<Value>) -> Result<u64, RepositoryError> {
        self.transaction.execute_raw(statement(sql, values)).await.map(|r| r.rows_affected()).map_err(map_db_err)
    }

    pub(super) async fn one(&self, sql: &str, values: Vec<Value>) -> Result<Option<QueryResult>, RepositoryError> {
        self.transaction.query_one_raw(statement(sql, values)).await.map_err(map_db_err)
    }

    pub(super) async fn all(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>, RepositoryError> {
        self.transaction.query_all_raw(statement(sql, values)).await.map_err(map_db_err)
    }

    /// Applies `assignments` (with `$2` = `value`) to a memory's Mem0 row; its user, when
    /// it has one.
    async fn set_mem0(
        &self,
        memory: MemoryId,
        assignments: &str,
        value: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, RepositoryError> {
        let sql =
            format!("UPDATE mem0_index SET {assignments}, updated_at = $3 WHERE memory_id = $1 RETURNING user_id");
        match self.one(&sql, vec![memory.0.into(), value.into(), now.into()]).await? {
            Some(row) => get::<i64>(&row, "user_id").map(Some),
            None => Ok(None),
        }
    }
}

pub(super) fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, RepositoryError> {
    row.try_get::<T>("", column).map_err(map_db_err)
}

const MEDIA_COLUMNS: &str =
    "id, user_id, sha256, ahash, local_path, content_type, size_bytes, width_px, height_px, created_at";

fn media_from_row(row: &QueryResult) -> Result<MediaAsset, RepositoryError> {
    Ok(MediaAsset {
        id: MediaAssetId(get(row, "id")?),
        user_id: UserId(get(row, "user_id")?),
        sha256: get(row, "sha256")?,
        ahash: get(row, "ahash")?,
        local_path: get(row, "local_path")?,
        content_type: get(row, "content_type")?,
        size_bytes: get(row, "size_bytes")?,
        width_px: get(row, "width_px")?,
        height_px: get(row, "height_px")?,
        created_at: get(row, "created_at")?,
    })
}

const MEMORY_COLUMNS: &str = "id, user_id, kind, text, created_at";

fn memory_from_row(row: &QueryResult) -> Result<Memory, RepositoryError> {
    let kind: String = get(row, "kind")?;
    Ok(Memory {
        id: MemoryId(get(row, "id")?),
        user_id: UserId(get(row, "user_id")?),
        kind: MemoryKind::parse(&kind).unwrap_or(MemoryKind::Text),
        text: get(row, "text")?,
        created_at: get(row, "created_at")?,
    })
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
        const FIND: &str = "SELECT id, wa_id, phone_number, display_name, timezone FROM users WHERE wa_id = $1";
        // Nearly every message comes from someone known: one round trip finds them (the
        // writer runs a batch's statements one after another, so each one counts).
        let row = match self.one(FIND, vec![wa_id.into()]).await? {
            Some(row) => row,
            None => {
                self.execute(
                    "INSERT INTO users (wa_id, phone_number, display_name, timezone, created_at, updated_at) \
                     VALUES ($1, $2, $3, NULL, $4, $4) ON CONFLICT (wa_id) DO NOTHING",
                    vec![wa_id.into(), phone_number.into(), display_name.into(), now.into()],
                )
                .await?;
                self.one(FIND, vec![wa_id.into()])
                    .await?
                    .ok_or_else(|| RepositoryError::Internal("a user vanished inside its own transaction".into()))?
            }
        };
        let timezone: Option<String> = get(&row, "timezone")?;
        Ok(User {
            id: UserId(get(&row, "id")?),
            wa_id: get(&row, "wa_id")?,
            phone_number: get(&row, "phone_number")?,
            display_name: get(&row, "display_name")?,
            timezone: timezone.and_then(|z| z.parse().ok()),
        })
    }

    async fn update_display_name(
        &mut self,
        user: UserId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.execute(
            "UPDATE users SET display_name = $2, updated_at = $3 WHERE id = $1",
            vec![user.0.into(), name.into(), now.into()],
        )
        .await
        .map(drop)
    }

    async fn set_timezone(&mut self, user: UserId, zone: &str, now: DateTime<Utc>) -> Result<(), RepositoryError> {
        self.execute(
            "UPDATE users SET timezone = $2, updated_at = $3 WHERE id = $1",
            vec![user.0.into(), zone.into(), now.into()],
        )
        .await
        .map(drop)
    }

    async fn insert_inbound(
        &mut self,
        user: UserId,
        message: &InboundMessage,
    ) -> Result<InboundInsert, RepositoryError> {
        let inserted = self
            .one(
                "INSERT INTO interactions (user_id, twilio_message_sid, direction, message_type, body, raw_form, occurred_at) \
                 VALUES ($1, $2, 'inbound', $3, $4, $5::jsonb, $6) ON CONFLICT (twilio_message_sid) DO NOTHING RETURNING id",
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
            return Ok(InboundInsert::New(InteractionId(get(&row, "id")?)));
        }
        let row = self
            .one(
                "SELECT reply, user_id FROM interactions WHERE twilio_message_sid = $1",
                vec![message.sid.0.clone().into()],
            )
            .await?
            .ok_or_else(|| RepositoryError::Internal("a conflicting interaction is not visible".into()))?;
        Ok(InboundInsert::AlreadyHandled { reply: get(&row, "reply")?, sender: UserId(get(&row, "user_id")?) })
    }

    async fn record_reply(
        &mut self,
        user: UserId,
        inbound: InteractionId,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if reply.is_empty() {
            return self
                .execute("UPDATE interactions SET reply = $2 WHERE id = $1", vec![inbound.0.into(), reply.into()])
                .await
                .map(drop);
        }
        // Both rows in one statement: one round trip on the writer's connection.
        self.execute(
            "WITH answered AS (UPDATE interactions SET reply = $2 WHERE id = $3) \
             INSERT INTO interactions (user_id, twilio_message_sid, direction, message_type, body, in_reply_to, occurred_at) \
             VALUES ($1, NULL, 'outbound', 'text', $2, $3, $4)",
            vec![user.0.into(), reply.into(), inbound.0.into(), now.into()],
        )
        .await
        .map(drop)
    }

    async fn record_delivery(&mut self, delivery: Delivery) -> Result<(), RepositoryError> {
        self.execute(
            "INSERT INTO interactions (user_id, twilio_message_sid, direction, message_type, body, in_reply_to, \
             occurred_at, delivery_status, error_code, error_message) \
             VALUES ($1, $2, 'outbound', 'text', $3, $4, $5, $6, $7, $8)",
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
        // A late "delivered" never overwrites a "read" or "failed" that arrived first.
        let changed = self
            .execute(
                "UPDATE interactions SET delivery_status = $2, error_code = COALESCE($3, error_code), \
                 error_message = COALESCE($4, error_message) \
                 WHERE twilio_message_sid = $1 AND direction = 'outbound' \
                 AND NOT (delivery_status IN ('read', 'failed') AND $2 IN ('sent', 'delivered')) \
                 AND NOT (delivery_status = 'delivered' AND $2 = 'sent')",
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
        let rows = self
            .transaction
            .query_all_raw(statement(
                "SELECT DISTINCT local_path FROM media_assets WHERE user_id = $1 \
                 AND local_path NOT IN (SELECT local_path FROM media_assets WHERE user_id <> $1)",
                vec![user.0.into()],
            ))
            .await
            .map_err(map_db_err)?;
        let orphaned = rows.iter().map(|row| get::<String>(row, "local_path")).collect::<Result<Vec<_>, _>>()?;
        // Work queued for them would act on a user who no longer exists.
        self.execute(
            "DELETE FROM jobs WHERE state IN ('queued', 'dead') AND (payload->>'user_id')::bigint = $1",
            vec![user.0.into()],
        )
        .await?;
        // Mem0 bookkeeping has no foreign key (see the mem0 migration); their Mem0
        // copies go through one delete-all the caller queues.
        for table in ["mem0_links", "mem0_index"] {
            self.execute(&format!("DELETE FROM {table} WHERE user_id = $1"), vec![user.0.into()]).await?;
        }
        // Interactions, memories, media records go with the user through ON DELETE CASCADE.
        self.execute("DELETE FROM users WHERE id = $1", vec![user.0.into()]).await?;
        Ok(orphaned)
    }
}

#[async_trait]
impl MemoryTransaction for PostgresTransaction<'_> {
    async fn save_memory(&mut self, memory: NewMemory) -> Result<MemoryId, RepositoryError> {
        let row = self
            .one(
                "INSERT INTO memories (user_id, interaction_id, media_asset_id, kind, text, created_at, labels) \
                 VALUES ($1, $2, $6, $3, $4, $5, $7::jsonb) RETURNING id",
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
            .await?
            .ok_or_else(|| RepositoryError::Internal("INSERT … RETURNING returned no row".into()))?;
        Ok(MemoryId(get(&row, "id")?))
    }

    async fn delete_memory(&mut self, memory: MemoryId) -> Result<bool, RepositoryError> {
        Ok(self.execute("DELETE FROM memories WHERE id = $1", vec![memory.0.into()]).await? > 0)
    }

    async fn update_memory(
        &mut self,
        memory: MemoryId,
        text: Option<String>,
        labels: Option<Vec<String>>,
    ) -> Result<bool, RepositoryError> {
        let labels_given = labels.is_some();
        let labels = labels.as_deref().and_then(labels_json);
        // COALESCE keeps what was not given; the generated search vector follows the text.
        let changed = self
            .execute(
                "UPDATE memories SET text = COALESCE($2, text), \
                 labels = CASE WHEN $3 THEN $4::jsonb ELSE labels END WHERE id = $1",
                vec![memory.0.into(), text.into(), labels_given.into(), labels.into()],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn record_extracted_text(
        &mut self,
        memory: MemoryId,
        extracted: &str,
        saved_text: &str,
        text: &str,
    ) -> Result<bool, RepositoryError> {
        let changed = self
            .execute(
                "UPDATE memories SET extracted_text = $2, text = CASE WHEN text = $3 THEN $4 ELSE text END \
                 WHERE id = $1",
                vec![memory.0.into(), extracted.into(), saved_text.into(), text.into()],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn delete_last_memory(&mut self, user: UserId) -> Result<Option<Memory>, RepositoryError> {
        let sql = format!(
            "DELETE FROM memories WHERE id = \
             (SELECT id FROM memories WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE) \
             RETURNING {MEMORY_COLUMNS}"
        );
        self.one(&sql, vec![user.0.into()]).await?.as_ref().map(memory_from_row).transpose()
    }

    async fn memory_text(&mut self, memory: MemoryId) -> Result<Option<String>, RepositoryError> {
        // The row lock makes two transactions deciding about one memory take turns (the
        // second sees what the first recorded); it does not block new rows referring to it.
        match self.one("SELECT text FROM memories WHERE id = $1 FOR NO KEY UPDATE", vec![memory.0.into()]).await? {
            Some(row) => get::<String>(&row, "text").map(Some),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl JobTransaction for PostgresTransaction<'_> {
    async fn enqueue_job(&mut self, job: NewJob) -> Result<(), RepositoryError> {
        self.execute(
            "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, due_at, created_at, updated_at, priority) \
             VALUES ($1, $2::jsonb, 'queued', 0, $3, $4, $4, $4, $5)",
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
        // SKIP LOCKED: another process claiming at the same moment takes the next job
        // instead of waiting for this one, and no job is ever claimed twice at once.
        for candidate in claim_candidates("$1", " FOR UPDATE SKIP LOCKED") {
            let row = self
                .one(
                    &format!(
                        "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, updated_at = $1 \
                         WHERE id = ({candidate}) \
                         RETURNING id, kind, payload::text AS payload, attempts, max_attempts, created_at"
                    ),
                    vec![now.into(), lease_until.into()],
                )
                .await?;
            if let Some(row) = row {
                let payload: String = get(&row, "payload")?;
                return Ok(Some(Job {
                    id: JobId(get(&row, "id")?),
                    kind: get(&row, "kind")?,
                    payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                    attempts: get(&row, "attempts")?,
                    max_attempts: get(&row, "max_attempts")?,
                    created_at: get(&row, "created_at")?,
                }));
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
        // The fence: only the claim that is still running this attempt may settle it.
        const OWNED: &str = "WHERE id = $1 AND attempts = $2 AND state = 'running'";
        let mut values: Vec<Value> = vec![job.0.into(), attempt.into(), now.into()];
        let set = match settlement {
            JobSettlement::Done => "state = 'done', lease_until = NULL, updated_at = $3",
            JobSettlement::Retry { due_at, error } => {
                values.extend([due_at.into(), error.into()]);
                "state = 'queued', lease_until = NULL, due_at = $4, last_error = $5, updated_at = $3"
            }
            JobSettlement::Dead { error } => {
                values.push(error.into());
                "state = 'dead', lease_until = NULL, last_error = $4, updated_at = $3"
            }
            JobSettlement::Release => {
                "state = 'queued', lease_until = NULL, attempts = greatest(attempts - 1, 0), updated_at = $3"
            }
        };
        match self.execute(&format!("UPDATE jobs SET {set} {OWNED}"), values).await? {
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
        let changed = self
            .execute(
                "UPDATE jobs SET lease_until = $3 WHERE id = $1 AND attempts = $2 AND state = 'running'",
                vec![job.0.into(), attempt.into(), lease_until.into()],
            )
            .await?;
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
        self.one(
            &format!("SELECT {MEDIA_COLUMNS} FROM media_assets WHERE user_id = $1 AND sha256 = $2"),
            vec![user.0.into(), sha256.into()],
        )
        .await?
        .as_ref()
        .map(media_from_row)
        .transpose()
    }

    async fn find_image_hashes_sharing_a_band(
        &mut self,
        user: UserId,
        bands: [i64; 6],
    ) -> Result<Vec<ImageHashCandidate>, RepositoryError> {
        // Six equality lookups on the covering indexes (user_id, band_i, ahash).
        let sql = (0..6)
            .map(|i| format!("SELECT id, ahash FROM media_assets WHERE user_id = $1 AND band{i} = ${}", i + 2))
            .collect::<Vec<_>>()
            .join(" UNION ");
        let mut values: Vec<Value> = vec![user.0.into()];
        values.extend(bands.iter().map(|b| Value::from(*b)));
        let rows = self.transaction.query_all_raw(statement(&sql, values)).await.map_err(map_db_err)?;
        rows.iter()
            .map(|row| Ok(ImageHashCandidate { asset_id: MediaAssetId(get(row, "id")?), hash: get(row, "ahash")? }))
            .collect()
    }

    async fn find_media_asset(&mut self, id: MediaAssetId) -> Result<Option<MediaAsset>, RepositoryError> {
        self.one(&format!("SELECT {MEDIA_COLUMNS} FROM media_assets WHERE id = $1"), vec![id.0.into()])
            .await?
            .as_ref()
            .map(media_from_row)
            .transpose()
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
        let row = self
            .one(
                "INSERT INTO media_assets (user_id, interaction_id, sha256, ahash, media_url, local_path, content_type, \
                 size_bytes, width_px, height_px, duration_seconds, created_at, band0, band1, band2, band3, band4, band5) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
                values,
            )
            .await?
            .ok_or_else(|| RepositoryError::Internal("INSERT … RETURNING returned no row".into()))?;
        Ok(MediaAssetId(get(&row, "id")?))
    }

    async fn link_interaction_media(
        &mut self,
        interaction: InteractionId,
        index: i32,
        asset: MediaAssetId,
        outcome: &str,
    ) -> Result<(), RepositoryError> {
        self.execute(
            "INSERT INTO interaction_media (interaction_id, media_index, media_asset_id, outcome) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (interaction_id, media_index) DO UPDATE SET media_asset_id = excluded.media_asset_id, \
             outcome = excluded.outcome",
            vec![interaction.0.into(), index.into(), asset.0.into(), outcome.into()],
        )
        .await
        .map(drop)
    }

    async fn store_rehashed_image(&mut self, media: MediaAssetId, hash: ImageHash) -> Result<(), RepositoryError> {
        let mut values: Vec<Value> = vec![hash.to_i64().into()];
        values.extend(bands(hash).map(Value::from));
        values.push(media.0.into());
        self.execute(REHASHED_IMAGE_UPDATE, values).await?;
        self.drop_image_rehash(media).await
    }

    async fn drop_image_rehash(&mut self, media: MediaAssetId) -> Result<(), RepositoryError> {
        self.execute(IMAGE_REHASH_DEQUEUE, vec![media.0.into()]).await.map(drop)
    }
}

#[async_trait]
impl IndexTransaction for PostgresTransaction<'_> {
    async fn mem0_copies(&mut self, memory: MemoryId) -> Result<Mem0Copies, RepositoryError> {
        let rows = self
            .transaction
            .query_all_raw(statement(
                "SELECT mem0_id FROM mem0_links WHERE memory_id = $1 ORDER BY mem0_id",
                vec![memory.0.into()],
            ))
            .await
            .map_err(map_db_err)?;
        let ids = rows.iter().map(|row| get::<String>(row, "mem0_id")).collect::<Result<Vec<_>, _>>()?;
        let event_id =
            match self.one("SELECT event_id FROM mem0_index WHERE memory_id = $1", vec![memory.0.into()]).await? {
                Some(row) => get::<Option<String>>(&row, "event_id")?,
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
                self.execute(
                    "INSERT INTO mem0_index (memory_id, user_id, state, error, event_id, updated_at) \
                     VALUES ($1, $2, 'pending', NULL, NULL, $3) ON CONFLICT (memory_id) DO UPDATE SET \
                     state = 'pending', error = NULL, event_id = NULL, updated_at = excluded.updated_at",
                    vec![memory.0.into(), user.0.into(), now.into()],
                )
                .await?;
            }
            Mem0IndexChange::EventStarted(event) => {
                self.set_mem0(memory, "event_id = $2", Some(event), now).await?;
            }
            Mem0IndexChange::EventFailed => {
                self.set_mem0(memory, "event_id = $2", None, now).await?;
            }
            Mem0IndexChange::Failed(error) => {
                self.set_mem0(memory, "state = 'failed', event_id = NULL, error = $2", Some(error), now).await?;
            }
            Mem0IndexChange::Indexed(ids) => {
                if let Some(user) =
                    self.set_mem0(memory, "state = 'indexed', event_id = NULL, error = $2", None, now).await?
                {
                    for id in ids {
                        self.execute(
                            "INSERT INTO mem0_links (memory_id, mem0_id, user_id) VALUES ($1, $2, $3) \
                             ON CONFLICT DO NOTHING",
                            vec![memory.0.into(), id.into(), user.into()],
                        )
                        .await?;
                    }
                }
            }
            Mem0IndexChange::Forgotten => {
                for table in ["mem0_links", "mem0_index"] {
                    self.execute(&format!("DELETE FROM {table} WHERE memory_id = $1"), vec![memory.0.into()]).await?;
                }
            }
        }
        let row =
            self.one("SELECT EXISTS (SELECT 1 FROM memories WHERE id = $1) AS present", vec![memory.0.into()]).await?;
        row.map_or(Ok(false), |row| get::<bool>(&row, "present"))
    }

    async fn queue_embedding(&mut self, memory: MemoryId) -> Result<(), RepositoryError> {
        self.execute("INSERT INTO embed_queue (memory_id) VALUES ($1) ON CONFLICT DO NOTHING", vec![memory.0.into()])
            .await
            .map(drop)
    }

    async fn queue_missing_embeddings(&mut self, model: &str) -> Result<u64, RepositoryError> {
        self.execute(
            "INSERT INTO embed_queue (memory_id) SELECT m.id FROM memories m WHERE NOT EXISTS \
             (SELECT 1 FROM memory_embeddings e WHERE e.memory_id = m.id AND e.model = $1) \
             ORDER BY m.id ON CONFLICT DO NOTHING",
            vec![model.into()],
        )
        .await
    }

    async fn dequeue_embeddings(&mut self, memories: &[MemoryId]) -> Result<(), RepositoryError> {
        if memories.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (1..=memories.len()).map(|i| format!("${i}")).collect();
        let sql = format!("DELETE FROM embed_queue WHERE memory_id IN ({})", placeholders.join(", "));
        self.execute(&sql, memories.iter().map(|m| m.0.into()).collect()).await.map(drop)
    }

    async fn save_embedding(
        &mut self,
        memory: MemoryId,
        embedded_text: &str,
        model: &str,
        vector: &QuantizedEmbedding,
    ) -> Result<bool, RepositoryError> {
        // Several servers may store one user's embeddings at once: locking the user's row
        // (a lock that does not block new memories) makes their numbers follow commit
        // order, so a reader that has seen number n has seen everything before it.
        self.execute(
            "SELECT 1 FROM users WHERE id = (SELECT user_id FROM memories WHERE id = $1) FOR NO KEY UPDATE",
            vec![memory.0.into()],
        )
        .await?;
        let stored = self
            .execute(
                "INSERT INTO memory_embeddings (memory_id, user_id, model, seq, scale, vector) \
                 SELECT m.id, m.user_id, $3, COALESCE((SELECT MAX(e.seq) FROM memory_embeddings e \
                 WHERE e.user_id = m.user_id AND e.model = $3), 0) + 1, $4, $5 \
                 FROM memories m WHERE m.id = $1 AND m.text = $2 \
                 ON CONFLICT (memory_id) DO UPDATE SET model = excluded.model, seq = excluded.seq, \
                 scale = excluded.scale, vector = excluded.vector",
                vec![
                    memory.0.into(),
                    embedded_text.into(),
                    model.into(),
                    vector.scale.into(),
                    vector.to_bytes().into(),
                ],
            )
            .await?;
        Ok(stored > 0)
    }
}
