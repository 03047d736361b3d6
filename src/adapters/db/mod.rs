//! The system of record on SQLite (embedded default) or PostgreSQL (scale-out), chosen by
//! `DATABASE_URL`. The schema comes only from the `migration` crate.
//!
//! Every statement is written once, in `statements` (by concern, with each difference
//! between the dialects beside it and explained), and every row is mapped to its domain
//! type once, through `row`, whichever engine returned it.
//!
//! Modules depend on each other in one direction only (the architecture test checks it):
//! `sqlite_connection` and `pool` are leaves; `row` uses only their error mappings;
//! `statements` uses `row`; `sqlite_transaction` runs statements on the connection;
//! `sqlite_writer` runs transactions; `sqlite` holds the writer and the readers; `reads`,
//! `queue_admin` and `local_store` use the leaves and `sqlite`'s readers.
//! PostgreSQL mirrors SQLite: `postgres_transaction` runs statements on an open transaction,
//! `postgres_writer` runs units of work in group transactions, `postgres` holds the writer.

pub mod entities;
mod local_store;
pub mod migration_lock;
mod pool;
mod postgres;
mod postgres_reminders;
mod postgres_transaction;
mod postgres_writer;
mod queue_admin;
mod reads;
mod row;
mod sqlite;
mod sqlite_connection;
mod sqlite_reminders;
mod sqlite_transaction;
mod sqlite_writer;
mod statements;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::domain::ports::{MemoryFinder, ReadModel, Repository};
pub use local_store::LocalStore;
use migration_lock::MigrationLock;
use pool::connect_pool;
pub use pool::{redact_url, run_migrations};
pub use postgres::PostgresRepository;
pub use queue_admin::{PoolQueueAdmin, PoolUsage};
pub use reads::PoolReads;
pub use sqlite::{SqliteReaders, SqliteRepository};
pub use sqlite_connection::file_path as sqlite_file_path;
use sqlite_connection::{file_path, prepare_file};

/// Read connections for search on SQLite: one per core is enough to keep both busy.
const SQLITE_READERS: usize = 4;

/// An open database: a sea-orm pool for migrations and reads, the repository that
/// carries inbound writes, and the local full-text store over the same tables.
pub struct Database {
    pub pool: DatabaseConnection,
    pub repository: Arc<dyn Repository>,
    pub memory_store: Arc<dyn MemoryFinder>,
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
            let path = file_path(url)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| anyhow::anyhow!("cannot create the database folder {}: {e}", parent.display()))?;
            }
            // Processes starting together take turns: the first creates the file, sets WAL
            // and migrates; the others find it done.
            let lock = if migrate { Some(MigrationLock::sqlite(&path).await?) } else { None };
            // WAL is a property of the file: set it before any pool connects.
            prepare_file(&path)?;
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
