//! The PostgreSQL system of record: every unit of work through the group-commit writer,
//! readiness through the pool.

use async_trait::async_trait;
use sea_orm::DatabaseConnection;

use super::pool::is_migrated;
use super::postgres_writer::PostgresWriter;
use crate::domain::ports::{Repository, RepositoryError, SavedText, TextToSave, Work};

/// The PostgreSQL system of record.
pub struct PostgresRepository {
    writer: PostgresWriter,
    pool: DatabaseConnection,
}

impl PostgresRepository {
    /// Starts the writer over `pool` (on the current tokio runtime).
    pub fn new(pool: DatabaseConnection) -> Self {
        Self { writer: PostgresWriter::start(pool.clone()), pool }
    }
}

#[async_trait]
impl Repository for PostgresRepository {
    async fn run_in_transaction(&self, work: Work) -> Result<(), RepositoryError> {
        self.writer.submit(work).await
    }

    async fn save_text_at_once(&self, text: TextToSave) -> Result<Option<SavedText>, RepositoryError> {
        self.writer.submit_text(text).await
    }

    async fn is_ready(&self) -> Result<bool, RepositoryError> {
        is_migrated(&self.pool).await
    }
}
