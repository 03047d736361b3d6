//! Mem0 as a memory layer, through an outbox: saving, deleting or erasing queues the
//! matching Mem0 job in the same transaction, and the job queue carries it out with
//! retries and back-off. Mem0 being slow, down or rate-limiting delays its copy of a
//! memory; it never loses or delays a user's message.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::jobs::{JobError, JobHandler};
use crate::domain::model::{Job, Mem0State, MemoryId, UserId};
use crate::domain::ports::{
    transact, Clock, ExternalIndex, IndexTransaction, Indexing, JobPriority, JobSettlement, JobTransaction,
    Mem0IndexChange, MemoryStoreError, MemoryToIndex, NewJob, ReadModel, Repository, RepositoryError,
};

/// Adds one memory to Mem0.
pub const MEM0_INDEX_JOB_KIND: &str = "mem0.index";
/// Deletes a deleted memory's copies from Mem0.
pub const MEM0_DELETE_JOB_KIND: &str = "mem0.delete";
/// Deletes everything Mem0 holds about an erased user.
pub const MEM0_ERASE_JOB_KIND: &str = "mem0.erase";
/// Mem0 may be down for a while: with back-off doubling from 2 s and capped at ten
/// minutes, 24 attempts keep trying for over two and a half hours before a memory's
/// copy is marked failed.
const MEM0_MAX_ATTEMPTS: i32 = 24;

/// What the index job was queued with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IndexJob {
    memory_id: i64,
    /// So that erasing the user drops the job with their other queued work.
    user_id: i64,
}

/// What the delete job was queued with: everything needed, read in the deleting
/// transaction, because the memory's bookkeeping goes with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DeleteJob {
    mem0_ids: Vec<String>,
    /// An add still being inferred when the memory was deleted: its results go too.
    event_id: Option<String>,
}

/// What the erase job was queued with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EraseJob {
    /// The erased user's WhatsApp id, Mem0's `user_id`.
    owner: String,
}

fn mem0_job(kind: &str, payload: serde_json::Value, now: DateTime<Utc>) -> NewJob {
    NewJob {
        kind: kind.to_string(),
        payload,
        max_attempts: MEM0_MAX_ATTEMPTS,
        due_at: now,
        priority: JobPriority::Background,
    }
}

/// Queues indexing of a memory just saved (or changed) in `tx`, and marks it pending.
///
/// # Errors
/// When the database fails; the caller's whole transaction rolls back.
pub(super) async fn queue_index(
    tx: &mut (impl IndexTransaction + JobTransaction + ?Sized),
    memory: MemoryId,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    tx.update_mem0_index(memory, Mem0IndexChange::Pending { user }, now).await?;
    let payload = IndexJob { memory_id: memory.0, user_id: user.0 };
    tx.enqueue_job(mem0_job(MEM0_INDEX_JOB_KIND, serde_json::to_value(payload).unwrap_or_default(), now)).await
}

/// Queues deletion of the Mem0 copies of a memory deleted in `tx` (call it in the same
/// transaction, before or after the delete), and drops its bookkeeping.
///
/// # Errors
/// When the database fails.
pub(super) async fn queue_forget(
    tx: &mut (impl IndexTransaction + JobTransaction + ?Sized),
    memory: MemoryId,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    let copies = tx.mem0_copies(memory).await?;
    tx.update_mem0_index(memory, Mem0IndexChange::Forgotten, now).await?;
    queue_delete(tx, copies.ids, copies.event_id, now).await
}

/// Queues Mem0's delete-all for a user erased in `tx`. Call it after the erase: the erase
/// drops the user's queued jobs, and this one must survive it.
///
/// # Errors
/// When the database fails.
pub(super) async fn queue_erase(
    tx: &mut (impl JobTransaction + ?Sized),
    wa_id: &str,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    let payload = EraseJob { owner: wa_id.to_string() };
    tx.enqueue_job(mem0_job(MEM0_ERASE_JOB_KIND, serde_json::to_value(payload).unwrap_or_default(), now)).await
}

/// Queues the deletion of these Mem0 memories (and an event's results), if any.
async fn queue_delete(
    tx: &mut (impl JobTransaction + ?Sized),
    mem0_ids: Vec<String>,
    event_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    if mem0_ids.is_empty() && event_id.is_none() {
        return Ok(());
    }
    let payload = DeleteJob { mem0_ids, event_id };
    tx.enqueue_job(mem0_job(MEM0_DELETE_JOB_KIND, serde_json::to_value(payload).unwrap_or_default(), now)).await
}

/// A store failure as a job failure: retryable ones come back (after Mem0's
/// `Retry-After` for a 429), the others dead-letter the job.
fn job_error(error: MemoryStoreError) -> JobError {
    if error.is_retryable() {
        JobError::Retryable { retry_after: error.retry_after(), message: error.to_string() }
    } else {
        JobError::Permanent(error.to_string())
    }
}

fn payload<T: for<'de> Deserialize<'de>>(job: &Job) -> Result<T, JobError> {
    serde_json::from_value(job.payload.clone())
        .map_err(|e| JobError::Permanent(format!("malformed {} job: {e}", job.kind)))
}

/// Adds memories to Mem0.
pub struct Mem0IndexHandler {
    repository: Arc<dyn Repository>,
    reads: Arc<dyn ReadModel>,
    store: Arc<dyn ExternalIndex>,
    clock: Arc<dyn Clock>,
}

impl Mem0IndexHandler {
    /// Wires the handler to its ports; `store` is Mem0.
    pub fn new(
        repository: Arc<dyn Repository>,
        reads: Arc<dyn ReadModel>,
        store: Arc<dyn ExternalIndex>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { repository, reads, store, clock }
    }

    async fn change(&self, memory: MemoryId, change: Mem0IndexChange) -> Result<bool, RepositoryError> {
        let now = self.clock.now();
        transact(&*self.repository, move |tx| Box::pin(tx.update_mem0_index(memory, change, now))).await
    }
}

#[async_trait]
impl JobHandler for Mem0IndexHandler {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let item: IndexJob = payload(job)?;
        let memory = MemoryId(item.memory_id);
        let Some(record) = self.reads.find_memory(memory).await? else {
            // Deleted before it was indexed: nothing to copy.
            return Ok(());
        };
        if record.mem0.as_ref().is_some_and(|status| status.state == Mem0State::Indexed) {
            // A second job for the same text (its text was changed while the first was
            // queued) finds the first one's copy: adding again would duplicate it.
            return Ok(());
        }
        // An earlier attempt's add may still be inferring: wait for it rather than add twice.
        let started = record.mem0.as_ref().and_then(|status| status.event_id.clone());
        let outcome = match started {
            Some(event) => match self.store.indexing_status(&event).await {
                Err(MemoryStoreError::NotFound(message)) => Ok(Indexing::Failed(message)),
                other => other,
            },
            None => {
                let to_index = MemoryToIndex {
                    memory,
                    owner: record.owner_wa_id.clone(),
                    kind: record.memory.kind,
                    text: record.memory.text.clone(),
                    created_at: record.memory.created_at,
                };
                match self.store.index(&to_index).await.map_err(job_error)? {
                    Indexing::Pending(event) => {
                        self.change(memory, Mem0IndexChange::EventStarted(event.clone())).await?;
                        self.store.indexing_status(&event).await
                    }
                    done => Ok(done),
                }
            }
        }
        .map_err(job_error)?;
        let ids = match outcome {
            Indexing::Indexed(ids) => ids,
            Indexing::Failed(reason) => {
                // The next attempt adds the memory again.
                self.change(memory, Mem0IndexChange::EventFailed).await?;
                return Err(JobError::Retryable { message: reason, retry_after: None });
            }
            Indexing::Pending(_) => {
                return Err(JobError::Retryable {
                    message: "Mem0 is still inferring the memory".into(),
                    retry_after: None,
                })
            }
        };
        let (job_id, attempt, now) = (job.id, job.attempts, self.clock.now());
        let indexed_text = record.memory.text;
        transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let current = tx.memory_text(memory).await?;
                // Copies already recorded are of the text as it is now: a change of text
                // forgets the old ones.
                let recorded = current.is_some() && !tx.mem0_copies(memory).await?.ids.is_empty();
                match current {
                    Some(text) if text != indexed_text => {
                        // Its text changed while Mem0 was adding the old one (a voice note's
                        // words replacing its description, an edit): the change queued its
                        // own add, so this copy goes and the bookkeeping waits for that one.
                        queue_delete(tx, ids, None, now).await?;
                    }
                    Some(_) if recorded => {
                        // Another job for the same text (queued by a change, run at the same
                        // time as this one) recorded its copy first: this one is a duplicate.
                        queue_delete(tx, ids, None, now).await?;
                    }
                    _ => {
                        let present = tx.update_mem0_index(memory, Mem0IndexChange::Indexed(ids.clone()), now).await?;
                        if !present {
                            // Deleted (or its user erased) while Mem0 was adding it: undo the add.
                            queue_delete(tx, ids, None, now).await?;
                        }
                    }
                }
                tx.settle_job(job_id, attempt, JobSettlement::Done, now).await
            })
        })
        .await?;
        Ok(())
    }

    async fn dead_lettered(&self, job: &Job, error: &str) {
        let Ok(item) = payload::<IndexJob>(job) else {
            return;
        };
        if let Err(failure) = self.change(MemoryId(item.memory_id), Mem0IndexChange::Failed(error.to_string())).await {
            tracing::error!(error = %failure, "could not record a memory's failed Mem0 indexing");
        }
    }
}

/// Deletes Mem0 memories: those of a deleted memory, or all of an erased user's.
pub struct Mem0DeleteHandler {
    store: Arc<dyn ExternalIndex>,
}

impl Mem0DeleteHandler {
    /// Deletes through `store` (Mem0).
    pub fn new(store: Arc<dyn ExternalIndex>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl JobHandler for Mem0DeleteHandler {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        if job.kind == MEM0_ERASE_JOB_KIND {
            let item: EraseJob = payload(job)?;
            return self.store.delete_all(&item.owner).await.map_err(job_error);
        }
        let item: DeleteJob = payload(job)?;
        let mut ids = item.mem0_ids;
        if let Some(event) = &item.event_id {
            match self.store.indexing_status(event).await {
                Ok(Indexing::Indexed(more)) => ids.extend(more),
                Ok(Indexing::Pending(_)) => {
                    return Err(JobError::Retryable {
                        message: "Mem0 is still inferring a deleted memory; its results are deleted once known".into(),
                        retry_after: None,
                    })
                }
                // The add produced nothing to delete.
                Ok(Indexing::Failed(_)) | Err(MemoryStoreError::NotFound(_)) => {}
                Err(error) => return Err(job_error(error)),
            }
        }
        // Deleting is idempotent (a memory already gone is fine), so a retry after a
        // partial run simply goes over the list again.
        for id in ids {
            self.store.delete(&id).await.map_err(job_error)?;
        }
        Ok(())
    }

    async fn dead_lettered(&self, job: &Job, error: &str) {
        // Data a user asked us to delete is still in Mem0: an operator must act.
        tracing::error!(job = job.id.0, kind = %job.kind, %error, "Mem0 deletion given up; the data remains in Mem0");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Mem0Status, Memory, MemoryKind, MemoryRecord};
    use crate::domain::ports::{MockClock, MockExternalIndex, MockReadModel, MockRepository, MockUnitOfWork};
    use chrono::TimeZone;
    use mockall::predicate::eq;
    use std::sync::Mutex;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
    }

    fn job(kind: &str, payload: serde_json::Value, attempts: i32) -> Job {
        Job {
            id: crate::domain::model::JobId(5),
            kind: kind.into(),
            payload,
            attempts,
            max_attempts: 24,
            created_at: now(),
        }
    }

    fn record(event_id: Option<&str>) -> MemoryRecord {
        MemoryRecord {
            memory: Memory {
                id: MemoryId(3),
                user_id: UserId(7),
                kind: MemoryKind::Text,
                text: "buy milk".into(),
                created_at: now(),
            },
            owner_wa_id: "15551234567".into(),
            labels: vec![],
            interaction_id: None,
            media_asset_id: None,
            extracted_text: None,
            mem0: Some(Mem0Status { state: Mem0State::Pending, error: None, event_id: event_id.map(str::to_string) }),
        }
    }

    /// A repository that runs every transaction on the mocked unit of work `tx`.
    fn repository(tx: MockUnitOfWork) -> MockRepository {
        let tx = Mutex::new(tx);
        let mut repository = MockRepository::new();
        repository.expect_run_in_transaction().returning(move |work| {
            let mut tx = tx.lock().unwrap();
            futures::executor::block_on(work(&mut *tx))
        });
        repository
    }

    fn handler(tx: MockUnitOfWork, reads: MockReadModel, store: MockExternalIndex) -> Mem0IndexHandler {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        Mem0IndexHandler::new(Arc::new(repository(tx)), Arc::new(reads), Arc::new(store), Arc::new(clock))
    }

    fn index_job() -> Job {
        job(MEM0_INDEX_JOB_KIND, serde_json::json!({"memory_id": 3, "user_id": 7}), 1)
    }

    #[tokio::test]
    async fn saving_with_mem0_marks_the_memory_pending_and_queues_its_indexing_and_without_does_nothing() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_update_mem0_index()
            .with(eq(MemoryId(3)), eq(Mem0IndexChange::Pending { user: UserId(7) }), eq(now()))
            .times(1)
            .returning(|_, _, _| Ok(true));
        tx.expect_enqueue_job()
            .withf(|job| {
                job.kind == MEM0_INDEX_JOB_KIND
                    && job.priority == JobPriority::Background
                    && job.payload == serde_json::json!({"memory_id": 3, "user_id": 7})
            })
            .times(1)
            .returning(|_| Ok(()));
        crate::app::outbox::Outbox::MEM0.memory_saved(&mut tx, MemoryId(3), UserId(7), now()).await.unwrap();
        // No expectations: any call would panic.
        crate::app::outbox::Outbox::NONE
            .memory_saved(&mut MockUnitOfWork::new(), MemoryId(3), UserId(7), now())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn deleting_queues_the_deletion_of_every_copy_and_of_an_unfinished_add() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_mem0_copies().returning(|_| {
            Ok(crate::domain::ports::Mem0Copies { ids: vec!["a".into(), "b".into()], event_id: Some("ev".into()) })
        });
        tx.expect_update_mem0_index()
            .with(eq(MemoryId(3)), eq(Mem0IndexChange::Forgotten), eq(now()))
            .times(1)
            .returning(|_, _, _| Ok(false));
        tx.expect_enqueue_job()
            .withf(|job| {
                job.kind == MEM0_DELETE_JOB_KIND
                    && job.payload == serde_json::json!({"mem0_ids": ["a", "b"], "event_id": "ev"})
            })
            .times(1)
            .returning(|_| Ok(()));
        crate::app::outbox::Outbox::MEM0.memory_deleted(&mut tx, MemoryId(3), now()).await.unwrap();
    }

    #[tokio::test]
    async fn an_inferred_add_records_its_event_then_its_memories_and_settles_with_them() {
        let mut reads = MockReadModel::new();
        reads.expect_find_memory().returning(|_| Ok(Some(record(None))));
        let mut store = MockExternalIndex::new();
        store
            .expect_index()
            .withf(|m| m.memory == MemoryId(3) && m.owner == "15551234567" && m.text == "buy milk")
            .times(1)
            .returning(|_| Ok(Indexing::Pending("ev-1".into())));
        store
            .expect_indexing_status()
            .with(eq("ev-1"))
            .times(1)
            .returning(|_| Ok(Indexing::Indexed(vec!["m-1".into()])));
        let mut tx = MockUnitOfWork::new();
        tx.expect_memory_text().returning(|_| Ok(Some("buy milk".into())));
        tx.expect_mem0_copies().returning(|_| Ok(crate::domain::ports::Mem0Copies { ids: vec![], event_id: None }));
        let mut order = mockall::Sequence::new();
        tx.expect_update_mem0_index()
            .with(eq(MemoryId(3)), eq(Mem0IndexChange::EventStarted("ev-1".into())), eq(now()))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_, _, _| Ok(true));
        tx.expect_update_mem0_index()
            .with(eq(MemoryId(3)), eq(Mem0IndexChange::Indexed(vec!["m-1".into()])), eq(now()))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_, _, _| Ok(true));
        tx.expect_settle_job()
            .withf(|_, attempt, settlement, _| *attempt == 1 && *settlement == JobSettlement::Done)
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        tx.expect_enqueue_job().never();
        handler(tx, reads, store).run(&index_job()).await.unwrap();
    }

    #[tokio::test]
    async fn a_retry_polls_the_earlier_event_instead_of_adding_the_memory_twice() {
        let mut reads = MockReadModel::new();
        reads.expect_find_memory().returning(|_| Ok(Some(record(Some("ev-1")))));
        let mut store = MockExternalIndex::new();
        store.expect_index().never();
        store.expect_indexing_status().with(eq("ev-1")).returning(|_| Ok(Indexing::Pending("ev-1".into())));
        let error = handler(MockUnitOfWork::new(), reads, store).run(&index_job()).await.unwrap_err();
        assert!(matches!(error, JobError::Retryable { .. }));
    }

    /// Runs an index job whose add (of "buy milk", as `m-new`) finds, in its final
    /// transaction, the memory's text now `text` and `recorded` copies already linked:
    /// the add must be undone (a delete of `m-new` queued), nothing recorded.
    async fn an_add_is_undone_when_it_finishes_to_find(text: &'static str, recorded: &'static [&'static str]) {
        let mut reads = MockReadModel::new();
        reads.expect_find_memory().returning(|_| Ok(Some(record(None))));
        let mut store = MockExternalIndex::new();
        store.expect_index().returning(|_| Ok(Indexing::Indexed(vec!["m-new".into()])));
        let mut tx = MockUnitOfWork::new();
        tx.expect_memory_text().returning(move |_| Ok(Some(text.into())));
        tx.expect_mem0_copies().returning(move |_| {
            Ok(crate::domain::ports::Mem0Copies {
                ids: recorded.iter().map(|id| id.to_string()).collect(),
                event_id: None,
            })
        });
        tx.expect_update_mem0_index().never();
        tx.expect_enqueue_job()
            .withf(|job| job.kind == MEM0_DELETE_JOB_KIND && job.payload["mem0_ids"] == serde_json::json!(["m-new"]))
            .times(1)
            .returning(|_| Ok(()));
        tx.expect_settle_job().times(1).returning(|_, _, _, _| Ok(()));
        handler(tx, reads, store).run(&index_job()).await.unwrap();
    }

    #[tokio::test]
    async fn an_add_of_a_text_changed_meanwhile_is_undone_and_leaves_the_bookkeeping_to_the_new_one() {
        an_add_is_undone_when_it_finishes_to_find("buy oat milk", &[]).await;
    }

    #[tokio::test]
    async fn of_two_adds_of_the_same_text_run_at_once_the_second_to_finish_is_undone() {
        an_add_is_undone_when_it_finishes_to_find("buy milk", &["m-first"]).await;
    }

    #[tokio::test]
    async fn an_add_that_finishes_after_the_memory_was_deleted_queues_its_own_undoing() {
        let mut reads = MockReadModel::new();
        reads.expect_find_memory().returning(|_| Ok(Some(record(None))));
        let mut store = MockExternalIndex::new();
        store.expect_index().returning(|_| Ok(Indexing::Indexed(vec!["m-1".into()])));
        let mut tx = MockUnitOfWork::new();
        tx.expect_memory_text().returning(|_| Ok(None));
        tx.expect_update_mem0_index().returning(|_, _, _| Ok(false));
        tx.expect_enqueue_job()
            .withf(|job| job.kind == MEM0_DELETE_JOB_KIND && job.payload["mem0_ids"] == serde_json::json!(["m-1"]))
            .times(1)
            .returning(|_| Ok(()));
        tx.expect_settle_job().times(1).returning(|_, _, _, _| Ok(()));
        handler(tx, reads, store).run(&index_job()).await.unwrap();
    }

    #[tokio::test]
    async fn rate_limits_retry_after_mem0s_delay_and_refusals_are_final() {
        let run = |error: MemoryStoreError| async move {
            let mut reads = MockReadModel::new();
            reads.expect_find_memory().returning(|_| Ok(Some(record(None))));
            let mut store = MockExternalIndex::new();
            store.expect_index().returning(move |_| Err(error.clone()));
            handler(MockUnitOfWork::new(), reads, store).run(&index_job()).await.unwrap_err()
        };
        let limited = run(MemoryStoreError::RateLimited {
            message: "429".into(),
            retry_after: Some(std::time::Duration::from_secs(3)),
        })
        .await;
        assert!(
            matches!(limited, JobError::Retryable { retry_after: Some(d), .. } if d == std::time::Duration::from_secs(3))
        );
        assert!(matches!(run(MemoryStoreError::Unavailable("503".into())).await, JobError::Retryable { .. }));
        assert!(matches!(run(MemoryStoreError::Unauthorized("401".into())).await, JobError::Permanent(_)));
        assert!(matches!(run(MemoryStoreError::Rejected("400".into())).await, JobError::Permanent(_)));
    }

    #[tokio::test]
    async fn a_job_for_a_memory_mem0_already_holds_adds_nothing() {
        let mut reads = MockReadModel::new();
        reads.expect_find_memory().returning(|_| {
            let mut indexed = record(None);
            indexed.mem0 = Some(Mem0Status { state: Mem0State::Indexed, error: None, event_id: None });
            Ok(Some(indexed))
        });
        let mut store = MockExternalIndex::new();
        store.expect_index().never();
        handler(MockUnitOfWork::new(), reads, store).run(&index_job()).await.unwrap();
    }

    #[tokio::test]
    async fn a_dead_letter_marks_the_memory_failed_with_the_error() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_update_mem0_index()
            .with(eq(MemoryId(3)), eq(Mem0IndexChange::Failed("Mem0 refused".into())), eq(now()))
            .times(1)
            .returning(|_, _, _| Ok(true));
        handler(tx, MockReadModel::new(), MockExternalIndex::new()).dead_lettered(&index_job(), "Mem0 refused").await;
    }

    #[tokio::test]
    async fn deleting_resolves_an_unfinished_add_and_deletes_everything_and_erasing_deletes_all() {
        let mut store = MockExternalIndex::new();
        store.expect_indexing_status().with(eq("ev")).returning(|_| Ok(Indexing::Indexed(vec!["c".into()])));
        let deleted = Arc::new(Mutex::new(Vec::new()));
        let seen = deleted.clone();
        store.expect_delete().returning(move |id| {
            seen.lock().unwrap().push(id.to_string());
            Ok(())
        });
        store.expect_delete_all().with(eq("15551234567")).times(1).returning(|_| Ok(()));
        let handler = Mem0DeleteHandler::new(Arc::new(store));
        let delete = job(MEM0_DELETE_JOB_KIND, serde_json::json!({"mem0_ids": ["a", "b"], "event_id": "ev"}), 1);
        handler.run(&delete).await.unwrap();
        assert_eq!(*deleted.lock().unwrap(), vec!["a", "b", "c"]);
        handler.run(&job(MEM0_ERASE_JOB_KIND, serde_json::json!({"owner": "15551234567"}), 1)).await.unwrap();
    }
}
