//! The durable job queue's workers: claim a due job, run its handler, settle it. Transient
//! failures retry with exponential back-off and jitter; a job that keeps failing is
//! dead-lettered and its handler told (so the user hears). A job left running by a crash
//! is claimed again when its lease expires: nothing queued is lost on `kill -9`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use crate::domain::model::Job;
use crate::domain::ports::{transact, Clock, JobSettlement, Repository, RepositoryError};
use crate::telemetry::metrics;

/// Why one run of a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt later (timeouts, 429, 5xx, a locked database).
    #[error("{message}")]
    Retryable { message: String, retry_after: Option<Duration> },
    /// Will fail the same way every time (a refused URL, a corrupt file).
    #[error("{0}")]
    Permanent(String),
    /// This worker's lease ran out and another worker has the job: nothing to settle,
    /// nobody to tell.
    #[error("{0}")]
    LeaseLost(String),
}

impl From<RepositoryError> for JobError {
    fn from(error: RepositoryError) -> Self {
        if let RepositoryError::LeaseLost(_) = error {
            JobError::LeaseLost(error.to_string())
        } else if error.is_retryable() {
            JobError::Retryable { message: error.to_string(), retry_after: None }
        } else {
            JobError::Permanent(error.to_string())
        }
    }
}

/// Runs the jobs of one kind.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Does the job. A handler whose effects must not happen twice marks the job done
    /// (`settle_job(.., Done, ..)`) in the same transaction as those effects: a crash
    /// before that commit leaves nothing done, one after it leaves the job done.
    ///
    /// # Errors
    /// [`JobError`], saying whether another attempt can help.
    async fn run(&self, job: &Job) -> Result<(), JobError>;

    /// Called once when the job is given up, so the user can be told.
    async fn dead_lettered(&self, job: &Job, error: &str);
}

/// How workers pace themselves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub workers: usize,
    /// How long a claimed job belongs to its worker; longer than any run may take.
    pub lease: Duration,
    /// Longest one run may take before it counts as a transient failure.
    pub run_timeout: Duration,
    /// How often an idle worker looks for due jobs (new jobs also wake it at once).
    pub poll_interval: Duration,
    /// First retry delay; doubles with every attempt, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            lease: Duration::from_secs(300),
            // A ten-minute voice note may wait for the transcriber and then take a minute.
            run_timeout: Duration::from_secs(900),
            poll_interval: Duration::from_millis(500),
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(600),
        }
    }
}

/// The delay before attempt `attempts + 1`: exponential, capped, with ±25 % jitter
/// from `entropy` so that jobs failing together do not retry together.
pub fn backoff(settings: &WorkerSettings, attempts: i32, entropy: u64) -> Duration {
    let exponent = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let base = settings.base_backoff.saturating_mul(2u32.saturating_pow(exponent)).min(settings.max_backoff);
    let jitter = (entropy % 501) as f64 / 1000.0 - 0.25;
    base.mul_f64(1.0 + jitter)
}

/// Wakes idle workers when work is queued, instead of waiting for their next poll.
#[derive(Default)]
pub struct JobSignal(Notify);

impl JobSignal {
    /// Says new jobs are due.
    pub fn notify(&self) {
        self.0.notify_waiters();
    }

    /// Resolves at the next [`JobSignal::notify`] after this call (tests watch for it).
    #[cfg(test)]
    pub fn notified_for_test(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.notified()
    }
}

/// The queue's workers.
pub struct JobRunner {
    repository: Arc<dyn Repository>,
    clock: Arc<dyn Clock>,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    settings: WorkerSettings,
    signal: Arc<JobSignal>,
}

impl JobRunner {
    /// Workers over `repository`'s job table.
    pub fn new(
        repository: Arc<dyn Repository>,
        clock: Arc<dyn Clock>,
        settings: WorkerSettings,
        signal: Arc<JobSignal>,
    ) -> Self {
        Self { repository, clock, handlers: HashMap::new(), settings, signal }
    }

    /// Routes jobs of `kind` to `handler`.
    pub fn handle(mut self, kind: &str, handler: Arc<dyn JobHandler>) -> Self {
        self.handlers.insert(kind.to_string(), handler);
        self
    }

    /// Starts the workers; they stop claiming when `shutdown` turns true and finish the
    /// job in hand. Await the returned handle to wait for them.
    pub fn start(self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let runner = Arc::new(self);
        tokio::spawn(async move {
            let workers: Vec<_> = (0..runner.settings.workers.max(1))
                .map(|worker| {
                    let runner = runner.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move { runner.work(worker, shutdown).await })
                })
                .collect();
            for worker in workers {
                let _ = worker.await;
            }
        })
    }

    async fn work(&self, worker: usize, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self.run_next().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => tracing::warn!(worker, %error, "could not claim a job"),
            }
            tokio::select! {
                () = self.signal.0.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Claims and runs one due job. `Ok(false)` when none was due.
    ///
    /// # Errors
    /// When the queue itself cannot be read or written.
    pub async fn run_next(&self) -> Result<bool, RepositoryError> {
        let now = self.clock.now();
        let lease_until = now + chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::minutes(5));
        let Some(job) = transact(&*self.repository, move |tx| Box::pin(tx.claim_job(now, lease_until))).await? else {
            return Ok(false);
        };
        let span = tracing::info_span!("job", id = job.id.0, kind = %job.kind, attempt = job.attempts);
        let started = std::time::Instant::now();
        let settlement = tokio::select! {
            settlement = self.run_job(&job).instrument(span) => settlement,
            () = self.keep_leased(&job) => unreachable!("keeping a lease never ends"),
        };
        let outcome = match &settlement {
            None => "lost",
            Some(JobSettlement::Done) => "done",
            Some(JobSettlement::Retry { .. }) => "retry",
            Some(JobSettlement::Dead { .. }) => "dead",
            Some(JobSettlement::Release) => "released",
        };
        metrics::job_run(&job.kind, outcome, job.attempts, started.elapsed());
        let Some(settlement) = settlement else {
            return Ok(true);
        };
        let (id, attempt, now) = (job.id, job.attempts, self.clock.now());
        let dead = match &settlement {
            JobSettlement::Dead { error } => Some(error.clone()),
            _ => None,
        };
        match transact(&*self.repository, move |tx| Box::pin(tx.settle_job(id, attempt, settlement, now))).await {
            Ok(()) => {
                // Told only once the job is dead for sure, never by a worker that lost it.
                if let (Some(error), Some(handler)) = (dead, self.handlers.get(&job.kind)) {
                    handler.dead_lettered(&job, &error).await;
                }
                Ok(true)
            }
            // The handler settled it with its effects, or another worker took it over.
            Err(RepositoryError::LeaseLost(_)) => Ok(true),
            Err(error) => Err(error),
        }
    }

    /// Renews the job's lease every third of its length for as long as it runs, so a slow
    /// job (a big download, a long transcription) is never claimed twice. Never returns;
    /// the caller drops it when the job ends.
    async fn keep_leased(&self, job: &Job) {
        let period = self.settings.lease / 3;
        let (id, attempt) = (job.id, job.attempts);
        loop {
            tokio::time::sleep(period).await;
            let lease_until = self.clock.now() + to_chrono(self.settings.lease);
            match transact(&*self.repository, move |tx| Box::pin(tx.renew_lease(id, attempt, lease_until))).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(job = id.0, "the job's lease was lost; its effects will not commit"),
                Err(error) => tracing::warn!(job = id.0, %error, "could not renew the job's lease"),
            }
        }
    }

    /// Runs the handler and decides how the job ends; `None` when another worker has
    /// taken the job over.
    async fn run_job(&self, job: &Job) -> Option<JobSettlement> {
        let Some(handler) = self.handlers.get(&job.kind) else {
            return Some(JobSettlement::Dead { error: format!("no handler for job kind {:?}", job.kind) });
        };
        let outcome = match tokio::time::timeout(self.settings.run_timeout, handler.run(job)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(JobError::Retryable { message: "the job timed out".into(), retry_after: None }),
        };
        Some(match outcome {
            Ok(()) => JobSettlement::Done,
            Err(JobError::LeaseLost(message)) => {
                tracing::warn!(job = job.id.0, attempt = job.attempts, %message, "job taken over by another worker");
                return None;
            }
            Err(JobError::Retryable { message, retry_after }) if job.attempts < job.max_attempts => {
                let delay = retry_after.unwrap_or_else(|| backoff(&self.settings, job.attempts, entropy(job)));
                tracing::warn!(job = job.id.0, attempt = job.attempts, error = %message, ?delay, "job failed; will retry");
                JobSettlement::Retry { due_at: self.clock.now() + to_chrono(delay), error: message }
            }
            Err(error) => {
                let error = error.to_string();
                tracing::error!(job = job.id.0, attempt = job.attempts, %error, "job dead-lettered");
                JobSettlement::Dead { error }
            }
        })
    }
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Varies per job and attempt, and per run, without a random number generator.
fn entropy(job: &Job) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or_default();
    (job.id.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (job.attempts as u64).rotate_left(17) ^ nanos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_attempt_within_the_jitter_and_is_capped() {
        let settings = WorkerSettings::default();
        for (attempt, base) in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0)] {
            for entropy in [0, 250, 500, 12345] {
                let delay = backoff(&settings, attempt, entropy).as_secs_f64();
                assert!(delay >= base * 0.75 - 1e-9 && delay <= base * 1.25 + 1e-9, "attempt {attempt}: {delay}");
            }
        }
        assert!(backoff(&settings, 40, 250).as_secs_f64() <= 600.0 * 1.25);
    }

    #[test]
    fn jitter_spreads_retries_of_jobs_that_failed_together() {
        let settings = WorkerSettings::default();
        let delays: std::collections::HashSet<_> =
            (0..20u64).map(|e| backoff(&settings, 3, e * 37).as_millis()).collect();
        assert!(delays.len() > 10);
    }
}
