//! SQLite's transaction: the statements of one unit of work over rusqlite, on the
//! single writer's connection inside its savepoint (see `sqlite_writer`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::sqlite_connection::{map_sqlite_err, parse_timestamp, sqlite_timestamp};
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

/// The statements of one inbound message, on the writer's connection, inside the
/// writer's savepoint.
pub(super) struct SqliteTransaction<'c> {
    pub(super) connection: &'c mut Connection,
}

impl<'c> SqliteTransaction<'c> {
    pub(super) fn new(connection: &'c mut Connection) -> Self {
        Self { connection }
    }
}

const MEDIA_COLUMNS: &str =
    "id, user_id, sha256, ahash, local_path, content_type, size_bytes, width_px, height_px, created_at";

fn media_from_row(row: &Row<'_>) -> rusqlite::Result<MediaAsset> {
    let created_at: String = row.get(9)?;
    Ok(MediaAsset {
        id: MediaAssetId(row.get(0)?),
        user_id: UserId(row.get(1)?),
        sha256: row.get(2)?,
        ahash: row.get(3)?,
        local_path: row.get(4)?,
        content_type: row.get(5)?,
        size_bytes: row.get(6)?,
        width_px: row.get(7)?,
        height_px: row.get(8)?,
        created_at: parse_timestamp(&created_at)?,
    })
}

pub(super) fn memory_from_row(row: &Row<'_>) -> rusqlite::Result<Memory> {
    let kind: String = row.get(2)?;
    let created_at: String = row.get(4)?;
    Ok(Memory {
        id: MemoryId(row.get(0)?),
        user_id: UserId(row.get(1)?),
        kind: MemoryKind::parse(&kind).unwrap_or(MemoryKind::Text),
        text: row.get(3)?,
        created_at: parse_timestamp(&created_at)?,
    })
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
        let now = sqlite_timestamp(now);
        self.connection
            .prepare_cached(
                "INSERT INTO users (wa_id, phone_number, display_name, timezone, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, NULL, ?4, ?4) ON CONFLICT (wa_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![wa_id, phone_number, display_name, now]))
            .map_err(map_sqlite_err)?;
        self.connection
            .prepare_cached("SELECT id, wa_id, phone_number, display_name, timezone FROM users WHERE wa_id = ?1")
            .and_then(|mut s| {
                s.query_row(params![wa_id], |row| {
                    let timezone: Option<String> = row.get(4)?;
                    Ok(User {
                        id: UserId(row.get(0)?),
                        wa_id: row.get(1)?,
                        phone_number: row.get(2)?,
                        display_name: row.get(3)?,
                        timezone: timezone.and_then(|z| z.parse().ok()),
                    })
                })
            })
            .map_err(map_sqlite_err)
    }

    async fn update_display_name(
        &mut self,
        user: UserId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.connection
            .prepare_cached("UPDATE users SET display_name = ?2, updated_at = ?3 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![user.0, name, sqlite_timestamp(now)]))
            .map(drop)
            .map_err(map_sqlite_err)
    }

    async fn set_timezone(&mut self, user: UserId, zone: &str, now: DateTime<Utc>) -> Result<(), RepositoryError> {
        self.connection
            .prepare_cached("UPDATE users SET timezone = ?2, updated_at = ?3 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![user.0, zone, sqlite_timestamp(now)]))
            .map(drop)
            .map_err(map_sqlite_err)
    }

    async fn insert_inbound(
        &mut self,
        user: UserId,
        message: &InboundMessage,
    ) -> Result<InboundInsert, RepositoryError> {
        let inserted: Option<i64> = self
            .connection
            .prepare_cached(
                "INSERT INTO interactions (user_id, twilio_message_sid, direction, message_type, body, raw_form, occurred_at) \
                 VALUES (?1, ?2, 'inbound', ?3, ?4, ?5, ?6) ON CONFLICT (twilio_message_sid) DO NOTHING RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        user.0,
                        message.sid.0,
                        message.message_type,
                        message.body,
                        message.raw_form.to_string(),
                        sqlite_timestamp(message.received_at)
                    ],
                    |row| row.get(0),
                )
                .optional()
            })
            .map_err(map_sqlite_err)?;
        if let Some(id) = inserted {
            return Ok(InboundInsert::New(InteractionId(id)));
        }
        let (reply, sender): (Option<String>, i64) = self
            .connection
            .prepare_cached("SELECT reply, user_id FROM interactions WHERE twilio_message_sid = ?1")
            .and_then(|mut s| s.query_row(params![message.sid.0], |row| Ok((row.get(0)?, row.get(1)?))))
            .map_err(map_sqlite_err)?;
        Ok(InboundInsert::AlreadyHandled { reply, sender: UserId(sender) })
    }

    async fn record_reply(
        &mut self,
        user: UserId,
        inbound: InteractionId,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.connection
            .prepare_cached("UPDATE interactions SET reply = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![inbound.0, reply]))
            .map_err(map_sqlite_err)?;
        if reply.is_empty() {
            return Ok(());
        }
        self.connection
            .prepare_cached(
                "INSERT INTO interactions (user_id, twilio_message_sid, direction, message_type, body, in_reply_to, occurred_at) \
                 VALUES (?1, NULL, 'outbound', 'text', ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![user.0, reply, inbound.0, sqlite_timestamp(now)]))
            .map(drop)
            .map_err(map_sqlite_err)
    }

    async fn record_delivery(&mut self, delivery: Delivery) -> Result<(), RepositoryError> {
        self.connection
            .prepare_cached(
                "INSERT INTO interactions (user_id, twilio_message_sid, direction, message_type, body, in_reply_to, \
                 occurred_at, delivery_status, error_code, error_message) \
                 VALUES (?1, ?2, 'outbound', 'text', ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    delivery.user_id.0,
                    delivery.twilio_sid,
                    delivery.body,
                    delivery.in_reply_to.map(|i| i.0),
                    sqlite_timestamp(delivery.occurred_at),
                    delivery.status,
                    delivery.error_code,
                    delivery.error_message
                ])
            })
            .map(drop)
            .map_err(map_sqlite_err)
    }

    async fn update_delivery_status(&mut self, update: DeliveryStatus) -> Result<bool, RepositoryError> {
        // A late "delivered" never overwrites a "read" or "failed" that arrived first.
        self.connection
            .prepare_cached(
                "UPDATE interactions SET delivery_status = ?2, error_code = COALESCE(?3, error_code), \
                 error_message = COALESCE(?4, error_message) \
                 WHERE twilio_message_sid = ?1 AND direction = 'outbound' \
                 AND NOT (delivery_status IN ('read', 'failed') AND ?2 IN ('sent', 'delivered')) \
                 AND NOT (delivery_status = 'delivered' AND ?2 = 'sent')",
            )
            .and_then(|mut s| {
                s.execute(params![update.message_id, update.status, update.error_code, update.error_message])
            })
            .map(|changed| changed > 0)
            .map_err(map_sqlite_err)
    }

    async fn erase_user(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError> {
        let orphaned: Vec<String> = self
            .connection
            .prepare_cached(
                "SELECT DISTINCT local_path FROM media_assets WHERE user_id = ?1 \
                 AND local_path NOT IN (SELECT local_path FROM media_assets WHERE user_id <> ?1)",
            )
            .and_then(|mut s| s.query_map(params![user.0], |row| row.get(0))?.collect())
            .map_err(map_sqlite_err)?;
        // Work queued for them would act on a user who no longer exists.
        self.connection
            .prepare_cached(
                "DELETE FROM jobs WHERE state IN ('queued', 'dead') AND json_extract(payload, '$.user_id') = ?1",
            )
            .and_then(|mut s| s.execute(params![user.0]))
            .map_err(map_sqlite_err)?;
        // Mem0 bookkeeping has no foreign key (see the mem0 migration); their Mem0
        // copies go through one delete-all the caller queues.
        for table in ["mem0_links", "mem0_index"] {
            self.connection
                .prepare_cached(&format!("DELETE FROM {table} WHERE user_id = ?1"))
                .and_then(|mut s| s.execute(params![user.0]))
                .map_err(map_sqlite_err)?;
        }
        // Interactions, memories (and their full-text rows), media records go with the
        // user through ON DELETE CASCADE.
        self.connection
            .prepare_cached("DELETE FROM users WHERE id = ?1")
            .and_then(|mut s| s.execute(params![user.0]))
            .map_err(map_sqlite_err)?;
        Ok(orphaned)
    }
}

#[async_trait]
impl MemoryTransaction for SqliteTransaction<'_> {
    async fn save_memory(&mut self, memory: NewMemory) -> Result<MemoryId, RepositoryError> {
        self.connection
            .prepare_cached(
                "INSERT INTO memories (user_id, interaction_id, media_asset_id, kind, text, created_at, labels) \
                 VALUES (?1, ?2, ?6, ?3, ?4, ?5, ?7) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        memory.user_id.0,
                        memory.interaction_id.map(|i| i.0),
                        memory.kind.as_str(),
                        memory.text,
                        sqlite_timestamp(memory.created_at),
                        memory.media_asset_id.map(|a| a.0),
                        labels_json(&memory.labels)
                    ],
                    |row| row.get(0),
                )
            })
            .map(MemoryId)
            .map_err(map_sqlite_err)
    }

    async fn delete_memory(&mut self, memory: MemoryId) -> Result<bool, RepositoryError> {
        self.connection
            .prepare_cached("DELETE FROM memories WHERE id = ?1")
            .and_then(|mut s| s.execute(params![memory.0]))
            .map(|deleted| deleted > 0)
            .map_err(map_sqlite_err)
    }

    async fn update_memory(
        &mut self,
        memory: MemoryId,
        text: Option<String>,
        labels: Option<Vec<String>>,
    ) -> Result<bool, RepositoryError> {
        let labels_given = labels.is_some();
        let labels = labels.as_deref().and_then(labels_json);
        // COALESCE keeps what was not given; the full-text trigger follows the text.
        self.connection
            .prepare_cached(
                "UPDATE memories SET text = COALESCE(?2, text), labels = CASE WHEN ?3 THEN ?4 ELSE labels END \
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![memory.0, text, labels_given, labels]))
            .map(|changed| changed > 0)
            .map_err(map_sqlite_err)
    }

    async fn record_extracted_text(
        &mut self,
        memory: MemoryId,
        extracted: &str,
        saved_text: &str,
        text: &str,
    ) -> Result<bool, RepositoryError> {
        self.connection
            .prepare_cached(
                "UPDATE memories SET extracted_text = ?2, text = CASE WHEN text = ?3 THEN ?4 ELSE text END \
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![memory.0, extracted, saved_text, text]))
            .map(|changed| changed > 0)
            .map_err(map_sqlite_err)
    }

    async fn delete_last_memory(&mut self, user: UserId) -> Result<Option<Memory>, RepositoryError> {
        self.connection
            .prepare_cached(
                "DELETE FROM memories WHERE id = \
                 (SELECT id FROM memories WHERE user_id = ?1 ORDER BY created_at DESC, id DESC LIMIT 1) \
                 RETURNING id, user_id, kind, text, created_at",
            )
            .and_then(|mut s| s.query_row(params![user.0], memory_from_row).optional())
            .map_err(map_sqlite_err)
    }

    async fn memory_text(&mut self, memory: MemoryId) -> Result<Option<String>, RepositoryError> {
        self.connection
            .prepare_cached("SELECT text FROM memories WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![memory.0], |row| row.get(0)).optional())
            .map_err(map_sqlite_err)
    }
}

#[async_trait]
impl JobTransaction for SqliteTransaction<'_> {
    async fn enqueue_job(&mut self, job: NewJob) -> Result<(), RepositoryError> {
        let due = sqlite_timestamp(job.due_at);
        self.connection
            .prepare_cached(
                "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, due_at, created_at, updated_at, priority) \
                 VALUES (?1, ?2, 'queued', 0, ?3, ?4, ?4, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![job.kind, job.payload.to_string(), job.max_attempts, due, job.priority.as_i16()])
            })
            .map(drop)
            .map_err(map_sqlite_err)
    }

    async fn claim_job(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Job>, RepositoryError> {
        // One process owns an SQLite file's writer, so no row lock is needed: the writer
        // runs one claim at a time. Each candidate query is one ordered range of an index
        // (idx_jobs_claim, idx_jobs_lease), never a sort of the backlog.
        let now = sqlite_timestamp(now);
        let lease_until = sqlite_timestamp(lease_until);
        for candidate in claim_candidates("?1", "") {
            let claimed = self
                .connection
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?2, updated_at = ?1 \
                     WHERE id = ({candidate}) \
                     RETURNING id, kind, payload, attempts, max_attempts, created_at"
                ))
                .and_then(|mut s| {
                    s.query_row(params![now, lease_until], |row| {
                        let payload: String = row.get(2)?;
                        Ok(Job {
                            id: JobId(row.get(0)?),
                            kind: row.get(1)?,
                            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                            attempts: row.get(3)?,
                            max_attempts: row.get(4)?,
                            created_at: parse_timestamp(&row.get::<_, String>(5)?)?,
                        })
                    })
                    .optional()
                })
                .map_err(map_sqlite_err)?;
            if claimed.is_some() {
                return Ok(claimed);
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
        const OWNED: &str = "WHERE id = ?1 AND attempts = ?2 AND state = 'running'";
        let now = sqlite_timestamp(now);
        let result = match settlement {
            JobSettlement::Done => self
                .connection
                .prepare_cached(&format!("UPDATE jobs SET state = 'done', lease_until = NULL, updated_at = ?3 {OWNED}"))
                .and_then(|mut s| s.execute(params![job.0, attempt, now])),
            JobSettlement::Retry { due_at, error } => self
                .connection
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = 'queued', lease_until = NULL, due_at = ?4, last_error = ?5, updated_at = ?3 \
                     {OWNED}"
                ))
                .and_then(|mut s| s.execute(params![job.0, attempt, now, sqlite_timestamp(due_at), error])),
            JobSettlement::Dead { error } => self
                .connection
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = 'dead', lease_until = NULL, last_error = ?4, updated_at = ?3 {OWNED}"
                ))
                .and_then(|mut s| s.execute(params![job.0, attempt, now, error])),
            JobSettlement::Release => self
                .connection
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = 'queued', lease_until = NULL, attempts = max(attempts - 1, 0), \
                     updated_at = ?3 {OWNED}"
                ))
                .and_then(|mut s| s.execute(params![job.0, attempt, now])),
        };
        match result.map_err(map_sqlite_err)? {
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
        self.connection
            .prepare_cached("UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND attempts = ?2 AND state = 'running'")
            .and_then(|mut s| s.execute(params![job.0, attempt, sqlite_timestamp(lease_until)]))
            .map(|changed| changed > 0)
            .map_err(map_sqlite_err)
    }
}

#[async_trait]
impl MediaTransaction for SqliteTransaction<'_> {
    async fn find_media_by_sha256(
        &mut self,
        user: UserId,
        sha256: &str,
    ) -> Result<Option<MediaAsset>, RepositoryError> {
        self.connection
            .prepare_cached(&format!("SELECT {MEDIA_COLUMNS} FROM media_assets WHERE user_id = ?1 AND sha256 = ?2"))
            .and_then(|mut s| s.query_row(params![user.0, sha256], media_from_row).optional())
            .map_err(map_sqlite_err)
    }

    async fn find_image_hashes_sharing_a_band(
        &mut self,
        user: UserId,
        bands: [i64; 6],
    ) -> Result<Vec<ImageHashCandidate>, RepositoryError> {
        // Six equality lookups on the covering indexes (user_id, band_i, ahash): no table
        // row is read, and never a scan of the hashes.
        let sql = (0..6)
            .map(|i| format!("SELECT id, ahash FROM media_assets WHERE user_id = ?1 AND band{i} = ?{}", i + 2))
            .collect::<Vec<_>>()
            .join(" UNION ");
        self.connection
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(params![user.0, bands[0], bands[1], bands[2], bands[3], bands[4], bands[5]], |row| {
                    Ok(ImageHashCandidate { asset_id: MediaAssetId(row.get(0)?), hash: row.get(1)? })
                })?
                .collect()
            })
            .map_err(map_sqlite_err)
    }

    async fn find_media_asset(&mut self, id: MediaAssetId) -> Result<Option<MediaAsset>, RepositoryError> {
        self.connection
            .prepare_cached(&format!("SELECT {MEDIA_COLUMNS} FROM media_assets WHERE id = ?1"))
            .and_then(|mut s| s.query_row(params![id.0], media_from_row).optional())
            .map_err(map_sqlite_err)
    }

    async fn insert_media_asset(&mut self, asset: NewMediaAsset) -> Result<MediaAssetId, RepositoryError> {
        let bands = asset.bands.map(|b| b.map(Some)).unwrap_or([None; 6]);
        self.connection
            .prepare_cached(
                "INSERT INTO media_assets (user_id, interaction_id, sha256, ahash, media_url, local_path, content_type, \
                 size_bytes, width_px, height_px, duration_seconds, created_at, band0, band1, band2, band3, band4, band5) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
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
                    |row| row.get(0),
                )
            })
            .map(MediaAssetId)
            .map_err(map_sqlite_err)
    }

    async fn link_interaction_media(
        &mut self,
        interaction: InteractionId,
        index: i32,
        asset: MediaAssetId,
        outcome: &str,
    ) -> Result<(), RepositoryError> {
        self.connection
            .prepare_cached(
                "INSERT INTO interaction_media (interaction_id, media_index, media_asset_id, outcome) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (interaction_id, media_index) DO UPDATE SET media_asset_id = excluded.media_asset_id, \
                 outcome = excluded.outcome",
            )
            .and_then(|mut s| s.execute(params![interaction.0, index, asset.0, outcome]))
            .map(drop)
            .map_err(map_sqlite_err)
    }

    async fn store_rehashed_image(&mut self, media: MediaAssetId, hash: ImageHash) -> Result<(), RepositoryError> {
        let b = bands(hash);
        self.connection
            .prepare_cached(&REHASHED_IMAGE_UPDATE.replace('$', "?"))
            .and_then(|mut s| s.execute(params![hash.to_i64(), b[0], b[1], b[2], b[3], b[4], b[5], media.0]))
            .map_err(map_sqlite_err)?;
        self.drop_image_rehash(media).await
    }

    async fn drop_image_rehash(&mut self, media: MediaAssetId) -> Result<(), RepositoryError> {
        self.connection
            .prepare_cached(&IMAGE_REHASH_DEQUEUE.replace('$', "?"))
            .and_then(|mut s| s.execute(params![media.0]))
            .map(drop)
            .map_err(map_sqlite_err)
    }
}

#[async_trait]
impl IndexTransaction for SqliteTransaction<'_> {
    async fn mem0_copies(&mut self, memory: MemoryId) -> Result<Mem0Copies, RepositoryError> {
        let ids = self
            .connection
            .prepare_cached("SELECT mem0_id FROM mem0_links WHERE memory_id = ?1 ORDER BY mem0_id")
            .and_then(|mut s| s.query_map(params![memory.0], |row| row.get(0))?.collect())
            .map_err(map_sqlite_err)?;
        let event_id: Option<Option<String>> = self
            .connection
            .prepare_cached("SELECT event_id FROM mem0_index WHERE memory_id = ?1")
            .and_then(|mut s| s.query_row(params![memory.0], |row| row.get(0)).optional())
            .map_err(map_sqlite_err)?;
        Ok(Mem0Copies { ids, event_id: event_id.flatten() })
    }

    async fn update_mem0_index(
        &mut self,
        memory: MemoryId,
        change: Mem0IndexChange,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let now = sqlite_timestamp(now);
        let set = |connection: &mut Connection, assignments: &str, value: Option<String>| {
            connection
                .prepare_cached(&format!(
                    "UPDATE mem0_index SET {assignments}, updated_at = ?3 WHERE memory_id = ?1 RETURNING user_id"
                ))
                .and_then(|mut s| s.query_row(params![memory.0, value, now], |row| row.get::<_, i64>(0)).optional())
                .map_err(map_sqlite_err)
        };
        match change {
            Mem0IndexChange::Pending { user } => {
                self.connection
                    .prepare_cached(
                        "INSERT INTO mem0_index (memory_id, user_id, state, error, event_id, updated_at) \
                         VALUES (?1, ?2, 'pending', NULL, NULL, ?3) ON CONFLICT (memory_id) DO UPDATE SET \
                         state = 'pending', error = NULL, event_id = NULL, updated_at = excluded.updated_at",
                    )
                    .and_then(|mut s| s.execute(params![memory.0, user.0, now]))
                    .map_err(map_sqlite_err)?;
            }
            Mem0IndexChange::EventStarted(event) => {
                set(self.connection, "event_id = ?2", Some(event))?;
            }
            Mem0IndexChange::EventFailed => {
                set(self.connection, "event_id = ?2", None)?;
            }
            Mem0IndexChange::Failed(error) => {
                set(self.connection, "state = 'failed', event_id = NULL, error = ?2", Some(error))?;
            }
            Mem0IndexChange::Indexed(ids) => {
                if let Some(user) = set(self.connection, "state = 'indexed', event_id = NULL, error = ?2", None)? {
                    for id in ids {
                        self.connection
                            .prepare_cached(
                                "INSERT INTO mem0_links (memory_id, mem0_id, user_id) VALUES (?1, ?2, ?3) \
                                 ON CONFLICT DO NOTHING",
                            )
                            .and_then(|mut s| s.execute(params![memory.0, id, user]))
                            .map_err(map_sqlite_err)?;
                    }
                }
            }
            Mem0IndexChange::Forgotten => {
                for table in ["mem0_links", "mem0_index"] {
                    self.connection
                        .prepare_cached(&format!("DELETE FROM {table} WHERE memory_id = ?1"))
                        .and_then(|mut s| s.execute(params![memory.0]))
                        .map_err(map_sqlite_err)?;
                }
            }
        }
        self.connection
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM memories WHERE id = ?1)")
            .and_then(|mut s| s.query_row(params![memory.0], |row| row.get(0)))
            .map_err(map_sqlite_err)
    }

    async fn queue_embedding(&mut self, memory: MemoryId) -> Result<(), RepositoryError> {
        self.connection
            .prepare_cached("INSERT INTO embed_queue (memory_id) VALUES (?1) ON CONFLICT DO NOTHING")
            .and_then(|mut s| s.execute(params![memory.0]))
            .map(drop)
            .map_err(map_sqlite_err)
    }

    async fn queue_missing_embeddings(&mut self, model: &str) -> Result<u64, RepositoryError> {
        self.connection
            .prepare_cached(
                "INSERT INTO embed_queue (memory_id) SELECT m.id FROM memories m WHERE NOT EXISTS \
                 (SELECT 1 FROM memory_embeddings e WHERE e.memory_id = m.id AND e.model = ?1) \
                 ORDER BY m.id ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![model]))
            .map(|added| added as u64)
            .map_err(map_sqlite_err)
    }

    async fn dequeue_embeddings(&mut self, memories: &[MemoryId]) -> Result<(), RepositoryError> {
        let mut statement =
            self.connection.prepare_cached("DELETE FROM embed_queue WHERE memory_id = ?1").map_err(map_sqlite_err)?;
        for memory in memories {
            statement.execute(params![memory.0]).map_err(map_sqlite_err)?;
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
        self.connection
            .prepare_cached(EMBEDDING_UPSERT_SQLITE)
            .and_then(|mut s| s.execute(params![memory.0, embedded_text, model, vector.scale, vector.to_bytes()]))
            .map(|stored| stored > 0)
            .map_err(map_sqlite_err)
    }
}

/// Stores an embedding if the memory still has the text it was made from (see
/// [`IndexTransaction::save_embedding`]), numbered after the user's latest.
const EMBEDDING_UPSERT_SQLITE: &str = "INSERT INTO memory_embeddings (memory_id, user_id, model, seq, scale, vector) \
     SELECT m.id, m.user_id, ?3, COALESCE((SELECT MAX(e.seq) FROM memory_embeddings e \
     WHERE e.user_id = m.user_id AND e.model = ?3), 0) + 1, ?4, ?5 \
     FROM memories m WHERE m.id = ?1 AND m.text = ?2 \
     ON CONFLICT (memory_id) DO UPDATE SET model = excluded.model, seq = excluded.seq, \
     scale = excluded.scale, vector = excluded.vector";
