//! The one SQLite writer: a thread that owns the write connection and commits whatever
//! messages are waiting as ONE transaction (group commit), each in its own savepoint so a
//! bad message fails alone. Each caller awaits its own result, sent only after COMMIT.
//! Writers queueing on SQLite's lock from a pool is what this avoids.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::task::{Context, Poll};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::sqlite_connection::{map_sqlite_err, open_connection};
use super::sqlite_transaction::SqliteTransaction;
use crate::domain::ports::{RepositoryError, Work};
use crate::telemetry::blocking::Carried;
use crate::telemetry::metrics as m;

/// Messages committed together at most; bounds the latency one batch adds.
const MAX_BATCH: usize = 256;

struct WriteRequest {
    work: Work,
    done: oneshot::Sender<Result<(), RepositoryError>>,
    /// The caller's span (request id, message sid, job id): what the writer logs about
    /// this work names them.
    span: Carried,
}

/// A handle to the writer thread; cheap to share. The thread ends when every handle is
/// dropped, after finishing the batch in hand.
#[derive(Clone)]
pub struct SqliteWriter {
    requests: mpsc::UnboundedSender<WriteRequest>,
}

impl SqliteWriter {
    /// Opens the write connection and starts the thread.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn start(path: &Path) -> anyhow::Result<Self> {
        let connection = open_connection(path)?;
        // The writer's own page cache mostly keeps pages it wrote, which a 64 MiB cache
        // held on to long after they were committed. 16 MiB changed neither webhook throughput nor the
        // near-duplicate lookup in `make bench`, and took 55 MB off the server's peak
        // resident memory (the budget the Whisper and embedding models share).
        connection.execute_batch("PRAGMA cache_size = -16384;")?;
        // Every statement the writer runs stays prepared: rusqlite keeps 16 by default and
        // the writer has about 60 (`statements/`), so a batch mixing messages, jobs, media
        // and reminders would prepare some of them again and again.
        connection.set_prepared_statement_cache_capacity(128);
        let (requests, receiver) = mpsc::unbounded_channel();
        std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || run_writer(connection, receiver))?;
        Ok(Self { requests })
    }

    /// Runs `work` in the next group transaction and returns once it is committed.
    ///
    /// # Errors
    /// The work's own error, or [`RepositoryError::Unavailable`] if the commit failed or
    /// the writer has stopped.
    pub async fn submit(&self, work: Work) -> Result<(), RepositoryError> {
        let (done, result) = oneshot::channel();
        self.requests
            .send(WriteRequest { work, done, span: Carried::current() })
            .map_err(|_| RepositoryError::Unavailable("the SQLite writer has stopped".into()))?;
        result.await.unwrap_or_else(|_| Err(RepositoryError::Unavailable("the SQLite writer stopped mid-batch".into())))
    }
}

fn run_writer(mut connection: Connection, mut receiver: mpsc::UnboundedReceiver<WriteRequest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(&mut connection, &mut batch);
    }
}

/// Runs every request of `batch` in one transaction and answers each after the commit.
fn commit_batch(connection: &mut Connection, batch: &mut Vec<WriteRequest>) {
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        let error = map_sqlite_err(error);
        for request in batch.drain(..) {
            let _ = request.done.send(Err(RepositoryError::Unavailable(error.to_string())));
        }
        return;
    }
    let started = std::time::Instant::now();
    let size = batch.len();
    let mut outcomes = Vec::with_capacity(size);
    for request in batch.drain(..) {
        let outcome = request.span.in_scope(|| {
            let outcome = run_in_savepoint(connection, request.work);
            match &outcome {
                Ok(()) => tracing::debug!(batch = size, "written in the group transaction"),
                Err(error) => tracing::debug!(batch = size, %error, "rolled back alone in the group transaction"),
            }
            outcome
        });
        outcomes.push((request.done, outcome));
    }
    let committed = connection.execute_batch("COMMIT");
    m::sqlite_batch(size, started.elapsed());
    match committed {
        Ok(()) => {
            for (done, outcome) in outcomes {
                let _ = done.send(outcome);
            }
        }
        Err(error) => {
            let error = map_sqlite_err(error);
            tracing::error!(%error, "group commit failed; every message in it is reported as not stored");
            let _ = connection.execute_batch("ROLLBACK");
            for (done, _) in outcomes {
                let _ = done.send(Err(RepositoryError::Unavailable(format!("commit failed: {error}"))));
            }
        }
    }
}

fn run_in_savepoint(connection: &mut Connection, work: Work) -> Result<(), RepositoryError> {
    connection.execute_batch("SAVEPOINT message").map_err(map_sqlite_err)?;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut transaction = SqliteTransaction::new(connection);
        run_to_completion_at_once(work(&mut transaction))
    }))
    .unwrap_or_else(|_| Err(RepositoryError::Internal("a message handler panicked".into())));
    let end = if outcome.is_ok() { "RELEASE message" } else { "ROLLBACK TO message; RELEASE message" };
    connection.execute_batch(end).map_err(map_sqlite_err)?;
    outcome
}

/// The writer thread's contract, checked: a unit of work may only touch its transaction,
/// whose methods finish without waiting, so the work must be done after ONE poll. Work
/// that awaits anything else (a timer, a channel, the network) would have stalled every
/// writer of the database on this thread, with no runtime to wake it; it is refused
/// instead (and its savepoint rolled back), and the writer goes on with the next.
fn run_to_completion_at_once<'t>(
    mut work: futures::future::BoxFuture<'t, Result<(), RepositoryError>>,
) -> Result<(), RepositoryError> {
    let mut context = Context::from_waker(futures::task::noop_waker_ref());
    match work.as_mut().poll(&mut context) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => Err(RepositoryError::Internal(
            "a unit of work awaited something besides its SQLite transaction; the writer thread refuses to wait".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ports::UnitOfWork;

    fn writer() -> (tempfile::TempDir, SqliteWriter) {
        let dir = tempfile::tempdir().unwrap();
        let writer = SqliteWriter::start(&dir.path().join("writer.db")).unwrap();
        (dir, writer)
    }

    fn work(
        f: impl for<'t> FnOnce(&'t mut dyn UnitOfWork) -> futures::future::BoxFuture<'t, Result<(), RepositoryError>>
            + Send
            + 'static,
    ) -> Work {
        Box::new(f)
    }

    #[tokio::test]
    async fn work_that_awaits_anything_but_its_transaction_is_refused_and_the_writer_goes_on() {
        let (_dir, writer) = writer();
        // A timer of the runtime's: the writer thread would sit blocked until it fires.
        let timer = tokio::time::sleep(std::time::Duration::from_millis(50));
        let waits = work(move |_| {
            Box::pin(async move {
                timer.await;
                Ok(())
            })
        });
        let refused = tokio::time::timeout(std::time::Duration::from_secs(10), writer.submit(waits))
            .await
            .expect("the writer answers instead of waiting forever");
        match refused {
            Err(RepositoryError::Internal(message)) => assert!(message.contains("awaited"), "{message}"),
            other => panic!("expected the work to be refused, got {other:?}"),
        }
        // A channel that is never sent to.
        let (_keep, never) = tokio::sync::oneshot::channel::<()>();
        let waits = work(move |_| {
            Box::pin(async move {
                let _ = never.await;
                Ok(())
            })
        });
        let refused = tokio::time::timeout(std::time::Duration::from_secs(10), writer.submit(waits)).await;
        assert!(matches!(refused, Ok(Err(RepositoryError::Internal(_)))), "{refused:?}");
        // Work that only touches its transaction still commits.
        let fine = work(|_| Box::pin(async { Ok(()) }));
        writer.submit(fine).await.expect("the writer is still running");
    }
}
