//! The system of record on SQLite (embedded default) or PostgreSQL (scale-out), chosen by
//! `DATABASE_URL`. The schema comes only from the `migration` crate.

pub mod entities;
mod local_store;
pub mod migration_lock;
mod postgres;
mod reads;
mod sqlite;
mod sqlite_writer;

use std::sync::Arc;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, DatabaseConnection, DbErr};

use crate::domain::ports::{JobPriority, MemoryStore, ReadModel, Repository, RepositoryError};
pub use local_store::LocalStore;
use migration_lock::MigrationLock;
pub use postgres::PostgresRepository;
pub use reads::PoolReads;
pub use sqlite::{file_path as sqlite_file_path, SqliteReaders, SqliteRepository};

/// Replaces an image's perceptual hash and its six bands (`$1` the hash, `$2`..`$7` the
/// bands, `$8` the asset), written once for both engines (SQLite numbers them `?n`).
const REHASHED_IMAGE_UPDATE: &str = "UPDATE media_assets SET ahash = $1, band0 = $2, band1 = $3, band2 = $4, \
     band3 = $5, band4 = $6, band5 = $7 WHERE id = $8";

/// Takes an image off the re-hash queue (`$1` the asset).
const IMAGE_REHASH_DEQUEUE: &str = "DELETE FROM image_rehash_queue WHERE media_id = $1";

/// Read connections for search on SQLite: one per core is enough to keep both busy.
const SQLITE_READERS: usize = 4;

/// An open database: a sea-orm pool for migrations and reads, the repository that
/// carries inbound writes, and the local full-text store over the same tables.
pub struct Database {
    pub pool: DatabaseConnection,
    pub repository: Arc<dyn Repository>,
    pub memory_store: Arc<dyn MemoryStore>,
    /// What the REST API reads, from the pool.
    pub reads: Arc<dyn ReadModel>,
}

impl Database {
    /// Opens the database at `url`, creating an SQLite file (and its folder) if needed,
    /// and applies pending migrations when `migrate` is set.
    ///
    /// # Errors
    /// When the database cannot be opened or migrated; the message names the cause.
    pub async fn open(url: &str, migrate: bool) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            let path = sqlite::file_path(url)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| anyhow::anyhow!("cannot create the database folder {}: {e}", parent.display()))?;
            }
            // Processes starting together take turns: the first creates the file, sets WAL
            // and migrates; the others find it done.
            let lock = if migrate { Some(MigrationLock::sqlite(&path).await?) } else { None };
            // WAL is a property of the file: set it before any pool connects.
            sqlite::prepare_file(&path)?;
            let pool = connect_pool(url, 4).await?;
            if let Some(lock) = lock {
                let migrated = run_migrations(&pool).await;
                lock.release().await;
                migrated?;
            }
            let repository = Arc::new(SqliteRepository::open(&path, pool.clone())?);
            let memory_store = Arc::new(LocalStore::Sqlite(SqliteReaders::new(&path, SQLITE_READERS)));
            Ok(Self { memory_store, reads: Arc::new(PoolReads::new(pool.clone())), pool, repository })
        } else {
            let pool = connect_pool(url, 16).await?;
            if migrate {
                // Processes starting together take turns; the lock has a connection of its own.
                let lock = MigrationLock::postgres(connect_pool(url, 1).await?).await?;
                let migrated = run_migrations(&pool).await;
                lock.release().await;
                migrated?;
            }
            let repository = Arc::new(PostgresRepository::new(pool.clone()));
            Ok(Self {
                memory_store: Arc::new(LocalStore::Postgres(pool.clone())),
                reads: Arc::new(PoolReads::new(pool.clone())),
                pool,
                repository,
            })
        }
    }
}

async fn connect_pool(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(std::time::Duration::from_secs(5))
        .acquire_timeout(std::time::Duration::from_secs(5))
        .sqlx_logging(false);
    sea_orm::Database::connect(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database ({}): {e}", redact_url(url)))
}

/// Applies every pending migration.
///
/// # Errors
/// When a migration fails; the database is left at the last one that succeeded.
pub async fn run_migrations(pool: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(pool, None).await.map_err(|e| anyhow::anyhow!("migration failed: {e}"))
}

/// Whether the database answers and has no pending migration.
pub(crate) async fn is_migrated(pool: &DatabaseConnection) -> Result<bool, RepositoryError> {
    let pending = Migrator::get_pending_migrations(pool).await.map_err(map_db_err)?;
    Ok(pending.is_empty())
}

/// Sorts sea-orm's errors into "try again later" and "a bug".
pub(crate) fn map_db_err(error: DbErr) -> RepositoryError {
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => RepositoryError::Unavailable(error.to_string()),
        other => {
            let text = other.to_string();
            // Lost connections and server restarts surface as query errors in sqlx.
            if text.contains("connection") || text.contains("database is locked") || text.contains("timed out") {
                RepositoryError::Unavailable(text)
            } else {
                RepositoryError::Internal(text)
            }
        }
    }
}

/// The URL without its password, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// The queries that pick the next job to claim, in the order to try them: a reply due
/// now, then a job whose worker died (lease expired), then follow-up work due now, then
/// background work due now. Each
/// is one ordered range of an index (`idx_jobs_claim`, `idx_jobs_lease`), so a claim costs
/// the same with ten jobs queued or a hundred thousand. `now` is the dialect's placeholder
/// for the current time; `lock` is appended to each (PostgreSQL's row lock).
pub(crate) fn claim_candidates(now: &str, lock: &str) -> [String; 4] {
    let due = |priority: JobPriority| {
        format!(
            "SELECT id FROM jobs WHERE state = 'queued' AND priority = {} AND due_at <= {now} \
             ORDER BY state, priority, due_at, id LIMIT 1{lock}",
            priority.as_i16()
        )
    };
    [
        due(JobPriority::Reply),
        format!(
            "SELECT id FROM jobs WHERE state = 'running' AND lease_until < {now} \
             ORDER BY state, lease_until LIMIT 1{lock}"
        ),
        due(JobPriority::FollowUp),
        due(JobPriority::Background),
    ]
}

/// The stored form of a memory's labels: a JSON array, or NULL for none.
pub(crate) fn labels_json(labels: &[String]) -> Option<String> {
    (!labels.is_empty()).then(|| serde_json::Value::from(labels.to_vec()).to_string())
}
