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
//!
//! The most common message, a text to keep from a known sender, comes as data instead
//! (`Repository::save_text_at_once`): the texts of a batch are stored first, all in one
//! statement, so they cost one round trip together instead of two each, and need no
//! savepoint. A text that statement does not store is answered `None` at once (nothing
//! of it was stored) and its caller takes the step by step path.

use futures::FutureExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionTrait};
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::pool::map_db_err;
use super::postgres_transaction::PostgresTransaction;
use super::row::Row;
use super::statements::users_messages::TEXTS_SAVE_POSTGRES;
use crate::domain::model::{InteractionId, UserId};
use crate::domain::ports::{RepositoryError, SavedText, TextToSave, Work};

/// Units of work committed together at most. Each savepoint that writes gets a
/// subtransaction id, and PostgreSQL keeps 64 of them per backend in shared memory
/// (`PGPROC_MAX_CACHED_SUBXIDS`); past that every other session's snapshot has to look
/// subtransactions up on disk while this transaction runs. 64 keeps under the limit.
const MAX_BATCH: usize = 64;

/// Texts stored together at most. They take no savepoint (no subtransaction); the cap
/// bounds one statement's JSON and the time the batch's other callers wait for it.
const MAX_TEXTS: usize = 512;

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

/// Where a text's outcome goes: what was stored once committed, `None` at once when it
/// was not stored.
type TextReply = oneshot::Sender<Result<Option<SavedText>, RepositoryError>>;

enum WriteRequest {
    Work { work: Work, done: Reply },
    Text { text: Box<TextToSave>, done: TextReply },
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
            .send(WriteRequest::Work { work, done })
            .map_err(|_| RepositoryError::Unavailable("the PostgreSQL writer has stopped".into()))?;
        result
            .await
            .unwrap_or_else(|_| Err(RepositoryError::Unavailable("the PostgreSQL writer stopped mid-batch".into())))
    }

    /// Stores `text` with the other texts of the next group transaction and returns
    /// what was stored once it is committed, or `None` (nothing stored) when the
    /// statement that stores them does not cover it.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] if the transaction could not be begun or
    /// committed, or the writer has stopped.
    pub(super) async fn submit_text(&self, text: TextToSave) -> Result<Option<SavedText>, RepositoryError> {
        let (done, result) = oneshot::channel();
        self.requests
            .send(WriteRequest::Text { text: Box::new(text), done })
            .map_err(|_| RepositoryError::Unavailable("the PostgreSQL writer has stopped".into()))?;
        result
            .await
            .unwrap_or_else(|_| Err(RepositoryError::Unavailable("the PostgreSQL writer stopped mid-batch".into())))
    }
}

/// How long a lane waits for work with its next transaction begun before it ends that
/// (empty) transaction and begins another: a quiet server keeps no transaction open for
/// long, and none of its statements reads the transaction's start time (every time comes
/// from the service's clock).
const IDLE: Duration = Duration::from_secs(1);

/// One lane: begins a transaction, takes the turn (the queue), runs the waiting units of
/// work in that transaction, gives the turn up, then commits. Only the lane holding the
/// turn runs statements; the other may be committing meanwhile, and begins its next
/// transaction before it waits for the turn, so the pool's liveness check and BEGIN's
/// round trip happen while the other lane runs statements, not in the turn. A
/// committing transaction waits for no lock, so the lanes cannot deadlock each other: at
/// worst the running batch waits for the committing one's rows (a new user both insert),
/// as separate transactions always did.
async fn run_lane(pool: DatabaseConnection, turn: Arc<Mutex<mpsc::UnboundedReceiver<WriteRequest>>>) {
    loop {
        // One that cannot begin now is tried again once work is there (the database may
        // be back by then); if it still cannot, that batch fails, so its callers hear of
        // it instead of waiting.
        let begun = pool.begin().await;
        let mut queue = turn.lock().await;
        let first = match tokio::time::timeout(IDLE, queue.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => return,
            Err(_) => {
                drop(queue);
                if let Ok(transaction) = begun {
                    let _ = transaction.rollback().await;
                }
                continue;
            }
        };
        let mut batch = Batch::default();
        batch.add(first);
        while batch.works.len() < MAX_BATCH && batch.texts.len() < MAX_TEXTS {
            match queue.try_recv() {
                Ok(request) => batch.add(request),
                Err(_) => break,
            }
        }
        let begun = match begun {
            Ok(transaction) => Ok(transaction),
            Err(_) => pool.begin().await.map_err(map_db_err),
        };
        let ran = match begun {
            Ok(transaction) => run_batch(&pool, transaction, batch).await,
            Err(error) => {
                batch.fail(&error);
                None
            }
        };
        drop(queue);
        if let Some(ran) = ran {
            ran.commit().await;
        }
    }
}

/// What one group transaction takes from the queue: texts, stored first and together,
/// and units of work, run after them one by one.
#[derive(Default)]
struct Batch {
    texts: Vec<(TextToSave, TextReply)>,
    works: Vec<(Work, Reply)>,
}

impl Batch {
    fn add(&mut self, request: WriteRequest) {
        match request {
            WriteRequest::Work { work, done } => self.works.push((work, done)),
            WriteRequest::Text { text, done } => self.texts.push((*text, done)),
        }
    }

    /// Tells everyone in the batch that nothing of theirs was stored, because `error`.
    fn fail(self, error: &RepositoryError) {
        for (_, done) in self.texts {
            let _ = done.send(Err(RepositoryError::Unavailable(error.to_string())));
        }
        for (_, done) in self.works {
            let _ = done.send(Err(RepositoryError::Unavailable(error.to_string())));
        }
    }
}

/// A batch whose units of work have run, waiting for its COMMIT.
struct RanBatch {
    transaction: DatabaseTransaction,
    saved_texts: Vec<(TextReply, SavedText)>,
    outcomes: Vec<(Reply, Result<(), RepositoryError>)>,
    /// Set when the transaction can no longer be committed as it stands.
    broken: Option<RepositoryError>,
}

/// Stores the texts of `batch` in `transaction`, then runs every unit of work in it, each
/// in its own savepoint. `None` when the transaction had to be begun anew and could not
/// be (everyone has been told).
async fn run_batch(pool: &DatabaseConnection, transaction: DatabaseTransaction, mut batch: Batch) -> Option<RanBatch> {
    let texts = std::mem::take(&mut batch.texts);
    let untried = texts.is_empty();
    let (mut transaction, saved_texts) = match save_texts(pool, transaction, texts).await {
        Ok(saved) => saved,
        Err(error) => {
            batch.fail(&error);
            return None;
        }
    };
    // The transaction was begun before the work came (`run_lane`), and its connection
    // may have died meanwhile (the database restarted). With texts, their statement has
    // found that out and begun anew; without, the first savepoint is where it shows, and
    // as nothing has run yet, the batch is given one new transaction instead of failing.
    let mut first_opened = false;
    if untried && !batch.works.is_empty() {
        if let Err(error) = transaction.execute_unprepared(OPEN).await {
            tracing::warn!(error = %map_db_err(error), "the writer's transaction was lost before its work came; beginning anew");
            let _ = transaction.rollback().await;
            transaction = match pool.begin().await {
                Ok(transaction) => transaction,
                Err(error) => {
                    batch.fail(&map_db_err(error));
                    return None;
                }
            };
        } else {
            first_opened = true;
        }
    }
    let mut outcomes = Vec::with_capacity(batch.works.len());
    // How the previous unit of work's savepoint ends; sent with the next statement.
    let mut pending_end: Option<&str> = None;
    let mut broken: Option<RepositoryError> = None;
    for (work, done) in batch.works {
        if broken.is_some() {
            outcomes.push((done, Ok(())));
            continue;
        }
        let open = match pending_end.take() {
            Some(end) => format!("{end}; {OPEN}"),
            None => OPEN.to_string(),
        };
        let opened = if std::mem::take(&mut first_opened) {
            Ok(())
        } else {
            transaction.execute_unprepared(&open).await.map(drop)
        };
        if let Err(error) = opened {
            broken = Some(map_db_err(error));
            outcomes.push((done, Ok(())));
            continue;
        }
        let outcome = run_work(&transaction, work).await;
        pending_end = Some(if outcome.is_ok() { KEEP } else { UNDO });
        outcomes.push((done, outcome));
    }
    // COMMIT releases a kept savepoint; one to undo must be undone first (COMMIT of a
    // transaction in the aborted state would quietly roll back everyone's work).
    if broken.is_none() && pending_end == Some(UNDO) {
        if let Err(error) = transaction.execute_unprepared(UNDO).await {
            broken = Some(map_db_err(error));
        }
    }
    Some(RanBatch { transaction, saved_texts, outcomes, broken })
}

/// Stores `texts` on `transaction` in one statement ([`TEXTS_SAVE_POSTGRES`]). Each text
/// it did not store is answered `None` at once: nothing of it was stored, and its
/// caller goes on with the step by step path. The ones stored are returned, to be
/// answered after COMMIT.
///
/// The statement runs first in the transaction, with no savepoint: if it fails (a
/// value PostgreSQL refuses, a lost connection), nothing else has run yet, so the
/// transaction is rolled back and a new one begun, and every text is declined, to be
/// stored step by step, each in its own savepoint, where a bad one fails alone.
///
/// # Errors
/// [`RepositoryError::Unavailable`] when the new transaction could not begin.
async fn save_texts(
    pool: &DatabaseConnection,
    transaction: DatabaseTransaction,
    texts: Vec<(TextToSave, TextReply)>,
) -> Result<(DatabaseTransaction, Vec<(TextReply, SavedText)>), RepositoryError> {
    if texts.is_empty() {
        return Ok((transaction, Vec::new()));
    }
    // A sid sent twice at once (a redelivery racing the first delivery) goes once into
    // the statement; the other copy takes the step by step path, which answers a
    // redelivery.
    let mut seen = HashSet::with_capacity(texts.len());
    let (texts, repeated): (Vec<_>, Vec<_>) =
        texts.into_iter().partition(|(text, _)| seen.insert(text.message.sid.0.clone()));
    for (_, done) in repeated {
        let _ = done.send(Ok(None));
    }
    let given = serde_json::Value::Array(texts.iter().map(|(text, _)| text_as_json(text)).collect());
    let statement =
        Statement::from_sql_and_values(DbBackend::Postgres, TEXTS_SAVE_POSTGRES.postgres(), vec![given.into()]);
    let rows = match transaction.query_all_raw(statement).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(error = %map_db_err(error), texts = texts.len(), "texts not stored together; each is stored step by step");
            let _ = transaction.rollback().await;
            for (_, done) in texts {
                let _ = done.send(Ok(None));
            }
            let transaction = pool.begin().await.map_err(map_db_err)?;
            return Ok((transaction, Vec::new()));
        }
    };
    let mut stored = HashMap::with_capacity(rows.len());
    for row in &rows {
        let sid: String = row.value("sid")?;
        stored.insert(sid, SavedText { user: UserId(row.value("user_id")?), inbound: InteractionId(row.value("id")?) });
    }
    let mut saved = Vec::with_capacity(stored.len());
    for (text, done) in texts {
        match stored.remove(&text.message.sid.0) {
            Some(one) => saved.push((done, one)),
            None => {
                let _ = done.send(Ok(None));
            }
        }
    }
    Ok((transaction, saved))
}

/// One text as [`TEXTS_SAVE_POSTGRES`] reads it. Times go with microseconds, as
/// PostgreSQL keeps them (and as a bound timestamp is sent).
fn text_as_json(text: &TextToSave) -> serde_json::Value {
    let message = &text.message;
    let time = |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    serde_json::json!({
        "wa_id": message.wa_id,
        "name": message.profile_name,
        "sid": message.sid.0,
        "kind": message.message_type,
        "body": message.body,
        "raw": message.raw_form,
        "at": time(message.received_at),
        "text": text.text,
        "reply": text.reply,
        "queue": text.queue_embedding,
        "now": time(text.now),
    })
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
                for (done, saved) in self.saved_texts {
                    let _ = done.send(Ok(Some(saved)));
                }
                for (done, outcome) in self.outcomes {
                    let _ = done.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, "group commit failed; every message in it is reported as not stored");
                for (done, _) in self.saved_texts {
                    let _ = done.send(Err(RepositoryError::Unavailable(format!("commit failed: {error}"))));
                }
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
