//! Local semantic search: every memory's text is embedded off the request path (saving
//! or editing a memory queues it in the same transaction; the indexer embeds the queue
//! in batches while the service is not busy), and a search compares the query's
//! embedding with the user's vectors, held in memory and refreshed from the database by
//! what is new.
//!
//! Nothing here waits on the embedder when saving: a memory whose embedding is pending is
//! found by full text alone until the indexer has reached it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::activity::RequestRate;
use crate::domain::embedding::{Neighbour, QuantizedEmbedding, VectorSet};
use crate::domain::model::{MemoryId, UserId};
use crate::domain::ports::{
    transact, EmbedError, EmbedPurpose, IndexTransaction, ReadModel, Repository, RepositoryError, TextEmbedder,
};

/// Memories embedded in one pass: batching by similar length roughly doubles the rate of
/// one at a time (`make bench` measures both), and a pass stays well under a second.
const INDEX_BATCH: u32 = 16;
/// How often an idle indexer looks at the queue, and how long it waits out a busy second.
const INDEX_POLL: Duration = Duration::from_millis(500);
/// The longest wait after a failure (the database or the model), doubling from a second.
const INDEX_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Queues the embedding of a memory saved or changed in `tx`.
///
/// # Errors
/// When the database fails; the caller's transaction rolls back.
pub async fn queue_embedding(
    tx: &mut (impl IndexTransaction + ?Sized),
    memory: MemoryId,
) -> Result<(), RepositoryError> {
    tx.queue_embedding(memory).await
}

/// Queues every memory without an embedding by `model` (memories saved before semantic
/// search was on, or under another model). Returns how many were queued; a running
/// server's indexer embeds them.
///
/// # Errors
/// When the database fails.
pub async fn reindex(repository: &dyn Repository, model: &str) -> Result<u64, RepositoryError> {
    let model = model.to_string();
    transact(repository, move |tx| Box::pin(async move { tx.queue_missing_embeddings(&model).await })).await
}

/// Why one pass of the indexer stopped.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Database(#[from] RepositoryError),
}

/// Embeds the queued memories: their texts as they are now, stored with the model's
/// name, and off the queue in the same transaction, so a crash re-embeds at most one batch.
pub struct EmbeddingIndexer {
    repository: Arc<dyn Repository>,
    reads: Arc<dyn ReadModel>,
    embedder: Arc<dyn TextEmbedder>,
    /// While the service is busy, embedding waits: it would take the CPU the webhook needs.
    activity: Option<Arc<RequestRate>>,
}

impl EmbeddingIndexer {
    /// Wires the indexer to its ports.
    pub fn new(repository: Arc<dyn Repository>, reads: Arc<dyn ReadModel>, embedder: Arc<dyn TextEmbedder>) -> Self {
        Self { repository, reads, embedder, activity: None }
    }

    /// Waits while `activity` says the service is busy.
    pub fn with_activity(mut self, activity: Arc<RequestRate>) -> Self {
        self.activity = Some(activity);
        self
    }

    /// Embeds the head of the queue; returns how many memories it took off the queue (0:
    /// the queue is empty).
    ///
    /// # Errors
    /// When the database fails or the model is missing; the queue is left as it was.
    pub async fn index_next(&self) -> Result<usize, IndexError> {
        let queued = self.reads.embedding_queue(INDEX_BATCH).await?;
        if queued.is_empty() {
            return Ok(0);
        }
        // A memory deleted since, or a photo without a caption, leaves the queue unembedded.
        let memories: Vec<(MemoryId, String)> = self
            .reads
            .find_memories(&queued)
            .await?
            .into_iter()
            .map(|record| (record.memory.id, record.memory.text))
            .filter(|(_, text)| !text.trim().is_empty())
            .collect();
        let vectors = self.embed(&memories).await?;
        let model = self.embedder.model_id();
        let done = queued.len();
        transact(&*self.repository, move |tx| {
            Box::pin(async move {
                for ((memory, text), vector) in memories.iter().zip(vectors) {
                    if let Some(vector) = vector {
                        tx.save_embedding(*memory, text, &model, &QuantizedEmbedding::quantize(&vector)).await?;
                    }
                }
                tx.dequeue_embeddings(&queued).await
            })
        })
        .await?;
        Ok(done)
    }

    /// One vector per memory, `None` for a text the model failed on (it leaves the queue
    /// with a warning rather than block it).
    async fn embed(&self, memories: &[(MemoryId, String)]) -> Result<Vec<Option<Vec<f32>>>, EmbedError> {
        let texts: Vec<String> = memories.iter().map(|(_, text)| text.clone()).collect();
        let started = std::time::Instant::now();
        let embedded = self.embedder.embed(texts, EmbedPurpose::Index).await;
        crate::telemetry::metrics::embedding("index", started.elapsed());
        match embedded {
            Ok(vectors) => return Ok(vectors.into_iter().map(Some).collect()),
            Err(error @ EmbedError::NotAvailable(_)) => return Err(error),
            Err(EmbedError::Failed(_)) => {}
        }
        let mut vectors = Vec::with_capacity(memories.len());
        for (memory, text) in memories {
            match self.embedder.embed(vec![text.clone()], EmbedPurpose::Index).await {
                Ok(mut one) => vectors.push(one.pop()),
                Err(error @ EmbedError::NotAvailable(_)) => return Err(error),
                Err(EmbedError::Failed(error)) => {
                    tracing::warn!(memory = memory.0, %error, "a memory could not be embedded; it is found by its words only");
                    vectors.push(None);
                }
            }
        }
        Ok(vectors)
    }

    /// Runs until `shutdown` turns true: embeds while there is a queue and the service is
    /// not busy, looks again every half second otherwise, and backs off after a failure.
    pub fn start(self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            while !*shutdown.borrow() {
                let busy = self.activity.as_ref().is_some_and(|rate| rate.is_busy());
                let pause = if busy {
                    INDEX_POLL
                } else {
                    match self.index_next().await {
                        Ok(0) => INDEX_POLL,
                        Ok(_) => {
                            backoff = Duration::from_secs(1);
                            continue;
                        }
                        Err(error) => {
                            tracing::warn!(%error, retry_in = ?backoff, "embedding the queued memories failed");
                            let pause = backoff;
                            backoff = (backoff * 2).min(INDEX_MAX_BACKOFF);
                            pause
                        }
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
            }
        })
    }
}

/// How vector search picks its hits.
#[derive(Debug, Clone, Copy)]
pub struct SemanticSettings {
    /// The best hit must reach this cosine similarity, or the query finds nothing by
    /// meaning: every query has nearest neighbours, even nonsense, and these would only
    /// crowd out real matches.
    pub best_floor: f32,
    /// Below this cosine similarity no memory is offered as a match, however close to the
    /// best one. Lower than `best_floor`: a query naming a category ("home repairs") is
    /// only loosely similar to each note it should find (the plumber, the electrician);
    /// once one note clearly matches, its weaker relatives count too
    /// (`tests/fixtures/category_search.json`).
    pub floor: f32,
    /// Of the hits above the floor, only those this close to the best one (by the
    /// hubness-corrected score) count: a clear best match should not bring a tail of
    /// loosely related notes with it.
    pub spread: f32,
    /// How the ranking discounts notes that are near everything.
    pub hubness: HubnessCorrection,
    /// Most bytes of vectors held in memory across users; the least recently searched
    /// users' vectors are dropped beyond it (and reloaded when they search again).
    pub cache_bytes: usize,
}

/// Hubness correction (CSLS, cross-domain similarity local scaling): a hit's score is its
/// cosine similarity minus `weight` times its [`VectorSet::hubness`]. Vague notes that sit
/// close to many others ("Mood today: tired but content") are every short query's near
/// neighbour and push out the specific notes a category query names; the correction
/// ranks the candidates by how much more similar a note is to the query than to its own
/// neighbourhood. It only reorders (and, through `spread`, selects among) the
/// `candidates` nearest by cosine, which the floors have already let through.
#[derive(Debug, Clone, Copy)]
pub struct HubnessCorrection {
    /// The nearest neighbours by cosine that are re-ranked; at least the `k` asked for.
    pub candidates: usize,
    /// How many of a note's own nearest notes measure its hubness.
    pub neighbours: usize,
    /// How much of the hubness is subtracted; 0 turns the correction off.
    pub weight: f32,
}

impl HubnessCorrection {
    /// No correction: hits ranked by cosine alone.
    pub const OFF: Self = Self { candidates: 0, neighbours: 0, weight: 0.0 };
}

impl Default for SemanticSettings {
    /// Calibrated with `examples/category_recall.rs` on half of the category queries (the
    /// other half and `tests/fixtures/category_search_holdout.json` checked it): category
    /// recall@5 by vectors 0.578 → 0.611, held-out set 0.800 → 0.825, paraphrases 1.000
    /// (see `bench/README.md`). Before issue 15: one floor of 0.25 and a spread of 0.12.
    fn default() -> Self {
        Self {
            best_floor: 0.25,
            floor: 0.15,
            spread: 0.25,
            hubness: HubnessCorrection { candidates: 20, neighbours: 3, weight: 0.5 },
            cache_bytes: 512 * 1024 * 1024,
        }
    }
}

impl SemanticSettings {
    /// Of `found` (most similar first, none below `floor`), the hits that count: none when
    /// the best misses `best_floor`, else those within `spread` of the best (no hubness
    /// correction).
    pub fn select(&self, found: Vec<Neighbour>) -> Vec<Neighbour> {
        let k = found.len();
        self.pick(found, |_| 0.0, k)
    }

    /// The hits of `query` in `set` that count, best first, at most `k`: the nearest
    /// candidates by cosine above `floor`, none when the best misses `best_floor`, else
    /// ranked by the hubness-corrected score and kept within `spread` of the best.
    /// Each [`Neighbour`] keeps its plain cosine similarity.
    pub fn rank(&self, set: &VectorSet, query: &QuantizedEmbedding, k: usize) -> Vec<Neighbour> {
        let found = set.nearest(query, k.max(self.hubness.candidates), self.floor);
        let HubnessCorrection { neighbours, weight, .. } = self.hubness;
        if weight == 0.0 {
            return self.pick(found, |_| 0.0, k);
        }
        let memories: Vec<MemoryId> = found.iter().map(|n| n.memory).collect();
        let hubness: HashMap<MemoryId, f32> =
            memories.iter().copied().zip(set.hubness_of(&memories, neighbours)).collect();
        self.pick(found, |memory| weight * hubness.get(&memory).copied().unwrap_or(0.0), k)
    }

    /// The selection both ways share: the `best_floor` gate on cosine, then the order and
    /// the spread by cosine minus `penalty`.
    fn pick(&self, found: Vec<Neighbour>, penalty: impl Fn(MemoryId) -> f32, k: usize) -> Vec<Neighbour> {
        let best = found.first().map_or(0.0, |n| n.similarity);
        if best < self.best_floor {
            return Vec::new();
        }
        let mut scored: Vec<(f32, Neighbour)> =
            found.into_iter().map(|n| (n.similarity - penalty(n.memory), n)).collect();
        // Stable: equal scores keep the nearest-first order (newer memory first on ties).
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let top = scored.first().map_or(0.0, |(score, _)| *score);
        scored.into_iter().filter(|(score, _)| *score >= top - self.spread).take(k).map(|(_, n)| n).collect()
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
        let embed_query = async {
            let started = std::time::Instant::now();
            let embedded = self.embedder.embed(vec![query.to_string()], EmbedPurpose::Query).await;
            crate::telemetry::metrics::embedding("query", started.elapsed());
            embedded
        };
        let (embedded, vectors) = tokio::join!(embed_query, self.vectors(user, &model));
        let query = embedded?.into_iter().next().ok_or_else(|| EmbedError::Failed("no vector for the query".into()))?;
        let (query, vectors, settings) = (QuantizedEmbedding::quantize(&query), vectors?, self.settings);
        crate::telemetry::blocking::spawn_blocking(move || {
            let vectors = vectors.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            settings.rank(&vectors.set, &query, k)
        })
        .await
        .map_err(|e| SemanticError::Stopped(e.to_string()))
    }

    /// Forgets vectors of the user's memories found deleted (their rows went, and with
    /// them their embeddings, but a cache does not see a row go).
    pub fn forget(&self, user: UserId, memories: &[MemoryId]) {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((entry, _)) = cache.users.get(&user) {
            let mut vectors = entry.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for memory in memories {
                vectors.set.remove(*memory);
            }
        }
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
            drop(vectors);
            // Only a load makes the cache grow.
            self.evict_beyond_budget(user);
        }
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
    use chrono::{DateTime, TimeZone, Utc};

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
            extracted_text: None,
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
    async fn the_indexer_stores_the_queued_texts_vectors_and_takes_every_one_off_the_queue() {
        let mut reads = MockReadModel::new();
        reads.expect_embedding_queue().returning(|_| Ok(vec![MemoryId(5), MemoryId(6), MemoryId(7)]));
        // 6 was deleted; 7 is a photo without a caption.
        reads.expect_find_memories().returning(|_| Ok(vec![record(5, "buy milk"), record(7, " ")]));
        let mut tx = MockUnitOfWork::new();
        tx.expect_save_embedding()
            .withf(|memory, text, model, vector| {
                *memory == MemoryId(5) && text == "buy milk" && model == "test-model" && vector.values == vec![0, 127]
            })
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        tx.expect_dequeue_embeddings()
            .withf(|ids| ids == [MemoryId(5), MemoryId(6), MemoryId(7)])
            .times(1)
            .returning(|_| Ok(()));
        let indexer =
            EmbeddingIndexer::new(Arc::new(repository(tx)), Arc::new(reads), Arc::new(embedder(vec![0.0, 1.0])));
        assert_eq!(indexer.index_next().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_missing_model_leaves_the_queue_as_it_was() {
        let mut reads = MockReadModel::new();
        reads.expect_embedding_queue().returning(|_| Ok(vec![MemoryId(5)]));
        reads.expect_find_memories().returning(|_| Ok(vec![record(5, "buy milk")]));
        let mut embedder = MockTextEmbedder::new();
        embedder.expect_embed().returning(|_, _| Err(EmbedError::NotAvailable("no model".into())));
        let indexer = EmbeddingIndexer::new(Arc::new(MockRepository::new()), Arc::new(reads), Arc::new(embedder));
        assert!(matches!(indexer.index_next().await, Err(IndexError::Embed(EmbedError::NotAvailable(_)))));
    }

    #[tokio::test]
    async fn a_text_the_model_fails_on_leaves_the_queue_without_blocking_the_others() {
        let mut reads = MockReadModel::new();
        reads.expect_embedding_queue().returning(|_| Ok(vec![MemoryId(5), MemoryId(6)]));
        reads.expect_find_memories().returning(|_| Ok(vec![record(5, "buy milk"), record(6, "bad")]));
        let mut embedder = MockTextEmbedder::new();
        embedder.expect_model_id().return_const("test-model".to_string());
        embedder.expect_embed().returning(|texts, _| {
            if texts.iter().any(|t| t == "bad") {
                Err(EmbedError::Failed("no".into()))
            } else {
                Ok(vec![vec![1.0, 0.0]])
            }
        });
        let mut tx = MockUnitOfWork::new();
        tx.expect_save_embedding()
            .withf(|memory, _, _, _| *memory == MemoryId(5))
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        tx.expect_dequeue_embeddings().withf(|ids| ids.len() == 2).times(1).returning(|_| Ok(()));
        let indexer = EmbeddingIndexer::new(Arc::new(repository(tx)), Arc::new(reads), Arc::new(embedder));
        assert_eq!(indexer.index_next().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn an_empty_queue_does_nothing() {
        let mut reads = MockReadModel::new();
        reads.expect_embedding_queue().returning(|_| Ok(vec![]));
        let indexer =
            EmbeddingIndexer::new(Arc::new(MockRepository::new()), Arc::new(reads), Arc::new(MockTextEmbedder::new()));
        assert_eq!(indexer.index_next().await.unwrap(), 0);
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
        let settings = SemanticSettings {
            best_floor: 0.5,
            floor: 0.5,
            spread: 0.5,
            hubness: HubnessCorrection::OFF,
            cache_bytes: 1 << 20,
        };
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
        let settings = SemanticSettings {
            best_floor: 0.1,
            floor: 0.1,
            spread: 0.2,
            hubness: HubnessCorrection::OFF,
            cache_bytes: 1 << 20,
        };
        let index = SemanticIndex::new(Arc::new(embedder(vec![1.0, 0.0])), Arc::new(reads), settings);
        let found = index.nearest(UserId(7), "q", 10).await.unwrap();
        assert_eq!(found.len(), 1, "0.6 is more than 0.2 below the best: {found:?}");
    }

    fn neighbour(memory: i64, similarity: f32) -> Neighbour {
        Neighbour { memory: MemoryId(memory), similarity }
    }

    #[test]
    fn a_query_nothing_clearly_matches_finds_nothing_and_one_that_does_brings_its_weaker_relatives() {
        let settings = SemanticSettings::default();
        // Nonsense: its nearest neighbours are all weak.
        assert!(settings.select(vec![neighbour(1, 0.24), neighbour(2, 0.22)]).is_empty());
        // "home repairs": the electrician's note matches, the plumber's only loosely.
        let found = settings.select(vec![neighbour(1, 0.36), neighbour(2, 0.22), neighbour(3, 0.2)]);
        assert_eq!(found.iter().map(|n| n.memory.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        // A clear best match still leaves its distant relatives out.
        assert_eq!(settings.select(vec![neighbour(1, 0.62), neighbour(2, 0.3)]).len(), 1);
    }

    /// A query `[1, 0, 0]`, a vague hub note (memory 1) with three close relatives (2–4)
    /// and a specific note (5) a little less similar to the query but near nothing else.
    fn hub_and_specific_note() -> VectorSet {
        let unit = |v: [f32; 3]| {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            QuantizedEmbedding::quantize(&v.map(|x| x / norm))
        };
        let mut set = VectorSet::new(3);
        set.upsert(MemoryId(1), &unit([0.9, 0.436, 0.0]));
        set.upsert(MemoryId(2), &unit([0.7, 0.714, 0.0]));
        set.upsert(MemoryId(3), &unit([0.5, 0.866, 0.0]));
        set.upsert(MemoryId(4), &unit([0.3, 0.954, 0.0]));
        set.upsert(MemoryId(5), &unit([0.85, 0.0, -0.527]));
        set
    }

    #[test]
    fn hubness_correction_ranks_a_specific_note_above_a_vague_one_near_everything() {
        let set = hub_and_specific_note();
        let query = QuantizedEmbedding::quantize(&[1.0, 0.0, 0.0]);
        let ids = |found: Vec<Neighbour>| found.iter().map(|n| n.memory.0).collect::<Vec<_>>();
        let plain = SemanticSettings {
            best_floor: 0.5,
            floor: 0.55,
            spread: 1.0,
            hubness: HubnessCorrection::OFF,
            cache_bytes: 0,
        };
        assert_eq!(ids(plain.rank(&set, &query, 5)), vec![1, 5, 2], "by cosine the hub comes first");
        let corrected =
            SemanticSettings { hubness: HubnessCorrection { candidates: 20, neighbours: 3, weight: 0.5 }, ..plain };
        let found = corrected.rank(&set, &query, 5);
        assert_eq!(ids(found.clone()), vec![5, 1, 2]);
        assert!((found[0].similarity - 0.85).abs() < 0.01, "hits keep their cosine: {found:?}");
        // The spread applies to the corrected score: the hub's relative falls out.
        assert_eq!(ids(SemanticSettings { spread: 0.1, ..corrected }.rank(&set, &query, 5)), vec![5, 1]);
        assert_eq!(ids(corrected.rank(&set, &query, 1)), vec![5], "at most k");
        // The best_floor gate stays on plain cosine.
        assert!(SemanticSettings { best_floor: 0.95, ..corrected }.rank(&set, &query, 5).is_empty());
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
        let settings = SemanticSettings {
            best_floor: 0.0,
            floor: 0.0,
            spread: 1.0,
            hubness: HubnessCorrection::OFF,
            cache_bytes: 80,
        };
        let index = SemanticIndex::new(Arc::new(embedder(vec![1.0, 0.0])), Arc::new(reads), settings);
        for user in [1, 2, 1, 3, 1, 2] {
            index.nearest(UserId(user), "q", 1).await.unwrap();
        }
        // 1 stays (searched often); 2 was dropped for 3 and reloaded.
        assert_eq!(*loads.lock().unwrap(), vec![1, 2, 3, 2]);
    }
}
