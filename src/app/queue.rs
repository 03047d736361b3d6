//! Queue administration, for the REST API and the CLI alike: list jobs, put a dead one
//! back in the queue (the workers are woken at once), remove one, and prune finished
//! jobs after the retention period, a small batch at a time so the database never holds
//! a long delete.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::jobs::JobSignal;
use crate::domain::model::{JobId, MemoryId};
use crate::domain::ports::{
    transact, Clock, JobChange, JobCount, JobFilter, JobRecord, QueueAdmin, Repository, RepositoryError,
};

/// Finished jobs removed per statement: small enough that neither database notices.
pub const PRUNE_BATCH: u32 = 500;
/// The pause between two batches, leaving the database to the service's own work.
const PRUNE_PAUSE: Duration = Duration::from_millis(50);
/// How often a server prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The queue, as an operator handles it.
#[derive(Clone)]
pub struct QueueService {
    admin: Arc<dyn QueueAdmin>,
    clock: Arc<dyn Clock>,
    signal: Option<Arc<JobSignal>>,
}

impl QueueService {
    /// Administration of `admin`'s queue.
    pub fn new(admin: Arc<dyn QueueAdmin>, clock: Arc<dyn Clock>) -> Self {
        Self { admin, clock, signal: None }
    }

    /// Wakes `signal`'s workers when a job is retried, instead of at their next poll.
    pub fn with_job_signal(mut self, signal: Arc<JobSignal>) -> Self {
        self.signal = Some(signal);
        self
    }

    /// Jobs by kind and state (queued, running, dead).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn counts(&self) -> Result<Vec<JobCount>, RepositoryError> {
        self.admin.job_counts().await
    }

    /// Jobs matching `filter`, newest first, below `before`, at most `limit`.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn list(
        &self,
        filter: JobFilter,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, RepositoryError> {
        self.admin.list_jobs(filter, before, limit).await
    }

    /// Puts a dead job back in the queue, due now, with a fresh set of attempts.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn retry(&self, job: JobId) -> Result<JobChange, RepositoryError> {
        let change = self.admin.retry_job(job, self.clock.now()).await?;
        if change == JobChange::Changed {
            tracing::info!(job = job.0, "dead job queued again by an operator");
            if let Some(signal) = &self.signal {
                signal.notify();
            }
        }
        Ok(change)
    }

    /// Removes a job that is not running.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn delete(&self, job: JobId) -> Result<JobChange, RepositoryError> {
        let change = self.admin.delete_job(job).await?;
        if change == JobChange::Changed {
            tracing::info!(job = job.0, "job removed by an operator");
        }
        Ok(change)
    }

    /// Removes every job finished more than `retention` ago, [`PRUNE_BATCH`] at a time;
    /// returns how many went.
    ///
    /// # Errors
    /// When the database fails (what was pruned before stays pruned).
    pub async fn prune(&self, retention: chrono::Duration) -> Result<u64, RepositoryError> {
        let before = self.clock.now() - retention;
        let mut pruned = 0;
        loop {
            let removed = self.admin.prune_done_jobs(before, PRUNE_BATCH).await?;
            pruned += removed;
            if removed < u64::from(PRUNE_BATCH) {
                return Ok(pruned);
            }
            tokio::time::sleep(PRUNE_PAUSE).await;
        }
    }

    /// Prunes at start and then every hour until `shutdown` turns true.
    pub async fn prune_until_stopped(self, retention: chrono::Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.prune(retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "finished jobs past their retention removed"),
                Err(error) => tracing::warn!(%error, "pruning finished jobs failed; trying again in an hour"),
            }
            tokio::select! {
                () = tokio::time::sleep(PRUNE_EVERY) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// Memories queued for Mem0 per transaction by [`mem0_backfill`].
const BACKFILL_BATCH: u32 = 200;

/// Queues Mem0's copy of every memory Mem0 never got (saved before `MEM0_API_KEY` was
/// set) or whose copy failed for good, due at `now`; returns how many. A server with
/// the key set runs the jobs.
///
/// # Errors
/// When the database fails (the batches queued before stay queued).
pub async fn mem0_backfill(
    repository: &dyn Repository,
    admin: &dyn QueueAdmin,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, RepositoryError> {
    let mut after = MemoryId(0);
    let mut queued = 0;
    loop {
        let batch = admin.memories_missing_from_mem0(after, BACKFILL_BATCH).await?;
        let Some(&(last, _)) = batch.last() else {
            return Ok(queued);
        };
        let count = batch.len() as u64;
        transact(repository, move |tx| {
            Box::pin(async move {
                for (memory, user) in batch {
                    super::mem0::queue_index(&mut *tx, memory, user, now).await?;
                }
                Ok(())
            })
        })
        .await?;
        queued += count;
        after = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ports::MockQueueAdmin;
    use chrono::{TimeZone, Utc};

    struct FixedClock;
    impl Clock for FixedClock {
        fn now(&self) -> chrono::DateTime<Utc> {
            Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap()
        }
    }

    #[tokio::test]
    async fn pruning_goes_in_small_batches_until_a_batch_is_short() {
        let mut admin = MockQueueAdmin::new();
        let mut sequence = mockall::Sequence::new();
        let cutoff = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        for removed in [500, 500, 17] {
            admin
                .expect_prune_done_jobs()
                .withf(move |before, limit| *before == cutoff && *limit == PRUNE_BATCH)
                .times(1)
                .in_sequence(&mut sequence)
                .returning(move |_, _| Ok(removed));
        }
        let service = QueueService::new(Arc::new(admin), Arc::new(FixedClock));
        assert_eq!(service.prune(chrono::Duration::days(7)).await.unwrap(), 1017);
    }

    #[tokio::test]
    async fn a_retried_job_wakes_the_workers_and_a_refused_one_does_not() {
        let mut admin = MockQueueAdmin::new();
        admin.expect_retry_job().withf(|job, _| job.0 == 1).returning(|_, _| Ok(JobChange::Changed));
        admin
            .expect_retry_job()
            .withf(|job, _| job.0 == 2)
            .returning(|_, _| Ok(JobChange::WrongState(crate::domain::ports::JobState::Queued)));
        let signal = Arc::new(JobSignal::default());
        let service = QueueService::new(Arc::new(admin), Arc::new(FixedClock)).with_job_signal(signal.clone());
        let woken = signal.notified_for_test();
        assert_eq!(service.retry(JobId(1)).await.unwrap(), JobChange::Changed);
        assert!(tokio::time::timeout(Duration::from_millis(100), woken).await.is_ok());
        assert!(matches!(service.retry(JobId(2)).await.unwrap(), JobChange::WrongState(_)));
    }
}
