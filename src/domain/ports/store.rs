//! The system of record as the core sees it: a transaction to run work in, and what
//! every database failure says about trying again.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::UnitOfWork;
use crate::domain::model::{InboundMessage, InteractionId, UserId};

/// Why the system of record failed.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The database is unreachable, locked or overloaded: the same call may succeed later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A bug or a corrupt row: retrying will not help.
    #[error("database error: {0}")]
    Internal(String),
    /// The job's lease ran out and another worker claimed it: this worker's effects must
    /// not commit, the other worker's will.
    #[error("job {0} is no longer this worker's: its lease expired and it was claimed again")]
    LeaseLost(i64),
    /// A unique key the caller presented belongs to someone else's row (a `MessageSid`
    /// reused by another sender): nothing was changed, and retrying will not help.
    #[error("{0}")]
    Conflict(String),
}

impl RepositoryError {
    /// Whether the same call could succeed if made again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RepositoryError::Unavailable(_))
    }
}

/// Work to run inside one transaction. It may only touch the transaction: it shares one
/// group transaction with the other messages waiting (a savepoint each), so anything else
/// it awaited would hold all of them up; on SQLite it runs on the single writer thread,
/// which refuses work that is not done after one poll (nothing else can be awaited
/// there). Results leave through [`transact`], which hands them over only once they are
/// committed.
pub type Work = Box<dyn for<'t> FnOnce(&'t mut dyn UnitOfWork) -> BoxFuture<'t, Result<(), RepositoryError>> + Send>;

/// Runs `work` in one transaction of `repository` and returns its result once committed.
///
/// # Errors
/// The work's own error (everything is rolled back), or a failed commit.
pub async fn transact<T, F>(repository: &dyn Repository, work: F) -> Result<T, RepositoryError>
where
    T: Send + 'static,
    F: for<'t> FnOnce(&'t mut dyn UnitOfWork) -> BoxFuture<'t, Result<T, RepositoryError>> + Send + 'static,
{
    let (sender, receiver) = futures::channel::oneshot::channel();
    repository
        .run_in_transaction(Box::new(move |tx| {
            Box::pin(async move {
                let value = work(tx).await?;
                let _ = sender.send(value);
                Ok(())
            })
        }))
        .await?;
    receiver.await.map_err(|_| RepositoryError::Internal("a committed transaction returned no result".into()))
}

/// The most common message, a text to keep from someone already known, as data rather
/// than as [`Work`]: a database that can store many of them in one statement (see
/// [`Repository::save_text_at_once`]) gathers the ones waiting together.
#[derive(Debug, Clone)]
pub struct TextToSave {
    /// The inbound message (its sender, sid, body and raw form are recorded).
    pub message: InboundMessage,
    /// The memory's text.
    pub text: String,
    /// The whole reply: recorded on the inbound row and as the outbound message.
    pub reply: String,
    /// Whether the memory goes into the embedding queue (semantic search is on).
    pub queue_embedding: bool,
    /// The memory's creation time and the reply's.
    pub now: DateTime<Utc>,
}

/// What [`Repository::save_text_at_once`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedText {
    pub user: UserId,
    pub inbound: InteractionId,
}

/// The system of record's write side: work runs in a transaction. Reads go through
/// [`super::ReadModel`], from the pool.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Repository: Send + Sync {
    /// Runs `work` in one transaction and commits it before returning, so a reply is
    /// only ever sent for a message that is durably stored.
    ///
    /// # Errors
    /// The work's own error (the transaction is rolled back), or a failed commit.
    async fn run_in_transaction(&self, work: Work) -> Result<(), RepositoryError>;

    /// Stores a text and the memory it saves where the engine has a shortcut for it:
    /// the inbound row with its reply, the memory, its embedding queue entry and the
    /// outbound reply, exactly what the step by step calls (`find_or_create_user`,
    /// `insert_inbound`, `save_memory`, `queue_embedding`, `take_reminder_notices`,
    /// `record_reply`) would store in [`Repository::run_in_transaction`], and committed
    /// before it returns. It exists for PostgreSQL, where the writer stores every text
    /// waiting in one statement: a round trip for the whole group instead of several
    /// per message.
    ///
    /// Stores nothing and returns `None` unless the sender exists under this WhatsApp
    /// id with this profile name (or none given), the `MessageSid` is new, and no
    /// reminder notice waits for them; the caller then takes the step by step path,
    /// which handles those cases. An engine that gains nothing from it declines every
    /// time (SQLite: its statements are calls in the same process).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the commit failed or the writer stopped.
    async fn save_text_at_once(&self, text: TextToSave) -> Result<Option<SavedText>, RepositoryError>;

    /// Whether the database answers and every migration has been applied.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the database does not answer.
    async fn is_ready(&self) -> Result<bool, RepositoryError>;
}
