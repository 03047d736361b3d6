//! The system of record as the core sees it: a transaction to run work in, and what
//! every database failure says about trying again.

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::UnitOfWork;

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

    /// Whether the database answers and every migration has been applied.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the database does not answer.
    async fn is_ready(&self) -> Result<bool, RepositoryError>;
}
