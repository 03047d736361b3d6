//! The durable job queue: jobs written with the data they concern, claimed under a
//! lease, settled together with their effects.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::RepositoryError;
use crate::domain::model::{Job, JobId};

/// A durable unit of work for the job queue, written in the same transaction as the
/// message that caused it, so it can never be lost between the two.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    pub max_attempts: i32,
    pub due_at: DateTime<Utc>,
    pub priority: JobPriority,
}

/// Which due jobs are claimed first: a person waiting for a reply must not wait behind a
/// backlog of photos being processed, nor a half-done voice note behind new media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPriority {
    /// A message to a person (a reply, a warning): claimed before any other job.
    Reply,
    /// The rest of work already under way that a person is waiting on (the words of a
    /// voice note already saved): claimed before new background work, so a flood of new
    /// media cannot starve it.
    FollowUp,
    /// Work nobody is watching yet (fetching media, indexing): first in, first out.
    Background,
}

impl JobPriority {
    /// Every priority, in the order claiming visits them.
    pub const IN_CLAIM_ORDER: [JobPriority; 3] = [JobPriority::Reply, JobPriority::FollowUp, JobPriority::Background];

    /// The value stored in `jobs.priority`. Stored values are identifiers that never
    /// change (rows outlive upgrades); the claim order is [`JobPriority::IN_CLAIM_ORDER`].
    pub fn as_i16(self) -> i16 {
        match self {
            JobPriority::Reply => 0,
            JobPriority::Background => 1,
            JobPriority::FollowUp => 2,
        }
    }
}

/// How a claimed job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobSettlement {
    /// Finished: never run again.
    Done,
    /// Failed for now: run again at `due_at`.
    Retry { due_at: DateTime<Utc>, error: String },
    /// Failed for good (or too often): kept, with its error, for a person to look at.
    Dead { error: String },
    /// Not run (shutting down): back in the queue at once, the attempt not counted.
    Release,
}

/// The job queue, inside one transaction (see [`super::UnitOfWork`]).
///
/// # Errors
/// Every method fails with [`RepositoryError`]; the caller aborts the whole unit.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait JobTransaction: Send {
    /// Queues durable work (media fetching, indexing) with the message that caused it.
    async fn enqueue_job(&mut self, job: NewJob) -> Result<(), RepositoryError>;

    /// Takes the next due job (or one whose lease has expired, its worker having died),
    /// marks it running until `lease_until` and counts the attempt. On PostgreSQL,
    /// `FOR UPDATE SKIP LOCKED` lets several processes share the queue.
    async fn claim_job(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Job>, RepositoryError>;

    /// Records how a claimed job ended, if this claim (`attempt`, the fencing token) still
    /// holds the job.
    ///
    /// # Errors
    /// [`RepositoryError::LeaseLost`] when the job is no longer running under this
    /// attempt: the caller's transaction must roll back.
    async fn settle_job(
        &mut self,
        job: JobId,
        attempt: i32,
        settlement: JobSettlement,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// Extends a running job's lease while its worker is still on it, so a long job is not
    /// claimed a second time. `false` when this claim no longer holds the job.
    async fn renew_lease(
        &mut self,
        job: JobId,
        attempt: i32,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;
}
