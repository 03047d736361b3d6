//! `/admin/jobs`: the job queue for operators. See what is queued, running or dead (and
//! why), put a dead job back in the queue, remove one. The same as `whatsapp-memory jobs`.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use crate::app::memories::ApiError;
use crate::domain::model::JobId;
use crate::domain::ports::{JobChange, JobFilter, JobRecord, JobState};
use crate::http::auth::ApiKeyAuth;
use crate::http::problem::{ErrorResponse, JobErrorResponse, ProblemBody};
use crate::http::AppState;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum JobStateName {
    /// Waiting for a worker (a retry waits for its back-off first).
    Queued,
    /// A worker has it.
    Running,
    /// Given up after its attempts, or failed for good: see `last_error`.
    Dead,
    /// Finished; removed after `JOB_RETENTION_DAYS`.
    Done,
}

impl From<JobState> for JobStateName {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Queued => JobStateName::Queued,
            JobState::Running => JobStateName::Running,
            JobState::Dead => JobStateName::Dead,
            JobState::Done => JobStateName::Done,
        }
    }
}

impl From<JobStateName> for JobState {
    fn from(state: JobStateName) -> Self {
        match state {
            JobStateName::Queued => JobState::Queued,
            JobStateName::Running => JobState::Running,
            JobStateName::Dead => JobState::Dead,
            JobStateName::Done => JobState::Done,
        }
    }
}

/// One job. Its payload is not shown: it can carry a phone number.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct JobRead {
    pub id: i64,
    /// What it does: `media`, `send`, `transcribe`, `ocr`, `mem0_index`, …
    pub kind: String,
    pub state: JobStateName,
    /// Runs so far (a retry by an operator starts again from 0).
    pub attempts: i32,
    pub max_attempts: i32,
    /// When it is (or was) due to run.
    pub due_at: DateTime<Utc>,
    /// Why its last run failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<JobRecord> for JobRead {
    fn from(job: JobRecord) -> Self {
        JobRead {
            id: job.id.0,
            kind: job.kind,
            state: job.state.into(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            due_at: job.due_at,
            last_error: job.last_error,
            created_at: job.created_at,
            updated_at: job.updated_at,
        }
    }
}

impl Example for JobRead {
    fn example() -> Self {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 9, 30, 0).single().unwrap_or_default();
        JobRead {
            id: 42,
            kind: "send".into(),
            state: JobStateName::Dead,
            attempts: 8,
            max_attempts: 8,
            due_at: at,
            last_error: Some("Twilio answered 503".into()),
            created_at: at,
            updated_at: at,
        }
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JobPage {
    pub items: Vec<JobRead>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

/// A page of jobs.
#[derive(ApiResponse)]
pub enum ListedJobs {
    /// Newest first.
    #[oai(status = 200)]
    Ok(Json<JobPage>),
}

/// A job retried or removed.
#[derive(ApiResponse)]
pub enum ChangedJob {
    /// Done: a retried job is queued, due now, with its attempts reset.
    #[oai(status = 204)]
    Done,
}

fn outcome(job: JobId, change: JobChange, action: &str) -> Result<ChangedJob, JobErrorResponse> {
    match change {
        JobChange::Changed => Ok(ChangedJob::Done),
        JobChange::NotFound => Err(JobErrorResponse::NotFound(ProblemBody::new(format!("no job with id {}", job.0)))),
        JobChange::WrongState(state) => {
            Err(JobErrorResponse::Conflict(ProblemBody::new(format!("job {} is {}: {action}", job.0, state.as_str()))))
        }
    }
}

/// Job queue operations.
pub struct AdminApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List jobs
    ///
    /// The job queue, newest first: filter by `state` (dead ones say why in
    /// `last_error`) and `kind`; page with `before`.
    #[oai(path = "/admin/jobs", method = "get", operation_id = "listJobs")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// Only jobs in this state.
        #[oai(name = "state")]
        job_state: Query<Option<JobStateName>>,
        /// Only jobs of this kind.
        #[oai(validator(max_length = 64))]
        kind: Query<Option<String>>,
        /// The `next_before` of the previous page.
        before: Query<Option<i64>>,
        /// Page size (1 to 100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> Result<ListedJobs, ErrorResponse> {
        let filter = JobFilter { state: job_state.0.map(Into::into), kind: kind.0 };
        let mut jobs = state.queue.list(filter, before.0.map(JobId), limit.0 + 1).await.map_err(ApiError::from)?;
        let next_before = if jobs.len() > limit.0 as usize {
            jobs.truncate(limit.0 as usize);
            jobs.last().map(|job| job.id.0)
        } else {
            None
        };
        Ok(ListedJobs::Ok(Json(JobPage { items: jobs.into_iter().map(Into::into).collect(), next_before })))
    }

    /// Retry a dead job
    ///
    /// Puts a dead job back in the queue, due now, with a fresh set of attempts; the
    /// workers take it at once.
    #[oai(path = "/admin/jobs/:id/retry", method = "post", operation_id = "retryJob")]
    async fn retry(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The job's id.
        id: Path<i64>,
    ) -> Result<ChangedJob, JobErrorResponse> {
        let job = JobId(id.0);
        let change = state.queue.retry(job).await.map_err(ApiError::from)?;
        outcome(job, change, "only a dead job can be retried")
    }

    /// Remove a job
    ///
    /// Deletes a job that is not running (a dead one nobody wants retried, a queued one
    /// that should not run). A running job finishes first.
    #[oai(path = "/admin/jobs/:id", method = "delete", operation_id = "deleteJob")]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The job's id.
        id: Path<i64>,
    ) -> Result<ChangedJob, JobErrorResponse> {
        let job = JobId(id.0);
        let change = state.queue.delete(job).await.map_err(ApiError::from)?;
        outcome(job, change, "a running job cannot be removed; wait until it ends")
    }
}

fn default_limit() -> u32 {
    20
}
