//! The job queue for operators (listing, retrying and removing jobs, pruning finished
//! ones) and the pool's usage, through the sea-orm pool on both databases.
//!
//! These writes go through the pool, not the SQLite writer: each is one statement that
//! stands alone (an `UPDATE … WHERE state = 'dead'` is its own fence), they are rare (a
//! person's command, a prune batch of at most a few hundred rows an hour), and waiting
//! for SQLite's write lock (the pool's busy timeout) is all they can cost the writer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement, Value};

use super::pool::map_db_err;
use super::sqlite_connection::sqlite_timestamp;
use super::statements::indexes::MEMORIES_MISSING_FROM_MEM0;
use super::statements::jobs::{job_page, DEAD_JOB_RETRY, DONE_JOBS_PRUNE, IDLE_JOB_DELETE, JOB_COUNTS, JOB_STATE};
use super::statements::{Dialect, Sql};
use crate::domain::model::{JobId, MemoryId, UserId};
use crate::domain::ports::{JobChange, JobCount, JobFilter, JobRecord, JobState, QueueAdmin, RepositoryError};

/// How many connections a pool has, and how many are at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    pub idle: u64,
    pub in_use: u64,
    pub max: u64,
}

/// The queue's administration over the pool.
pub struct PoolQueueAdmin {
    pool: DatabaseConnection,
}

impl PoolQueueAdmin {
    /// Administration through `pool`.
    pub fn new(pool: DatabaseConnection) -> Self {
        Self { pool }
    }

    /// The pool's connections now, for the metrics.
    pub fn pool_usage(&self) -> PoolUsage {
        let (size, idle, max) = match self.pool.get_database_backend() {
            DbBackend::Postgres => {
                let pool = self.pool.get_postgres_connection_pool();
                (pool.size(), pool.num_idle(), pool.options().get_max_connections())
            }
            _ => {
                let pool = self.pool.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle(), pool.options().get_max_connections())
            }
        };
        let idle = idle as u64;
        PoolUsage { idle, in_use: u64::from(size).saturating_sub(idle), max: u64::from(max) }
    }

    fn backend(&self) -> DbBackend {
        self.pool.get_database_backend()
    }

    fn dialect(&self) -> Dialect {
        Dialect::of(self.backend())
    }

    /// A timestamp as this backend stores it (SQLite: RFC 3339 text, microseconds).
    fn time(&self, t: DateTime<Utc>) -> Value {
        match self.backend() {
            DbBackend::Postgres => Value::from(t),
            _ => Value::from(sqlite_timestamp(t)),
        }
    }

    fn read_time(&self, row: &QueryResult, column: &str) -> Result<DateTime<Utc>, RepositoryError> {
        match self.backend() {
            DbBackend::Postgres => row.try_get("", column).map_err(map_db_err),
            _ => {
                let text: String = row.try_get("", column).map_err(map_db_err)?;
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| RepositoryError::Internal(format!("jobs.{column} {text:?}: {e}")))
            }
        }
    }

    /// The rows of `sql`, already in the pool's dialect.
    async fn rows_of(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>, RepositoryError> {
        self.pool.query_all_raw(Statement::from_sql_and_values(self.backend(), sql, values)).await.map_err(map_db_err)
    }

    async fn rows(&self, sql: &Sql, values: Vec<Value>) -> Result<Vec<QueryResult>, RepositoryError> {
        self.rows_of(sql.text(self.dialect()), values).await
    }

    async fn execute(&self, sql: &Sql, values: Vec<Value>) -> Result<u64, RepositoryError> {
        self.pool
            .execute_raw(Statement::from_sql_and_values(self.backend(), sql.text(self.dialect()), values))
            .await
            .map(|done| done.rows_affected())
            .map_err(map_db_err)
    }

    /// The state of one job, if it exists.
    async fn state_of(&self, job: JobId) -> Result<Option<JobState>, RepositoryError> {
        let rows = self.rows(&JOB_STATE, vec![Value::from(job.0)]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let state: String = row.try_get("", "state").map_err(map_db_err)?;
        Ok(JobState::parse(&state))
    }

    /// What a change that touched no row means: no such job, or not in the right state.
    async fn unchanged(&self, job: JobId) -> Result<JobChange, RepositoryError> {
        Ok(match self.state_of(job).await? {
            None => JobChange::NotFound,
            Some(state) => JobChange::WrongState(state),
        })
    }
}

#[async_trait]
impl QueueAdmin for PoolQueueAdmin {
    async fn job_counts(&self) -> Result<Vec<JobCount>, RepositoryError> {
        let rows = self.rows(&JOB_COUNTS, Vec::new()).await?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: String = row.try_get("", "kind").map_err(map_db_err)?;
            let state: String = row.try_get("", "state").map_err(map_db_err)?;
            let count: i64 = row.try_get("", "n").map_err(map_db_err)?;
            if let Some(state) = JobState::parse(&state) {
                counts.push(JobCount { kind, state, count: u64::try_from(count).unwrap_or_default() });
            }
        }
        Ok(counts)
    }

    async fn list_jobs(
        &self,
        filter: JobFilter,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, RepositoryError> {
        let sql = self.dialect().built(job_page(filter.state.is_some(), filter.kind.is_some(), before.is_some()));
        // In the order `job_page` numbers them.
        let mut values = Vec::new();
        values.extend(filter.state.map(|state| Value::from(state.as_str())));
        values.extend(filter.kind.map(Value::from));
        values.extend(before.map(|before| Value::from(before.0)));
        values.push(Value::from(i64::from(limit)));
        let rows = self.rows_of(&sql, values).await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let state: String = row.try_get("", "state").map_err(map_db_err)?;
            let Some(state) = JobState::parse(&state) else {
                continue;
            };
            jobs.push(JobRecord {
                id: JobId(row.try_get("", "id").map_err(map_db_err)?),
                kind: row.try_get("", "kind").map_err(map_db_err)?,
                state,
                attempts: row.try_get("", "attempts").map_err(map_db_err)?,
                max_attempts: row.try_get("", "max_attempts").map_err(map_db_err)?,
                due_at: self.read_time(&row, "due_at")?,
                last_error: row.try_get("", "last_error").map_err(map_db_err)?,
                created_at: self.read_time(&row, "created_at")?,
                updated_at: self.read_time(&row, "updated_at")?,
            });
        }
        Ok(jobs)
    }

    async fn retry_job(&self, job: JobId, now: DateTime<Utc>) -> Result<JobChange, RepositoryError> {
        let changed = self.execute(&DEAD_JOB_RETRY, vec![Value::from(job.0), self.time(now)]).await?;
        if changed == 1 {
            return Ok(JobChange::Changed);
        }
        self.unchanged(job).await
    }

    async fn delete_job(&self, job: JobId) -> Result<JobChange, RepositoryError> {
        let changed = self.execute(&IDLE_JOB_DELETE, vec![Value::from(job.0)]).await?;
        if changed == 1 {
            return Ok(JobChange::Changed);
        }
        self.unchanged(job).await
    }

    async fn prune_done_jobs(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, RepositoryError> {
        self.execute(&DONE_JOBS_PRUNE, vec![self.time(before), Value::from(i64::from(limit))]).await
    }

    async fn memories_missing_from_mem0(
        &self,
        after: MemoryId,
        limit: u32,
    ) -> Result<Vec<(MemoryId, UserId)>, RepositoryError> {
        let rows =
            self.rows(&MEMORIES_MISSING_FROM_MEM0, vec![Value::from(after.0), Value::from(i64::from(limit))]).await?;
        rows.iter()
            .map(|row| {
                let memory: i64 = row.try_get("", "id").map_err(map_db_err)?;
                let user: i64 = row.try_get("", "user_id").map_err(map_db_err)?;
                Ok((MemoryId(memory), UserId(user)))
            })
            .collect()
    }
}
