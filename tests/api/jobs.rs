//! The durable job queue on a real database: runs, retries, dead letters, leases, and
//! (on PostgreSQL) several workers sharing one queue with no job run twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};

use whatsapp_memory::adapters::db::Database;
use whatsapp_memory::app::jobs::{JobError, JobHandler, JobRunner, JobSignal, WorkerSettings};
use whatsapp_memory::domain::model::Job;
use whatsapp_memory::domain::ports::{transact, JobPriority, JobSettlement, NewJob, Repository, RepositoryError};

use crate::helpers::*;

/// Counts runs per job and fails the first `failures` runs of each.
#[derive(Default)]
struct CountingHandler {
    runs: Mutex<HashMap<i64, u32>>,
    failures: u32,
    permanent: bool,
    dead: Mutex<Vec<(i64, String)>>,
}

#[async_trait]
impl JobHandler for CountingHandler {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let run = {
            let mut runs = self.runs.lock().unwrap();
            let count = runs.entry(job.id.0).or_default();
            *count += 1;
            *count
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        match run <= self.failures {
            false => Ok(()),
            true if self.permanent => Err(JobError::Permanent("corrupt file".into())),
            true => Err(JobError::Retryable { message: "HTTP 503".into(), retry_after: None }),
        }
    }

    async fn dead_lettered(&self, job: &Job, error: &str) {
        self.dead.lock().unwrap().push((job.id.0, error.to_string()));
    }
}

struct Queue {
    repository: Arc<dyn Repository>,
    db: sea_orm::DatabaseConnection,
    clock: Arc<TestClock>,
    url: String,
    _dir: tempfile::TempDir,
}

async fn queue() -> Queue {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let database = Database::open(&url, true).await.unwrap();
    let clock = Arc::new(TestClock::at(Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()));
    Queue { repository: database.repository, db: database.pool, clock, url, _dir: dir }
}

fn settings() -> WorkerSettings {
    WorkerSettings {
        workers: 1,
        lease: Duration::from_secs(60),
        run_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(10),
        base_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(60),
    }
}

impl Queue {
    async fn enqueue(&self, count: usize, max_attempts: i32) {
        self.enqueue_with(count, max_attempts, JobPriority::Background, 0).await;
    }

    /// Queues `count` jobs whose payloads number from `first`.
    async fn enqueue_with(&self, count: usize, max_attempts: i32, priority: JobPriority, first: usize) {
        let due_at = self.clock_now();
        for i in first..first + count {
            let job =
                NewJob { kind: "test".into(), payload: serde_json::json!({ "n": i }), max_attempts, due_at, priority };
            transact(&*self.repository, move |tx| Box::pin(tx.enqueue_job(job))).await.unwrap();
        }
    }

    /// Claims the next job now, with a minute's lease, as a worker would.
    async fn claim(&self) -> Option<whatsapp_memory::domain::model::Job> {
        let now = self.clock_now();
        let lease_until = now + chrono::Duration::seconds(60);
        transact(&*self.repository, move |tx| Box::pin(tx.claim_job(now, lease_until))).await.unwrap()
    }

    fn clock_now(&self) -> chrono::DateTime<Utc> {
        use whatsapp_memory::domain::ports::Clock;
        self.clock.now()
    }

    fn runner(&self, handler: Arc<CountingHandler>) -> JobRunner {
        JobRunner::new(self.repository.clone(), self.clock.clone(), settings(), Arc::new(JobSignal::default()))
            .handle("test", handler)
    }

    async fn count(&self, state: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                format!("SELECT count(*) FROM jobs WHERE state = '{state}'"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }
}

#[tokio::test]
async fn a_queued_job_runs_once_and_is_done() {
    let queue = queue().await;
    queue.enqueue(1, 3).await;
    let handler = Arc::new(CountingHandler::default());
    let runner = queue.runner(handler.clone());
    assert!(runner.run_next().await.unwrap());
    assert!(!runner.run_next().await.unwrap(), "nothing else is due");
    assert_eq!(queue.count("done").await, 1);
    assert_eq!(handler.runs.lock().unwrap().values().copied().collect::<Vec<_>>(), vec![1]);
}

#[tokio::test]
async fn a_transient_failure_is_retried_after_a_back_off() {
    let queue = queue().await;
    queue.enqueue(1, 3).await;
    let handler = Arc::new(CountingHandler { failures: 1, ..Default::default() });
    let runner = queue.runner(handler.clone());
    assert!(runner.run_next().await.unwrap());
    assert_eq!(queue.count("queued").await, 1);
    assert!(!runner.run_next().await.unwrap(), "not due before its back-off");
    queue.clock.advance(chrono::Duration::seconds(13));
    assert!(runner.run_next().await.unwrap());
    assert_eq!(queue.count("done").await, 1);
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_dead_lettered_and_its_handler_told() {
    let queue = queue().await;
    queue.enqueue(1, 2).await;
    let handler = Arc::new(CountingHandler { failures: 10, ..Default::default() });
    let runner = queue.runner(handler.clone());
    runner.run_next().await.unwrap();
    queue.clock.advance(chrono::Duration::seconds(60));
    runner.run_next().await.unwrap();
    assert_eq!(queue.count("dead").await, 1);
    let dead = handler.dead.lock().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1, "HTTP 503");
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_at_once() {
    let queue = queue().await;
    queue.enqueue(1, 5).await;
    let handler = Arc::new(CountingHandler { failures: 1, permanent: true, ..Default::default() });
    queue.runner(handler.clone()).run_next().await.unwrap();
    assert_eq!(queue.count("dead").await, 1);
    assert_eq!(handler.dead.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_reply_is_claimed_before_an_older_backlog_of_background_jobs() {
    let queue = queue().await;
    queue.enqueue_with(20, 3, JobPriority::Background, 0).await;
    queue.clock.advance(chrono::Duration::seconds(1));
    queue.enqueue_with(1, 3, JobPriority::Reply, 100).await;
    assert_eq!(queue.claim().await.unwrap().payload["n"], 100, "the reply first");
    assert_eq!(queue.claim().await.unwrap().payload["n"], 0, "then the backlog, oldest first");
    assert_eq!(queue.claim().await.unwrap().payload["n"], 1);
}

#[tokio::test]
async fn follow_up_work_is_claimed_after_replies_and_before_a_backlog_of_new_media() {
    let queue = queue().await;
    queue.enqueue_with(20, 3, JobPriority::Background, 0).await;
    queue.clock.advance(chrono::Duration::seconds(1));
    queue.enqueue_with(1, 3, JobPriority::FollowUp, 50).await;
    queue.enqueue_with(1, 3, JobPriority::Reply, 100).await;
    assert_eq!(queue.claim().await.unwrap().payload["n"], 100, "the reply first");
    assert_eq!(queue.claim().await.unwrap().payload["n"], 50, "then the voice note already under way");
    assert_eq!(queue.claim().await.unwrap().payload["n"], 0, "then the backlog, oldest first");
}

#[tokio::test]
async fn a_job_left_running_by_a_crash_is_claimed_again_when_its_lease_expires() {
    let queue = queue().await;
    queue.enqueue(1, 3).await;
    // A worker claims the job and dies before settling it.
    let now = queue.clock_now();
    let lease_until = now + chrono::Duration::seconds(60);
    let claimed = transact(&*queue.repository, move |tx| Box::pin(tx.claim_job(now, lease_until))).await.unwrap();
    assert!(claimed.is_some());
    let handler = Arc::new(CountingHandler::default());
    let runner = queue.runner(handler.clone());
    assert!(!runner.run_next().await.unwrap(), "still leased");
    queue.clock.advance(chrono::Duration::seconds(61));
    assert!(runner.run_next().await.unwrap());
    assert_eq!(queue.count("done").await, 1);
}

#[tokio::test]
async fn workers_sharing_one_queue_never_run_a_job_twice() {
    let queue = queue().await;
    queue.enqueue(100, 3).await;
    let handler = Arc::new(CountingHandler::default());
    // Two independent runners (as two processes would be), four workers each.
    let second = Database::open(&queue.url, false).await.unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for repository in [queue.repository.clone(), second.repository.clone()] {
        let runner = JobRunner::new(
            repository,
            queue.clock.clone(),
            WorkerSettings { workers: 4, ..settings() },
            Arc::new(JobSignal::default()),
        )
        .handle("test", handler.clone());
        tasks.push(runner.start(shutdown.clone()));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while queue.count("done").await < 100 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(queue.count("done").await, 100);
    let runs = handler.runs.lock().unwrap();
    assert_eq!(runs.len(), 100);
    assert!(runs.values().all(|&n| n == 1), "a job ran twice");
}

#[tokio::test]
async fn a_worker_whose_lease_was_taken_over_cannot_settle_the_job() {
    let queue = queue().await;
    queue.enqueue(1, 3).await;
    let claim = |now: chrono::DateTime<Utc>| {
        let repository = queue.repository.clone();
        async move {
            let lease_until = now + chrono::Duration::seconds(60);
            transact(&*repository, move |tx| Box::pin(tx.claim_job(now, lease_until))).await.unwrap().unwrap()
        }
    };
    let first = claim(queue.clock_now()).await;
    // The first worker stalls past its lease; another claims the job.
    let second = claim(queue.clock_now() + chrono::Duration::seconds(61)).await;
    assert_eq!((first.id, first.attempts, second.attempts), (second.id, 1, 2));
    let settle = |attempt: i32| {
        let repository = queue.repository.clone();
        let (id, now) = (first.id, queue.clock_now());
        async move { transact(&*repository, move |tx| Box::pin(tx.settle_job(id, attempt, JobSettlement::Done, now))).await }
    };
    assert!(matches!(settle(1).await, Err(RepositoryError::LeaseLost(_))), "the stale claim is fenced off");
    settle(2).await.unwrap();
    assert_eq!(queue.count("done").await, 1);
}

/// Blocks each run until the test lets it finish.
struct SlowHandler {
    started: tokio::sync::Notify,
    finish: tokio::sync::Notify,
    runs: Mutex<u32>,
}

#[async_trait]
impl JobHandler for SlowHandler {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        *self.runs.lock().unwrap() += 1;
        self.started.notify_one();
        self.finish.notified().await;
        Ok(())
    }

    async fn dead_lettered(&self, _job: &Job, _error: &str) {}
}

#[tokio::test]
async fn a_job_running_longer_than_its_lease_keeps_it() {
    let queue = queue().await;
    queue.enqueue(1, 3).await;
    let handler = Arc::new(SlowHandler {
        started: tokio::sync::Notify::new(),
        finish: tokio::sync::Notify::new(),
        runs: Mutex::new(0),
    });
    let lease = Duration::from_millis(300);
    let runner = JobRunner::new(
        queue.repository.clone(),
        queue.clock.clone(),
        WorkerSettings { lease, ..settings() },
        Arc::new(JobSignal::default()),
    )
    .handle("test", handler.clone());
    let running = tokio::spawn(async move { runner.run_next().await.unwrap() });
    handler.started.notified().await;
    // Well past the first lease; the worker renews it every 100 ms.
    queue.clock.advance(chrono::Duration::seconds(10));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let now = queue.clock_now();
    let lease_until = now + chrono::Duration::seconds(60);
    let stolen = transact(&*queue.repository, move |tx| Box::pin(tx.claim_job(now, lease_until))).await.unwrap();
    assert!(stolen.is_none(), "a job still being worked on was claimed again");
    handler.finish.notify_one();
    assert!(running.await.unwrap());
    assert_eq!(queue.count("done").await, 1);
    assert_eq!(*handler.runs.lock().unwrap(), 1);
}

/// Before, the failed delivery of a reply given up on was written together with settling
/// its job, which was already settled as dead: the write was rolled back ("could not
/// record a failed delivery: job N is no longer this worker's") and no record was left.
#[tokio::test]
async fn a_reply_that_exhausts_its_attempts_is_recorded_as_a_failed_delivery() {
    use whatsapp_memory::adapters::twilio::sender::TwilioSender;
    use whatsapp_memory::app::notify::{QueuedReply, SendJobHandler, SEND_JOB_KIND};
    use whatsapp_memory::config::Secret;

    let queue = queue().await;
    let twilio = crate::fake_twilio::start().await;
    twilio.fail_next_sends(10, 500);
    let now = queue.clock_now();
    let user = transact(&*queue.repository, move |tx| {
        Box::pin(async move { tx.find_or_create_user("15551234567", "+15551234567", None, now).await })
    })
    .await
    .unwrap();
    let reply = QueuedReply {
        user_id: user.id.0,
        to: ADA.into(),
        body: "📷 Photo saved ✅".into(),
        in_reply_to: None,
        channel: Default::default(),
    };
    let job = NewJob {
        kind: SEND_JOB_KIND.into(),
        payload: serde_json::to_value(&reply).unwrap(),
        max_attempts: 1,
        due_at: now,
        priority: JobPriority::Reply,
    };
    transact(&*queue.repository, move |tx| Box::pin(tx.enqueue_job(job))).await.unwrap();
    let sender = TwilioSender::new(
        twilio.base_url().parse().unwrap(),
        twilio.account_sid().to_string(),
        Secret::new(twilio.auth_token()),
        "+14155238886".into(),
        Duration::from_secs(5),
    )
    .unwrap();
    let handler = SendJobHandler::new(queue.repository.clone(), Some(Arc::new(sender)), queue.clock.clone());
    let runner =
        JobRunner::new(queue.repository.clone(), queue.clock.clone(), settings(), Arc::new(JobSignal::default()))
            .handle(SEND_JOB_KIND, Arc::new(handler));
    assert!(runner.run_next().await.unwrap());
    assert_eq!(queue.count("dead").await, 1);
    use sea_orm::{ConnectionTrait, Statement};
    let row = queue
        .db
        .query_one_raw(Statement::from_string(
            queue.db.get_database_backend(),
            "SELECT count(*) FROM interactions WHERE direction = 'outbound' AND delivery_status = 'failed'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 1, "the failed delivery is recorded");
}
