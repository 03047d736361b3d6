//! PostgreSQL's group commit: the server's writer takes whatever messages (and job
//! outcomes) are waiting and runs them in ONE transaction, each in its own savepoint so
//! a failing one rolls back alone, and answers each caller only after COMMIT. One commit
//! (one WAL flush) then carries many messages, where a transaction per message paid a
//! flush and a BEGIN/COMMIT round trip each. `synchronous_commit` stays on: a message is
//! answered only once it is durable, as before.
//!
//! The savepoint statements travel with the next ones in one simple-protocol round trip
//! (`RELEASE SAVEPOINT message; SAVEPOINT message`), so a message costs one round trip
//! more than its own statements; its own statements stay prepared and cached by sqlx.

use futures::FutureExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::pool::map_db_err;
use super::postgres_transaction::PostgresTransaction;
use crate::domain::ports::{RepositoryError, Work};

/// Units of work committed together at most. Each savepoint that writes gets a
/// subtransaction id, and PostgreSQL keeps 64 of them per backend in shared memory
/// (`PGPROC_MAX_CACHED_SUBXIDS`); past that every other session's snapshot has to look
/// subtransactions up on disk while this transaction runs. 64 keeps under the limit.
const MAX_BATCH: usize = 64;

/// Opens a unit of work's savepoint. Its name is reused: a savepoint is always released
/// or rolled back before the next one opens.
const OPEN: &str = "SAVEPOINT message";
/// Keeps a unit of work's effects in the group transaction.
const KEEP: &str = "RELEASE SAVEPOINT message";
/// Undoes a unit of work's effects (and a failed statement's aborted state), and only
/// those.
const UNDO: &str = "ROLLBACK TO SAVEPOINT message; RELEASE SAVEPOINT message";

/// Transactions a server has open for its writes: one runs statements while the other
/// commits, so the 2 ms a WAL flush takes here is not time the database sits idle.
const LANES: usize = 2;

/// Where a unit of work's outcome goes once its transaction has ended.
type Reply = oneshot::Sender<Result<(), RepositoryError>>;

struct WriteRequest {
    work: Work,
    done: Reply,
}

/// A handle to the writer; cheap to share. Its lanes end when every handle is dropped,
/// after finishing the batches in hand.
#[derive(Clone)]
pub(super) struct PostgresWriter {
    requests: mpsc::UnboundedSender<WriteRequest>,
}

impl PostgresWriter {
    /// Starts the writer's lanes on the current runtime; each batch takes one connection
    /// of `pool` for its transaction.
    pub(super) fn start(pool: DatabaseConnection) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        let turn = Arc::new(Mutex::new(receiver));
        for _ in 0..LANES {
            tokio::spawn(run_lane(pool.clone(), turn.clone()));
        }
        Self { requests }
    }

    /// Runs `work` in the next group transaction and returns once it is committed.
    ///
    /// # Errors
    /// The work's own error, or [`RepositoryError::Unavailable`] if the transaction could
    /// not be begun or committed, or the writer has stopped.
    pub(super) async fn submit(&self, work: Work) -> Result<(), RepositoryError> {
        let (done, result) = oneshot::channel();
        self.requests
            .send(WriteRequest { work, done })
            .map_err(|_| RepositoryError::Unavailable("the PostgreSQL writer has stopped".into()))?;
        result
            .await
            .unwrap_or_else(|_| Err(RepositoryError::Unavailable("the PostgreSQL writer stopped mid-batch".into())))
    }
}

/// One lane: takes the turn (the queue), runs the waiting units of work in a new
/// transaction, gives the turn up, then commits. Only the lane holding the turn runs
/// statements; the other may be committing meanwhile. A committing transaction waits
/// for no lock, so the lanes cannot deadlock each other: at worst the running batch
/// waits for the committing one's rows (a new user both insert), as separate
/// transactions always did.
async fn run_lane(pool: DatabaseConnection, turn: Arc<Mutex<mpsc::UnboundedReceiver<WriteRequest>>>) {
    loop {
        let mut queue = turn.lock().await;
        let Some(first) = queue.recv().await else { return };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let ran = run_batch(&pool, batch).await;
        drop(queue);
        if let Some(ran) = ran {
            ran.commit().await;
        }
    }
}

/// A batch whose units of work have run, waiting for its COMMIT.
struct RanBatch {
    transaction: DatabaseTransaction,
    outcomes: Vec<(Reply, Result<(), RepositoryError>)>,
    /// Set when the transaction can no longer be committed as it stands.
    broken: Option<RepositoryError>,
}

/// Begins a transaction and runs every unit of work of `batch` in it, each in its own
/// savepoint. `None` when the transaction could not begin (everyone has been told).
async fn run_batch(pool: &DatabaseConnection, batch: Vec<WriteRequest>) -> Option<RanBatch> {
    let transaction = match pool.begin().await {
        Ok(transaction) => transaction,
        Err(error) => {
            let error = map_db_err(error);
            for request in batch {
                let _ = request.done.send(Err(RepositoryError::Unavailable(error.to_string())));
            }
            return None;
        }
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    // How the previous unit of work's savepoint ends; sent with the next statement.
    let mut pending_end: Option<&str> = None;
    let mut broken: Option<RepositoryError> = None;
    for request in batch {
        if broken.is_some() {
            outcomes.push((request.done, Ok(())));
            continue;
        }
        let open = match pending_end.take() {
            Some(end) => format!("{end}; {OPEN}"),
            None => OPEN.to_string(),
        };
        if let Err(error) = transaction.execute_unprepared(&open).await {
            broken = Some(map_db_err(error));
            outcomes.push((request.done, Ok(())));
            continue;
        }
        let outcome = run_work(&transaction, request.work).await;
        pending_end = Some(if outcome.is_ok() { KEEP } else { UNDO });
        outcomes.push((request.done, outcome));
    }
    // COMMIT releases a kept savepoint; one to undo must be undone first (COMMIT of a
    // transaction in the aborted state would quietly roll back everyone's work).
    if broken.is_none() && pending_end == Some(UNDO) {
        if let Err(error) = transaction.execute_unprepared(UNDO).await {
            broken = Some(map_db_err(error));
        }
    }
    Some(RanBatch { transaction, outcomes, broken })
}

impl RanBatch {
    /// Commits (or, when broken, rolls back) and answers every caller.
    async fn commit(self) {
        let committed = match self.broken {
            Some(error) => {
                let _ = self.transaction.rollback().await;
                Err(error)
            }
            None => self.transaction.commit().await.map_err(map_db_err),
        };
        match committed {
            Ok(()) => {
                for (done, outcome) in self.outcomes {
                    let _ = done.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, "group commit failed; every message in it is reported as not stored");
                for (done, _) in self.outcomes {
                    let _ = done.send(Err(RepositoryError::Unavailable(format!("commit failed: {error}"))));
                }
            }
        }
    }
}

/// Runs one unit of work on the group transaction; a panic is its failure alone.
async fn run_work(transaction: &DatabaseTransaction, work: Work) -> Result<(), RepositoryError> {
    let mut unit = PostgresTransaction::new(transaction);
    AssertUnwindSafe(work(&mut unit))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(RepositoryError::Internal("a message handler panicked".into())))
}
