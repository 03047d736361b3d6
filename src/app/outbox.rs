//! What saving, changing, deleting or erasing a memory queues for the indexes beside the
//! database, in the same transaction as the change: Mem0's copy (when Mem0 is configured)
//! and the memory's place in the embedding queue (when semantic search is on). The job
//! queue and the indexer carry the work out with retries, so an index being slow or down
//! never delays or loses a message.

use chrono::{DateTime, Utc};

use super::{mem0, semantic};
use crate::domain::model::{MemoryId, UserId};
use crate::domain::ports::{IndexTransaction, JobTransaction, RepositoryError};

/// Which indexes a change queues work for. Decided once at start (is `MEM0_API_KEY` set?
/// is semantic search on?) and handed to every use case that writes memories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outbox {
    mem0: bool,
    embeddings: bool,
}

impl Outbox {
    /// No index beside the database: every method does nothing.
    pub const NONE: Outbox = Outbox { mem0: false, embeddings: false };
    /// Mem0 only.
    pub const MEM0: Outbox = Outbox { mem0: true, embeddings: false };
    /// Embeddings only.
    pub const EMBEDDINGS: Outbox = Outbox { mem0: false, embeddings: true };

    /// The outbox for the indexes that are on.
    pub fn new(mem0: bool, embeddings: bool) -> Self {
        Self { mem0, embeddings }
    }

    /// Whether a saved memory is indexed anywhere beside the database, so that a change
    /// to its text must find its owner and queue it again.
    pub fn queues_work(self) -> bool {
        self.mem0 || self.embeddings
    }

    /// What saving a memory queues when that is only its embedding: `Some(true)` with
    /// semantic search on, `Some(false)` with nothing to queue, `None` when Mem0 jobs are
    /// queued too (the step by step path, [`Outbox::memory_saved`], does that).
    pub fn queues_only_embeddings(self) -> Option<bool> {
        (!self.mem0).then_some(self.embeddings)
    }

    /// Whether a saved memory queues a job for the workers (Mem0's copy), so they are
    /// worth waking at once. Embeddings have a queue and an indexer of their own.
    pub fn queues_jobs(self) -> bool {
        self.mem0
    }

    /// Queues the indexing of a memory just saved (or whose text changed) in `tx`.
    ///
    /// # Errors
    /// When the database fails; the caller's whole transaction rolls back.
    pub async fn memory_saved(
        self,
        tx: &mut (impl IndexTransaction + JobTransaction + ?Sized),
        memory: MemoryId,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if self.mem0 {
            mem0::queue_index(tx, memory, user, now).await?;
        }
        if self.embeddings {
            semantic::queue_embedding(tx, memory).await?;
        }
        Ok(())
    }

    /// Queues the removal of a memory deleted in `tx` from the indexes that need telling
    /// (call it in the same transaction). Its embedding goes with the row.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn memory_deleted(
        self,
        tx: &mut (impl IndexTransaction + JobTransaction + ?Sized),
        memory: MemoryId,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if self.mem0 {
            mem0::queue_forget(tx, memory, now).await?;
        }
        Ok(())
    }

    /// Queues the removal of everything about a user erased in `tx`. Call it after the
    /// erase: the erase drops the user's queued jobs, and these must survive it.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn user_erased(
        self,
        tx: &mut (impl JobTransaction + ?Sized),
        wa_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if self.mem0 {
            mem0::queue_erase(tx, wa_id, now).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ports::MockUnitOfWork;
    use chrono::TimeZone;

    #[tokio::test]
    async fn with_embeddings_on_a_saved_memory_is_queued_for_embedding_in_the_same_transaction() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap();
        let mut tx = MockUnitOfWork::new();
        tx.expect_queue_embedding().withf(|memory| *memory == MemoryId(3)).times(1).returning(|_| Ok(()));
        tx.expect_enqueue_job().never();
        Outbox::EMBEDDINGS.memory_saved(&mut tx, MemoryId(3), UserId(7), now).await.unwrap();
        // Deleting needs no job (the vector goes with the row); no expectations: any call panics.
        Outbox::EMBEDDINGS.memory_deleted(&mut MockUnitOfWork::new(), MemoryId(3), now).await.unwrap();
        Outbox::EMBEDDINGS.user_erased(&mut MockUnitOfWork::new(), "15551234567", now).await.unwrap();
        assert!(Outbox::EMBEDDINGS.queues_work() && Outbox::MEM0.queues_work() && !Outbox::NONE.queues_work());
        assert!(Outbox::MEM0.queues_jobs() && !Outbox::EMBEDDINGS.queues_jobs());
    }
}
