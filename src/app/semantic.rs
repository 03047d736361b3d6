//! Local semantic search: every memory's text is embedded off the request path by an
//! `embed` job queued with the memory, and a search compares the query's embedding with
//! the user's vectors, held in memory and refreshed from the database by what is new.
//!
//! Nothing here waits on the embedder when saving: a memory whose embedding is pending is
//! found by full text alone until its job has run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::jobs::{JobError, JobHandler};
use crate::domain::embedding::{Neighbour, QuantizedEmbedding, VectorSet};
use crate::domain::model::{Job, MemoryId, UserId};
use crate::domain::ports::{
    transact, EmbedError, EmbedPurpose, JobPriority, NewJob, ReadModel, Repository, RepositoryError, TextEmbedder,
    UnitOfWork,
};

/// Embeds one memory's current text.
pub const EMBED_JOB_KIND: &str = "memory.embed";
/// Only a database outage makes an embed job fail for a while; a dozen attempts with
/// back-off ride out one of several minutes.
const EMBED_MAX_ATTEMPTS: i32 = 12;
/// Memories `reindex` reads and queues per transaction.
const REINDEX_PAGE: u32 = 500;

/// What an embed job was queued with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EmbedJob {
    memory_id: i64,
    /// So that erasing the user drops the job with their other queued work.
    user_id: i64,
}

/// Queues the embedding of a memory saved or changed in `tx`.
///
/// # Errors
/// When the database fails; the caller's transaction rolls back.
pub async fn queue_embedding(
    tx: &mut dyn UnitOfWork,
    memory: MemoryId,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    let payload = EmbedJob { memory_id: memory.0, user_id: user.0 };
    tx.enqueue_job(NewJob {
        kind: EMBED_JOB_KIND.to_string(),
        payload: serde_json::to_value(payload).unwrap_or_default(),
        max_attempts: EMBED_MAX_ATTEMPTS,
        due_at: now,
        priority: JobPriority::Idle,
    })
    .await
}

/// Queues an embed job for every memory without an embedding by `model` (memories saved
/// before semantic search was on, or under another model), a page per transaction.
/// Returns how many were queued. Running it twice queues the pending ones twice; the
/// second job of a memory finds its work done and costs one embedding.
///
/// # Errors
/// When the database fails; the pages already queued stay queued.
pub async fn reindex(
    repository: &dyn Repository,
    reads: &dyn ReadModel,
    model: &str,
    now: DateTime<Utc>,
) -> Result<usize, RepositoryError> {
    let (mut after, mut queued) = (MemoryId(0), 0);
    loop {
        let page = reads.memories_without_embedding(model, after, REINDEX_PAGE).await?;
        let Some(&(last, _)) = page.last() else {
            return Ok(queued);
        };
        queued += page.len();
        after = last;
        transact(repository, move |tx| {
            Box::pin(async move {
                for (memory, user) in page {
                    queue_embedding(tx, memory, user, now).await?;
                }
                Ok(())
            })
        })
        .await?;
    }
}

/// Runs embed jobs: embeds the memory's text as it is now and stores the vector, unless
/// the text changed meanwhile (its own job is queued then) or the memory is gone.
pub struct EmbedJobHandler {
    repository: Arc<dyn Repository>,
    reads: Arc<dyn ReadModel>,
    embedder: Arc<dyn TextEmbedder>,
}

impl EmbedJobHandler {
    /// Wires the handler to its ports.
    pub fn new(repository: Arc<dyn Repository>, reads: Arc<dyn ReadModel>, embedder: Arc<dyn TextEmbedder>) -> Self {
        Self { repository, reads, embedder }
    }
}

fn embed_error(error: EmbedError) -> JobError {
    // Neither a missing model nor a failing one gets better by itself; `reindex` queues
    // the memory again once an operator has fixed the model.
    JobError::Permanent(error.to_string())
}

#[async_trait]
impl JobHandler for EmbedJobHandler {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let item: EmbedJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("malformed embed job: {e}")))?;
        let Some(record) = self.reads.find_memory(MemoryId(item.memory_id)).await? else {
            return Ok(()); // deleted before it was embedded
        };
        let text = record.memory.text;
        if text.trim().is_empty() {
            return Ok(()); // a photo without a caption: nothing to understand
        }
        let vector = self.embedder.embed(vec![text.clone()], EmbedPurpose::Index).await.map_err(embed_error)?;
        let vector =
            vector.into_iter().next().ok_or_else(|| JobError::Permanent("the embedder returned nothing".into()))?;
        let (memory, model, vector) =
            (record.memory.id, self.embedder.model_id(), QuantizedEmbedding::quantize(&vector));
        let stored = transact(&*self.repository, move |tx| {
            Box::pin(async move { tx.save_embedding(memory, &text, &model, &vector).await })
        })
        .await?;
        if !stored {
            tracing::debug!(
                memory = memory.0,
                "the memory changed or went while it was embedded; its vector was dropped"
            );
        }
        Ok(())
    }

    async fn dead_lettered(&self, job: &Job, error: &str) {
        // Nobody is waiting on an embedding: the memory is still found by its words.
        tracing::warn!(job = job.id.0, %error, "a memory was left without an embedding; `whatsapp-memory reindex` queues it again");
    }
}

/// How vector search picks its hits.
#[derive(Debug, Clone, Copy)]
pub struct SemanticSettings {
    /// Below this cosine similarity a memory is not offered as a match: every query has
    /// nearest neighbours, even nonsense, and these would only crowd out real matches.
    pub floor: f32,
    /// Of the hits above the floor, only those this close to the best one count: a clear
    /// best match should not bring a tail of loosely related notes with it.
    pub spread: f32,
    /// Most bytes of vectors held in memory across users; the least recently searched
    /// users' vectors are dropped beyond it (and reloaded when they search again).
    pub cache_bytes: usize,
}

impl Default for SemanticSettings {
    fn default() -> Self {
        Self { floor: 0.25, spread: 0.12, cache_bytes: 512 * 1024 * 1024 }
    }
}

/// Why a vector search gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum SemanticError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Database(#[from] RepositoryError),
    #[error("the vector search stopped: {0}")]
    Stopped(String),
}

/// One user's vectors and the sequence number they are loaded up to.
struct UserVectors {
    seq: i64,
    set: VectorSet,
}

/// The users whose vectors are in memory, and when each last searched.
#[derive(Default)]
struct Cache {
    users: HashMap<UserId, (Arc<RwLock<UserVectors>>, u64)>,
    clock: u64,
}

/// Finds a user's memories by meaning: brute-force cosine over their vectors, exact, held
/// in memory (one scan of 100,000 int8 vectors is a few milliseconds).
pub struct SemanticIndex {
    embedder: Arc<dyn TextEmbedder>,
    reads: Arc<dyn ReadModel>,
    settings: SemanticSettings,
    cache: Mutex<Cache>,
}

impl SemanticIndex {
    /// An index over the vectors `embedder` made, read through `reads`.
    pub fn new(embedder: Arc<dyn TextEmbedder>, reads: Arc<dyn ReadModel>, settings: SemanticSettings) -> Self {
        Self { embedder, reads, settings, cache: Mutex::new(Cache::default()) }
    }

    /// The user's memories closest in meaning to `query`, most similar first, at most `k`.
    ///
    /// # Errors
    /// When the query cannot be embedded or the vectors cannot be read.
    pub async fn nearest(&self, user: UserId, query: &str, k: usize) -> Result<Vec<Neighbour>, SemanticError> {
        let model = self.embedder.model_id();
        let (embedded, vectors) =
            tokio::join!(self.embedder.embed(vec![query.to_string()], EmbedPurpose::Query), self.vectors(user, &model));
        let query = embedded?.into_iter().next().ok_or_else(|| EmbedError::Failed("no vector for the query".into()))?;
        let (query, vectors, settings) = (QuantizedEmbedding::quantize(&query), vectors?, self.settings);
        let found = tokio::task::spawn_blocking(move || {
            let vectors = vectors.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            vectors.set.nearest(&query, k, settings.floor)
        })
        .await
        .map_err(|e| SemanticError::Stopped(e.to_string()))?;
        let best = found.first().map_or(0.0, |n| n.similarity);
        Ok(found.into_iter().filter(|n| n.similarity >= best - settings.spread).collect())
    }

    /// The user's vectors, brought up to date with what was stored since they were loaded.
    async fn vectors(&self, user: UserId, model: &str) -> Result<Arc<RwLock<UserVectors>>, SemanticError> {
        let latest = self.reads.latest_embedding_seq(user, model).await?;
        let entry = self.entry(user);
        let loaded = entry.read().unwrap_or_else(std::sync::PoisonError::into_inner).seq;
        if loaded < latest {
            let fresh = self.reads.embeddings_since(user, model, loaded).await?;
            let mut vectors = entry.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for stored in fresh {
                // Another search may have applied some already: upserts repeat harmlessly.
                vectors.set.upsert(stored.memory, &stored.vector);
                vectors.seq = vectors.seq.max(stored.seq);
            }
        }
        self.evict_beyond_budget(user);
        Ok(entry)
    }

    /// The user's cache entry (empty at first), marked as just used.
    fn entry(&self, user: UserId) -> Arc<RwLock<UserVectors>> {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.clock += 1;
        let (now, dimension) = (cache.clock, self.embedder.dimension());
        let (entry, used) = cache
            .users
            .entry(user)
            .or_insert_with(|| (Arc::new(RwLock::new(UserVectors { seq: 0, set: VectorSet::new(dimension) })), 0));
        *used = now;
        entry.clone()
    }

    /// Drops the least recently searched users' vectors (never `keep`'s) while the cache
    /// holds more than its budget.
    fn evict_beyond_budget(&self, keep: UserId) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let size = |entry: &Arc<RwLock<UserVectors>>| entry.read().map_or(0, |v| v.set.bytes());
        let mut total: usize = cache.users.values().map(|(entry, _)| size(entry)).sum();
        while total > self.settings.cache_bytes {
            let oldest = cache.users.iter().filter(|(user, _)| **user != keep).min_by_key(|(_, (_, used))| *used);
            let Some((&user, (entry, _))) = oldest else {
                return;
            };
            total -= size(entry);
            cache.users.remove(&user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Memory, MemoryKind, MemoryRecord};
    use crate::domain::ports::{MockReadModel, MockRepository, MockTextEmbedder, MockUnitOfWork, StoredEmbedding};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap()
    }

    fn record(id: i64, text: &str) -> MemoryRecord {
        MemoryRecord {
            memory: Memory {
                id: MemoryId(id),
                user_id: UserId(7),
                kind: MemoryKind::Text,
                text: text.into(),
                created_at: now(),
            },
            owner_wa_id: "15551234567".into(),
            labels: vec![],
            interaction_id: None,
            media_asset_id: None,
            mem0: None,
        }
    }

    fn embedder(vector: Vec<f32>) -> MockTextEmbedder {
        let mut embedder = MockTextEmbedder::new();
        embedder.expect_model_id().return_const("test-model".to_string());
        embedder.expect_dimension().return_const(2usize);
        embedder.expect_embed().returning(move |texts, _| Ok(texts.iter().map(|_| vector.clone()).collect()));
        embedder
    }

    fn job(memory: i64) -> Job {
        Job {
            id: crate::domain::model::JobId(1),
            kind: EMBED_JOB_KIND.into(),
            payload: serde_json::json!({"memory_id": memory, "user_id": 7}),
            attempts: 1,
            max_attempts: EMBED_MAX_ATTEMPTS,
            created_at: now(),
        }
    }

    fn repository(tx: MockUnitOfWork) -> MockRepository {
        let mut repository = MockRepository::new();
        let tx = Mutex::new(Some(tx));
        repository.expect_run_in_transaction().returning(move |work| {
            let mut tx = tx.lock().unwrap().take().expect("one transaction");
            futures::executor::block_on(work(&mut tx))
        });
        repository
    }

    #[tokio::test]
    async fn the_job_stores_the_vector_of_the_text_it_read_under_the_models_name() {
        let mut reads = MockReadModel::new();
        reads.expect_find_memory().returning(|_| Ok(Some(record(5, "buy milk"))));
        let mut tx = MockUnitOfWork::new();
        tx.expect_save_embedding()
            .withf(|memory, text, model, vector| {
                *memory == MemoryId(5) && text == "buy milk" && model == "test-model" && vector.values == vec![0, 127]
            })
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        let handler =
            EmbedJobHandler::new(Arc::new(repository(tx)), Arc::new(reads), Arc::new(embedder(vec![0.0, 1.0])));
        handler.run(&job(5)).await.unwrap();
    }

    #[tokio::test]
    async fn a_deleted_memory_or_an_empty_caption_is_not_embedded() {
        let mut reads = MockReadModel::new();
        reads.expect_find_memory().returning(|id| Ok((id.0 == 6).then(|| record(6, "  "))));
        let mut embedder = MockTextEmbedder::new();
        embedder.expect_embed().never();
        let handler = EmbedJobHandler::new(Arc::new(MockRepository::new()), Arc::new(reads), Arc::new(embedder));
        handler.run(&job(5)).await.unwrap();
        handler.run(&job(6)).await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_model_fails_the_job_for_good() {
        let mut reads = MockReadModel::new();
        reads.expect_find_memory().returning(|_| Ok(Some(record(5, "buy milk"))));
        let mut embedder = MockTextEmbedder::new();
        embedder.expect_embed().returning(|_, _| Err(EmbedError::NotAvailable("no model".into())));
        let handler = EmbedJobHandler::new(Arc::new(MockRepository::new()), Arc::new(reads), Arc::new(embedder));
        assert!(matches!(handler.run(&job(5)).await, Err(JobError::Permanent(_))));
    }

    fn stored(memory: i64, seq: i64, vector: [f32; 2]) -> StoredEmbedding {
        StoredEmbedding { memory: MemoryId(memory), seq, vector: QuantizedEmbedding::quantize(&vector) }
    }

    #[tokio::test]
    async fn search_loads_only_what_is_new_and_keeps_close_matches_above_the_floor() {
        let mut reads = MockReadModel::new();
        let latest = Arc::new(Mutex::new(2i64));
        let seen = latest.clone();
        reads.expect_latest_embedding_seq().returning(move |_, _| Ok(*seen.lock().unwrap()));
        reads
            .expect_embeddings_since()
            .withf(|_, model, after| model == "test-model" && *after == 0)
            .times(1)
            .returning(|_, _, _| Ok(vec![stored(1, 1, [1.0, 0.0]), stored(2, 2, [0.0, 1.0])]));
        reads
            .expect_embeddings_since()
            .withf(|_, _, after| *after == 2)
            .times(1)
            .returning(|_, _, _| Ok(vec![stored(3, 3, [0.96, 0.28])]));
        let settings = SemanticSettings { floor: 0.5, spread: 0.5, cache_bytes: 1 << 20 };
        let index = SemanticIndex::new(Arc::new(embedder(vec![1.0, 0.0])), Arc::new(reads), settings);
        let ids = |found: Vec<Neighbour>| found.iter().map(|n| n.memory.0).collect::<Vec<_>>();
        assert_eq!(ids(index.nearest(UserId(7), "q", 10).await.unwrap()), vec![1], "memory 2 is below the floor");
        assert_eq!(ids(index.nearest(UserId(7), "q", 10).await.unwrap()), vec![1], "nothing new: no reload");
        *latest.lock().unwrap() = 3;
        assert_eq!(ids(index.nearest(UserId(7), "q", 10).await.unwrap()), vec![1, 3]);
    }

    #[tokio::test]
    async fn a_clear_best_match_leaves_its_loose_relatives_out() {
        let mut reads = MockReadModel::new();
        reads.expect_latest_embedding_seq().returning(|_, _| Ok(2));
        reads
            .expect_embeddings_since()
            .returning(|_, _, _| Ok(vec![stored(1, 1, [1.0, 0.0]), stored(2, 2, [0.6, 0.8])]));
        let settings = SemanticSettings { floor: 0.1, spread: 0.2, cache_bytes: 1 << 20 };
        let index = SemanticIndex::new(Arc::new(embedder(vec![1.0, 0.0])), Arc::new(reads), settings);
        let found = index.nearest(UserId(7), "q", 10).await.unwrap();
        assert_eq!(found.len(), 1, "0.6 is more than 0.2 below the best: {found:?}");
    }

    #[tokio::test]
    async fn the_least_recently_searched_users_vectors_leave_the_cache_first() {
        let mut reads = MockReadModel::new();
        reads.expect_latest_embedding_seq().returning(|_, _| Ok(1));
        let loads = Arc::new(Mutex::new(Vec::new()));
        let log = loads.clone();
        reads.expect_embeddings_since().returning(move |user, _, _| {
            log.lock().unwrap().push(user.0);
            Ok(vec![stored(user.0, 1, [1.0, 0.0])])
        });
        // Room for about two users' single vectors.
        let settings = SemanticSettings { floor: 0.0, spread: 1.0, cache_bytes: 80 };
        let index = SemanticIndex::new(Arc::new(embedder(vec![1.0, 0.0])), Arc::new(reads), settings);
        for user in [1, 2, 1, 3, 1, 2] {
            index.nearest(UserId(user), "q", 1).await.unwrap();
        }
        // 1 stays (searched often); 2 was dropped for 3 and reloaded.
        assert_eq!(*loads.lock().unwrap(), vec![1, 2, 3, 2]);
    }

    #[tokio::test]
    async fn reindex_queues_every_memory_without_a_vector_page_by_page() {
        let mut reads = MockReadModel::new();
        reads.expect_memories_without_embedding().returning(|_, after, limit| {
            assert_eq!(limit, REINDEX_PAGE);
            Ok(match after.0 {
                0 => (1..=REINDEX_PAGE as i64).map(|i| (MemoryId(i), UserId(i % 3))).collect(),
                500 => vec![(MemoryId(900), UserId(1))],
                _ => vec![],
            })
        });
        let mut repository = MockRepository::new();
        let queued = Arc::new(Mutex::new(0usize));
        let count = queued.clone();
        repository.expect_run_in_transaction().times(2).returning(move |work| {
            let mut tx = MockUnitOfWork::new();
            let count = count.clone();
            tx.expect_enqueue_job().returning(move |job| {
                assert_eq!(job.kind, EMBED_JOB_KIND);
                *count.lock().unwrap() += 1;
                Ok(())
            });
            futures::executor::block_on(work(&mut tx))
        });
        let total = reindex(&repository, &reads, "test-model", now()).await.unwrap();
        assert_eq!(total, 501);
        assert_eq!(*queued.lock().unwrap(), 501);
    }
}
