//! The job queue as an operator sees it: how deep it is, which jobs are dead, and the
//! hand tools to retry or remove one; plus the pruning of finished jobs. Separate from
//! [`super::JobTransaction`], which the workers use inside their transactions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::RepositoryError;
use crate::domain::model::{JobId, MemoryId, UserId};

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// Waiting to be claimed (maybe not yet due: a retry waits for its back-off).
    Queued,
    /// Claimed by a worker, under a lease.
    Running,
    /// Given up: kept with its last error for a person to look at.
    Dead,
    /// Finished; pruned after the retention period.
    Done,
}

impl JobState {
    /// Every state, in the order an operator reads them.
    pub const ALL: [JobState; 4] = [JobState::Queued, JobState::Running, JobState::Dead, JobState::Done];

    /// The value stored in `jobs.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Dead => "dead",
            JobState::Done => "done",
        }
    }

    /// The state stored as `value`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == value)
    }
}

/// How many jobs of one kind are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    pub kind: String,
    pub state: JobState,
    pub count: u64,
}

/// One job as the queue holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub kind: String,
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub due_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which jobs a listing shows: `None` is any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
}

/// What became of an operator's request about one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobChange {
    /// Done as asked.
    Changed,
    /// There is no such job.
    NotFound,
    /// The job is not in a state that allows it (a retry of a job that is not dead, a
    /// removal of a running one); it is left as it was.
    WrongState(JobState),
}

/// The queue, for operators.
///
/// # Errors
/// Every method fails with [`RepositoryError`] when the database does.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait QueueAdmin: Send + Sync {
    /// Jobs by kind and state, unfinished ones only (queued, running, dead): the queue's
    /// depth, read at every metrics scrape.
    async fn job_counts(&self) -> Result<Vec<JobCount>, RepositoryError>;

    /// Jobs matching `filter`, newest first, with ids below `before` (paging), at most `limit`.
    async fn list_jobs(
        &self,
        filter: JobFilter,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, RepositoryError>;

    /// Puts a dead job back in the queue, due at `now`, with a fresh set of attempts.
    async fn retry_job(&self, job: JobId, now: DateTime<Utc>) -> Result<JobChange, RepositoryError>;

    /// Removes a job that is not running.
    async fn delete_job(&self, job: JobId) -> Result<JobChange, RepositoryError>;

    /// Removes at most `limit` jobs finished before `before`; returns how many went.
    async fn prune_done_jobs(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, RepositoryError>;

    /// Memories (with their owner) after `after`, in id order, at most `limit`, that Mem0
    /// never got (saved before a key was set) or whose copy failed for good: what
    /// `mem0 backfill` queues.
    async fn memories_missing_from_mem0(
        &self,
        after: MemoryId,
        limit: u32,
    ) -> Result<Vec<(MemoryId, UserId)>, RepositoryError>;
}
