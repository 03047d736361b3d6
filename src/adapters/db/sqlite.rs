//! SQLite's system of record: inbound writes through the single writer thread, hot reads
//! (search) through read-only rusqlite connections on the blocking pool, readiness
//! through the pool.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;

use super::pool::is_migrated;
use super::sqlite_connection::{map_sqlite_err, BUSY_TIMEOUT};
use super::sqlite_writer::SqliteWriter;
use crate::domain::ports::{Repository, RepositoryError, SavedText, TextToSave, Work};

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
        read: impl FnOnce(&Connection) -> Result<T, RepositoryError> + Send + 'static,
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
        let (connection, result) = crate::telemetry::blocking::spawn_blocking(move || {
            let result = read(&connection);
            (connection, result)
        })
        .await
        .map_err(|e| RepositoryError::Internal(format!("a read panicked: {e}")))?;
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(connection);
        result
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

    /// Declines: on SQLite's in-process connection the step by step statements cost no
    /// round trip, and SQLite has no data-modifying WITH to put them in one statement.
    async fn save_text_at_once(&self, _text: TextToSave) -> Result<Option<SavedText>, RepositoryError> {
        Ok(None)
    }

    async fn is_ready(&self) -> Result<bool, RepositoryError> {
        is_migrated(&self.pool).await
    }
}
