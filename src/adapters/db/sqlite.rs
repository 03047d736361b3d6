//! SQLite: the inbound unit of work over rusqlite (run by the single writer thread), and
//! the file's settings (WAL, foreign keys, busy timeout).
//! All timestamps are written by [`sqlite_timestamp`], so text order is time order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::Mutex;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row};
use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;

use super::sqlite_writer::SqliteWriter;
use super::{claim_candidates, labels_json};
use crate::domain::embedding::QuantizedEmbedding;
use crate::domain::model::{
    InboundMessage, InteractionId, Job, JobId, MediaAsset, MediaAssetId, Memory, MemoryId, MemoryKind, MemoryPage,
    User, UserId,
};
use crate::domain::perceptual::{bands, ImageHash};
use crate::domain::ports::{
    Delivery, ImageHashCandidate, InboundInsert, JobSettlement, Mem0Copies, Mem0IndexChange, NewJob, NewMediaAsset,
    NewMemory, Repository, RepositoryError, UnitOfWork, Work,
};
use crate::domain::time_range::TimeRange;

/// How long a connection waits for another's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The path inside an `sqlite:` URL (`sqlite://./data/x.db?mode=rwc`, `sqlite:x.db`).
///
/// # Errors
/// For an in-memory database, which the writer and the pool could not share.
pub fn file_path(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        anyhow::bail!(
            "DATABASE_URL: an in-memory SQLite database is not supported; name a file (sqlite://./data/app.db)"
        );
    }
    Ok(PathBuf::from(path))
}

/// Creates the file if needed and switches it to WAL, which lets readers work while the
/// writer commits.
///
/// # Errors
/// When the file cannot be opened or written.
pub fn prepare_file(path: &Path) -> anyhow::Result<()> {
    let connection = open_connection(path)?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| anyhow::anyhow!("cannot switch {} to WAL: {e}", path.display()))?;
    Ok(())
}

/// A connection with the settings every connection needs.
pub(super) fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let connection =
        Connection::open(path).map_err(|e| anyhow::anyhow!("cannot open SQLite database {}: {e}", path.display()))?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // NORMAL is durable against application crashes in WAL mode; FULL would add an fsync
    // per commit for power-loss durability of the very last transaction.
    // A 64 MiB page cache and memory-mapped reads keep the hot indexes (search, hash
    // bands, the job queue) in memory at 100,000 memories per user instead of re-reading
    // them through the kernel on every lookup.
    connection.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; \
         PRAGMA mmap_size = 268435456;",
    )?;
    Ok(connection)
}

/// The one text form of a timestamp in SQLite: RFC 3339, UTC, microseconds.
pub fn sqlite_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

fn parse_timestamp(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

/// Busy, locked, full or failing disks may pass; anything else is a bug.
pub(super) fn map_sqlite_err(error: rusqlite::Error) -> RepositoryError {
    let retryable = matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::DiskFull | ErrorCode::SystemIoFailure)
    );
    if retryable {
        RepositoryError::Unavailable(error.to_string())
    } else {
        RepositoryError::Internal(error.to_string())
    }
}

/// Read-only connections for hot reads (search): rusqlite hands rows over directly,
/// where sqlx passes every statement to a worker thread and back. At most `max` run at
/// once, each on the blocking pool so the async runtime never waits on SQLite.
pub struct SqliteReaders {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl SqliteReaders {
    /// Readers of the file at `path`, opened when first needed.
    pub fn new(path: &Path, max: usize) -> Self {
        Self { path: path.to_path_buf(), idle: Mutex::new(Vec::new()), permits: Semaphore::new(max) }
    }

    /// Runs `read` on an idle connection.
    ///
    /// # Errors
    /// The read's own error, or [`RepositoryError::Unavailable`] when no connection opens.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, RepositoryError> {
        let _permit = self.permits.acquire().await.map_err(|e| RepositoryError::Internal(e.to_string()))?;
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .map_err(map_sqlite_err)?;
                connection.busy_timeout(BUSY_TIMEOUT).map_err(map_sqlite_err)?;
                connection
            }
        };
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let result = read(&connection);
            (connection, result)
        })
        .await
        .map_err(|e| RepositoryError::Internal(format!("a read panicked: {e}")))?;
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(connection);
        result.map_err(map_sqlite_err)
    }
}

/// The SQLite system of record: inbound writes through the single writer, readiness
/// through the pool.
pub struct SqliteRepository {
    writer: SqliteWriter,
    pool: DatabaseConnection,
}

impl SqliteRepository {
    /// Starts the writer on the file at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(path: &Path, pool: DatabaseConnection) -> anyhow::Result<Self> {
        Ok(Self { writer: SqliteWriter::start(path)?, pool })
    }
}

#[async_trait]
impl Repository for SqliteRepository {
    async fn run_in_transaction(&self, work: Work) -> Result<(), RepositoryError> {
        self.writer.submit(work).await
    }

    async fn find_user(&self, wa_id: &str) -> Result<Option<User>, RepositoryError> {
        super::reads::find_user(&self.pool, wa_id).await
    }

    async fn list_memories(
        &self,
        user: UserId,
        range: Option<TimeRange>,
        limit: u32,
    ) -> Result<MemoryPage, RepositoryError> {
        super::reads::list_memories(&self.pool, user, range, limit).await
    }

    async fn is_ready(&self) -> Result<bool, RepositoryError> {
        super::is_migrated(&self.pool).await
    }
}

/// The statements of one inbound message, on the writer's connection, inside the
/// writer's savepoint.
pub(super) struct SqliteTransaction<'c> {
    connection: &'c mut Connection,
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
impl UnitOfWork for SqliteTransaction<'_> {
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

    async fn set_timezone(&mut self, user: UserId, zone: &str, now: DateTime<Utc>) -> Result<(), RepositoryError> {
        self.connection
            .prepare_cached("UPDATE users SET timezone = ?2, updated_at = ?3 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![user.0, zone, sqlite_timestamp(now)]))
            .map(drop)
            .map_err(map_sqlite_err)
    }

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

    async fn memory_text(&mut self, memory: MemoryId) -> Result<Option<String>, RepositoryError> {
        self.connection
            .prepare_cached("SELECT text FROM memories WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![memory.0], |row| row.get(0)).optional())
            .map_err(map_sqlite_err)
    }

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

    async fn store_rehashed_image(&mut self, media: MediaAssetId, hash: ImageHash) -> Result<(), RepositoryError> {
        let b = bands(hash);
        self.connection
            .prepare_cached(&super::REHASHED_IMAGE_UPDATE.replace('$', "?"))
            .and_then(|mut s| s.execute(params![hash.to_i64(), b[0], b[1], b[2], b[3], b[4], b[5], media.0]))
            .map_err(map_sqlite_err)?;
        self.drop_image_rehash(media).await
    }

    async fn drop_image_rehash(&mut self, media: MediaAssetId) -> Result<(), RepositoryError> {
        self.connection
            .prepare_cached(&super::IMAGE_REHASH_DEQUEUE.replace('$', "?"))
            .and_then(|mut s| s.execute(params![media.0]))
            .map(drop)
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
/// [`UnitOfWork::save_embedding`]), numbered after the user's latest.
const EMBEDDING_UPSERT_SQLITE: &str = "INSERT INTO memory_embeddings (memory_id, user_id, model, seq, scale, vector) \
     SELECT m.id, m.user_id, ?3, COALESCE((SELECT MAX(e.seq) FROM memory_embeddings e \
     WHERE e.user_id = m.user_id AND e.model = ?3), 0) + 1, ?4, ?5 \
     FROM memories m WHERE m.id = ?1 AND m.text = ?2 \
     ON CONFLICT (memory_id) DO UPDATE SET model = excluded.model, seq = excluded.seq, \
     scale = excluded.scale, vector = excluded.vector";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_file_and_refuse_memory_databases() {
        assert_eq!(file_path("sqlite://./data/a.db?mode=rwc").unwrap(), PathBuf::from("./data/a.db"));
        assert_eq!(file_path("sqlite:///tmp/a.db").unwrap(), PathBuf::from("/tmp/a.db"));
        assert_eq!(file_path("sqlite:a.db").unwrap(), PathBuf::from("a.db"));
        assert!(file_path("sqlite::memory:").is_err());
    }

    #[test]
    fn timestamps_sort_as_text_in_time_order() {
        use chrono::TimeZone;
        let a = sqlite_timestamp(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        let b =
            sqlite_timestamp(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::microseconds(1));
        assert_eq!(a, "2026-01-02T03:04:05.000000+00:00");
        assert!(a < b);
    }
}
