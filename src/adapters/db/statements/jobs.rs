//! The job queue (`jobs`): the statements of
//! [`JobTransaction`](crate::domain::ports::JobTransaction) and of the operators' queue
//! administration, and the row of a claimed job.

use std::sync::LazyLock;

use super::{sqlite_text, Dialect, Sql};
use crate::adapters::db::row::Row;
use crate::domain::model::{Job, JobId};
use crate::domain::ports::{JobPriority, RepositoryError};

/// Queues a job (`$1` kind, `$2` payload as JSON text, `$3` max attempts, `$4` due and
/// created, `$5` priority).
pub(crate) static JOB_INSERT: Sql = Sql::new(
    "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, due_at, created_at, updated_at, priority) \
     VALUES ($1, $2::jsonb, 'queued', 0, $3, $4, $4, $4, $5)",
);

/// The queries that pick the next job to claim, in the order to try them: a reply due
/// now (`$1`), then a job whose worker died (lease expired), then follow-up work due now,
/// then background work due now. Each is one ordered range of an index
/// (`idx_jobs_claim`, `idx_jobs_lease`), so a claim costs the same with ten jobs queued or
/// a hundred thousand, never a sort of the backlog. `lock` is appended to each.
fn claim_candidates(lock: &str) -> [String; 4] {
    let due = |priority: JobPriority| {
        format!(
            "SELECT id FROM jobs WHERE state = 'queued' AND priority = {} AND due_at <= $1 \
             ORDER BY state, priority, due_at, id LIMIT 1{lock}",
            priority.as_i16()
        )
    };
    [
        due(JobPriority::Reply),
        format!(
            "SELECT id FROM jobs WHERE state = 'running' AND lease_until < $1 \
             ORDER BY state, lease_until LIMIT 1{lock}"
        ),
        due(JobPriority::FollowUp),
        due(JobPriority::Background),
    ]
}

/// Each candidate of [`claim_candidates`] claimed (`$1` now, `$2` the lease's end), in
/// [`job_from_row`]'s columns.
fn claim_statements(lock: &str) -> [String; 4] {
    claim_candidates(lock).map(|candidate| {
        format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, updated_at = $1 \
             WHERE id = ({candidate}) \
             RETURNING id, kind, payload::text AS payload, attempts, max_attempts, created_at"
        )
    })
}

/// SQLite needs no row lock: one process owns a file's writer, which runs one claim at
/// a time.
static SQLITE_CLAIMS: LazyLock<[String; 4]> = LazyLock::new(|| claim_statements("").map(|sql| sqlite_text(&sql)));

/// SKIP LOCKED: another server claiming at the same moment takes the next job instead
/// of waiting for this one, and no job is ever claimed twice at once.
static POSTGRES_CLAIMS: LazyLock<[String; 4]> = LazyLock::new(|| claim_statements(" FOR UPDATE SKIP LOCKED"));

/// The statements that claim the next job, to try in order until one returns a row
/// (`$1` now, `$2` the lease's end); built once per dialect.
pub(crate) fn claims(dialect: Dialect) -> &'static [String; 4] {
    match dialect {
        Dialect::Sqlite => &SQLITE_CLAIMS,
        Dialect::Postgres => &POSTGRES_CLAIMS,
    }
}

/// A job of [`claims`]; a payload that is not JSON becomes `null` for the job to reject.
///
/// # Errors
/// When a column is missing or of the wrong type.
pub(crate) fn job_from_row(row: &impl Row) -> Result<Job, RepositoryError> {
    let payload: String = row.value("payload")?;
    Ok(Job {
        id: JobId(row.value("id")?),
        kind: row.value("kind")?,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        attempts: row.value("attempts")?,
        max_attempts: row.value("max_attempts")?,
        created_at: row.timestamp("created_at")?,
    })
}

/// An UPDATE of a job fenced to the claim still running it: `$1` the job, `$2` the
/// attempt the claim made. Any other claim's settlement changes no row.
macro_rules! owned_update {
    ($set:literal) => {
        concat!("UPDATE jobs SET ", $set, " WHERE id = $1 AND attempts = $2 AND state = 'running'")
    };
}

/// The job is done (`$3` now).
pub(crate) static JOB_DONE: Sql = Sql::new(owned_update!("state = 'done', lease_until = NULL, updated_at = $3"));

/// The job runs again later (`$3` now, `$4` when, `$5` the error).
pub(crate) static JOB_RETRY: Sql =
    Sql::new(owned_update!("state = 'queued', lease_until = NULL, due_at = $4, last_error = $5, updated_at = $3"));

/// The job will never succeed (`$3` now, `$4` the error).
pub(crate) static JOB_DEAD: Sql =
    Sql::new(owned_update!("state = 'dead', lease_until = NULL, last_error = $4, updated_at = $3"));

/// The job goes back to the queue without counting the attempt (`$3` now): the worker
/// stopped, the job did not fail.
pub(crate) static JOB_RELEASE: Sql = Sql::new(owned_update!(
    "state = 'queued', lease_until = NULL, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
     updated_at = $3"
));

/// Extends the claim's lease to `$3`.
pub(crate) static LEASE_RENEW: Sql = Sql::new(owned_update!("lease_until = $3"));

/// A job's (`$1`) state, for an operator's change that touched no row.
pub(crate) static JOB_STATE: Sql = Sql::new("SELECT state FROM jobs WHERE id = $1");

/// How many jobs of each kind are waiting, running or dead, as `kind`, `state`, `n`.
pub(crate) static JOB_COUNTS: Sql = Sql::new(
    "SELECT kind, state, count(*) AS n FROM jobs WHERE state IN ('queued', 'running', 'dead') \
     GROUP BY kind, state ORDER BY kind, state",
);

/// A page of jobs for an operator, newest first. Each filter given adds a parameter, in
/// this order: the state, the kind, the id to list before; the limit comes last.
pub(crate) fn job_page(state: bool, kind: bool, before: bool) -> String {
    let mut conditions = Vec::new();
    for (given, condition) in [(state, "state = $"), (kind, "kind = $"), (before, "id < $")] {
        if given {
            conditions.push(format!("{condition}{}", conditions.len() + 1));
        }
    }
    let clause = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    format!(
        "SELECT id, kind, state, attempts, max_attempts, due_at, last_error, created_at, updated_at \
         FROM jobs {clause} ORDER BY id DESC LIMIT ${}",
        conditions.len() + 1
    )
}

/// An operator retries a dead job (`$1`) now (`$2`), with its attempts counted afresh.
pub(crate) static DEAD_JOB_RETRY: Sql = Sql::new(
    "UPDATE jobs SET state = 'queued', attempts = 0, due_at = $2, lease_until = NULL, updated_at = $2 \
     WHERE id = $1 AND state = 'dead'",
);

/// An operator removes a job (`$1`) that no worker is running.
pub(crate) static IDLE_JOB_DELETE: Sql = Sql::new("DELETE FROM jobs WHERE id = $1 AND state <> 'running'");

/// Removes at most `$2` jobs done before `$1`, oldest first, so a prune is a bounded batch.
pub(crate) static DONE_JOBS_PRUNE: Sql = Sql::new(
    "DELETE FROM jobs WHERE id IN \
     (SELECT id FROM jobs WHERE state = 'done' AND updated_at < $1 ORDER BY id LIMIT $2)",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_lock_the_row_on_postgres_only() {
        assert!(claims(Dialect::Postgres).iter().all(|sql| sql.contains("FOR UPDATE SKIP LOCKED")));
        assert!(claims(Dialect::Sqlite).iter().all(|sql| !sql.contains("FOR UPDATE") && sql.contains("?2")));
        assert!(claims(Dialect::Sqlite)[0].contains(&format!("priority = {}", JobPriority::Reply.as_i16())));
    }

    #[test]
    fn a_job_page_numbers_the_filters_given_then_the_limit() {
        assert!(job_page(false, false, false).ends_with("FROM jobs  ORDER BY id DESC LIMIT $1"));
        assert!(job_page(true, false, true).contains("WHERE state = $1 AND id < $2 ORDER BY id DESC LIMIT $3"));
    }
}
