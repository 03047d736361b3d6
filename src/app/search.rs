//! Search over a user's memories: the local full-text index, and beside it (when on)
//! local vector search by meaning and Mem0, all asked at once and merged by reciprocal
//! rank fusion. Full text is the one ranking a search cannot do without: vector search
//! failing, or Mem0 being late, down or refusing (it is bounded by a timeout), only
//! leaves their results out, so search is never slower or less complete than words alone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::semantic::SemanticIndex;
use crate::domain::fusion::{reciprocal_rank_fusion, RRF_K};
use crate::domain::model::{Memory, MemoryId, User};
use crate::domain::ports::{ExternalMemory, MemoryFinder, MemoryHit, MemoryStoreError, ReadModel, Recalled};

/// Mem0 beside the local index.
struct Mem0Search {
    store: Arc<dyn MemoryFinder>,
    /// Maps Mem0's ids back to our memories.
    reads: Arc<dyn ReadModel>,
    /// How long a search waits for Mem0 before answering from the local index alone.
    timeout: Duration,
}

/// Vector search beside the local index.
struct SemanticSearch {
    index: Arc<SemanticIndex>,
    /// Reads the memories vector search found that full text did not.
    reads: Arc<dyn ReadModel>,
}

/// Vector hits fused with the other rankings: enough for a paraphrase to surface, few
/// enough that loosely related notes cannot crowd out what the words found.
const VECTOR_HITS: u32 = 20;

/// The search every use case runs (chat `/search` and questions, REST `?query=`).
pub struct MemorySearch {
    local: Arc<dyn MemoryFinder>,
    semantic: Option<SemanticSearch>,
    mem0: Option<Mem0Search>,
}

/// One entry of a fused ranking.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Memory(MemoryId),
    Fact(String),
}

impl MemorySearch {
    /// Search in the local full-text index only.
    pub fn local(local: Arc<dyn MemoryFinder>) -> Self {
        Self { local, semantic: None, mem0: None }
    }

    /// Also searches by meaning in `index`; `reads` reads the memories it finds.
    pub fn with_semantic(mut self, index: Arc<SemanticIndex>, reads: Arc<dyn ReadModel>) -> Self {
        self.semantic = Some(SemanticSearch { index, reads });
        self
    }

    /// Also asks `store` (Mem0), waiting at most `timeout` for it; `reads` maps its hits
    /// back to our memories.
    pub fn with_mem0(mut self, store: Arc<dyn MemoryFinder>, reads: Arc<dyn ReadModel>, timeout: Duration) -> Self {
        self.mem0 = Some(Mem0Search { store, reads, timeout });
        self
    }

    /// The user's memories matching `query`, best first, at most `limit`. With vector
    /// search or Mem0, the scores are fused ones (reciprocal rank fusion) and a Mem0
    /// memory that no single memory of ours stands behind comes back as
    /// [`Recalled::External`].
    ///
    /// # Errors
    /// When the local index fails; the others' failures only leave their results out.
    #[tracing::instrument(skip_all, fields(user = user.id.0))]
    pub async fn search(&self, user: &User, query: &str, limit: u32) -> Result<Vec<MemoryHit>, MemoryStoreError> {
        if self.semantic.is_none() && self.mem0.is_none() {
            return self.local.search(user, query, limit).await;
        }
        let (local, vectors, remote) = tokio::join!(
            self.local.search(user, query, limit),
            self.by_meaning(user, query, limit),
            self.mem0(user, query, limit)
        );
        let local = local?;
        let vectors = match &self.semantic {
            Some(semantic) => match resolve_vectors(semantic.reads.as_ref(), user, &local, vectors).await {
                Ok((found, gone)) => {
                    semantic.index.forget(user.id, &gone);
                    found
                }
                Err(error) => {
                    tracing::warn!(%error, "could not read the memories vector search found; answering without them");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let remote = match &self.mem0 {
            Some(mem0) => resolve(mem0.reads.as_ref(), user, &local, remote).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "could not map Mem0's results to memories; answering without them");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let local = local.into_iter().map(|hit| hit.recalled).collect();
        Ok(fuse(vec![local, vectors, remote], limit as usize))
    }

    /// The memories closest in meaning, best first (none without vector search or when
    /// it fails).
    async fn by_meaning(&self, user: &User, query: &str, limit: u32) -> Vec<MemoryId> {
        let Some(semantic) = &self.semantic else {
            return Vec::new();
        };
        match semantic.index.nearest(user.id, query, limit.min(VECTOR_HITS) as usize).await {
            Ok(found) => found.into_iter().map(|n| n.memory).collect(),
            Err(error) => {
                tracing::warn!(%error, "vector search failed; answering from full text");
                Vec::new()
            }
        }
    }

    /// Mem0's hits (none without Mem0, when it fails or is late).
    async fn mem0(&self, user: &User, query: &str, limit: u32) -> Vec<MemoryHit> {
        let Some(mem0) = &self.mem0 else {
            return Vec::new();
        };
        match tokio::time::timeout(mem0.timeout, mem0.store.search(user, query, limit)).await {
            Ok(Ok(hits)) => hits,
            Ok(Err(error)) => {
                tracing::warn!(%error, "Mem0 search failed; answering from the local index");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(timeout = ?mem0.timeout, "Mem0 search was late; answering from the local index");
                Vec::new()
            }
        }
    }
}

/// The memories vector search found, in its order (those full text found too are taken
/// from its hits, the others read), and the ones no longer there (deleted since, or not
/// the user's), which are left out.
async fn resolve_vectors(
    reads: &dyn ReadModel,
    user: &User,
    local: &[MemoryHit],
    ids: Vec<MemoryId>,
) -> Result<(Vec<Recalled>, Vec<MemoryId>), crate::domain::ports::RepositoryError> {
    let mut known: HashMap<MemoryId, Memory> =
        local.iter().filter_map(|hit| hit.recalled.memory()).map(|m| (m.id, m.clone())).collect();
    let wanted: Vec<MemoryId> = ids.iter().filter(|id| !known.contains_key(id)).copied().collect();
    if !wanted.is_empty() {
        known.extend(
            reads
                .find_memories(&wanted)
                .await?
                .into_iter()
                .map(|record| (record.memory.id, record.memory))
                .filter(|(_, memory)| memory.user_id == user.id),
        );
    }
    let (found, gone): (Vec<MemoryId>, Vec<MemoryId>) = ids.into_iter().partition(|id| known.contains_key(id));
    Ok((found.into_iter().filter_map(|id| known.remove(&id).map(Recalled::Memory)).collect(), gone))
}

/// Mem0's hits as ours: a hit that one memory of ours stands behind (by its metadata or
/// the links its add recorded) becomes that memory; one whose memory was deleted is left
/// out (its deletion is on its way to Mem0); any other is a fact of its own.
async fn resolve(
    reads: &dyn ReadModel,
    user: &User,
    local: &[MemoryHit],
    remote: Vec<MemoryHit>,
) -> Result<Vec<Recalled>, crate::domain::ports::RepositoryError> {
    let externals: Vec<ExternalMemory> = remote
        .into_iter()
        .filter_map(|hit| match hit.recalled {
            Recalled::External(external) => Some(external),
            Recalled::Memory(_) => None,
        })
        .collect();
    if externals.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = externals.iter().map(|e| e.id.clone()).collect();
    let mut sources: HashMap<String, HashSet<MemoryId>> = HashMap::new();
    for (mem0_id, memory) in reads.memories_of_mem0(&ids).await? {
        sources.entry(mem0_id).or_default().insert(memory);
    }
    let single_source = |external: &ExternalMemory| -> Option<MemoryId> {
        let mut all: HashSet<MemoryId> = sources.get(&external.id).cloned().unwrap_or_default();
        all.extend(external.source);
        (all.len() == 1).then(|| all.into_iter().next()).flatten()
    };
    let known: HashMap<MemoryId, Memory> =
        local.iter().filter_map(|hit| hit.recalled.memory()).map(|m| (m.id, m.clone())).collect();
    let wanted: Vec<MemoryId> =
        externals.iter().filter_map(&single_source).filter(|id| !known.contains_key(id)).collect();
    let mut found: HashMap<MemoryId, Memory> = reads
        .find_memories(&wanted)
        .await?
        .into_iter()
        .map(|record| (record.memory.id, record.memory))
        .filter(|(_, memory)| memory.user_id == user.id)
        .collect();
    found.extend(known);
    Ok(externals
        .into_iter()
        .filter_map(|external| match single_source(&external) {
            Some(id) => found.get(&id).cloned().map(Recalled::Memory),
            None => Some(Recalled::External(external)),
        })
        .collect())
}

/// Several rankings (full text first, then vectors, then Mem0, already resolved) as one,
/// best first.
fn fuse(lists: Vec<Vec<Recalled>>, limit: usize) -> Vec<MemoryHit> {
    let key = |recalled: &Recalled| match recalled {
        Recalled::Memory(memory) => Key::Memory(memory.id),
        Recalled::External(external) => Key::Fact(external.id.clone()),
    };
    let mut items: HashMap<Key, Recalled> = HashMap::new();
    let mut rankings = Vec::with_capacity(lists.len());
    for list in lists {
        let mut ranking = Vec::with_capacity(list.len());
        for recalled in list {
            let k = key(&recalled);
            ranking.push(k.clone());
            items.entry(k).or_insert(recalled);
        }
        rankings.push(ranking);
    }
    reciprocal_rank_fusion(&rankings, RRF_K)
        .into_iter()
        .take(limit)
        .filter_map(|(k, score)| Some(MemoryHit { recalled: items.remove(&k)?, score }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{MemoryKind, MemoryRecord, UserId};
    use crate::domain::ports::{MockMemoryFinder, MockReadModel};
    use chrono::{TimeZone, Utc};

    fn user() -> User {
        User {
            id: UserId(7),
            wa_id: "15551234567".into(),
            phone_number: "+15551234567".into(),
            display_name: None,
            timezone: None,
        }
    }

    fn memory(id: i64) -> Memory {
        Memory {
            id: MemoryId(id),
            user_id: UserId(7),
            kind: MemoryKind::Text,
            text: format!("memory {id}"),
            created_at: Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap(),
        }
    }

    fn local_hit(id: i64) -> MemoryHit {
        MemoryHit { recalled: Recalled::Memory(memory(id)), score: 3.0 }
    }

    fn mem0_hit(id: &str, source: Option<i64>) -> MemoryHit {
        let external = ExternalMemory {
            id: id.into(),
            text: format!("fact {id}"),
            source: source.map(MemoryId),
            created_at: None,
        };
        MemoryHit { recalled: Recalled::External(external), score: 0.9 }
    }

    fn record(id: i64) -> MemoryRecord {
        MemoryRecord {
            memory: memory(id),
            owner_wa_id: "15551234567".into(),
            labels: vec![],
            interaction_id: None,
            media_asset_id: None,
            extracted_text: None,
            mem0: None,
        }
    }

    fn hybrid(local: MockMemoryFinder, mem0: MockMemoryFinder, reads: MockReadModel, timeout_ms: u64) -> MemorySearch {
        MemorySearch::local(Arc::new(local)).with_mem0(
            Arc::new(mem0),
            Arc::new(reads),
            Duration::from_millis(timeout_ms),
        )
    }

    #[tokio::test]
    async fn without_mem0_the_local_ranking_and_scores_are_returned_as_they_are() {
        let mut local = MockMemoryFinder::new();
        local.expect_search().returning(|_, _, _| Ok(vec![local_hit(1)]));
        let hits = MemorySearch::local(Arc::new(local)).search(&user(), "milk", 10).await.unwrap();
        assert_eq!(hits, vec![local_hit(1)]);
    }

    #[tokio::test]
    async fn mem0_hits_map_to_our_memories_and_facts_without_a_single_source_stay_facts() {
        let mut local = MockMemoryFinder::new();
        local.expect_search().returning(|_, _, _| Ok(vec![local_hit(1), local_hit(2)]));
        let mut mem0 = MockMemoryFinder::new();
        // m-2 is memory 2 (also found locally), m-3 memory 3 (only Mem0 found it),
        // m-9 came from two memories, m-x from nowhere we know, m-dead from a deleted one.
        mem0.expect_search().returning(|_, _, _| {
            Ok(vec![
                mem0_hit("m-2", Some(2)),
                mem0_hit("m-3", None),
                mem0_hit("m-9", Some(4)),
                mem0_hit("m-x", None),
                mem0_hit("m-dead", Some(8)),
            ])
        });
        let mut reads = MockReadModel::new();
        reads.expect_memories_of_mem0().returning(|_| {
            Ok(vec![("m-3".into(), MemoryId(3)), ("m-9".into(), MemoryId(4)), ("m-9".into(), MemoryId(5))])
        });
        reads.expect_find_memories().returning(|ids| {
            assert!(!ids.contains(&MemoryId(2)), "memory 2 is known from the local hits");
            Ok(ids.iter().filter(|id| id.0 != 8).map(|id| record(id.0)).collect())
        });
        let hits = hybrid(local, mem0, reads, 500).search(&user(), "milk", 10).await.unwrap();
        let keys: Vec<String> = hits
            .iter()
            .map(|h| match &h.recalled {
                Recalled::Memory(m) => format!("memory {}", m.id.0),
                Recalled::External(e) => format!("fact {}", e.id),
            })
            .collect();
        // Memory 2 is ranked by both lists, so it comes first.
        assert_eq!(keys, vec!["memory 2", "memory 1", "memory 3", "fact m-9", "fact m-x"]);
        assert!((hits[0].score - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-12);
    }

    #[tokio::test]
    async fn a_late_mem0_leaves_the_local_results_alone_within_the_timeout() {
        let mut local = MockMemoryFinder::new();
        local.expect_search().returning(|_, _, _| Ok(vec![local_hit(1)]));
        let mem0 = SlowStore;
        let reads = MockReadModel::new();
        let search =
            MemorySearch::local(Arc::new(local)).with_mem0(Arc::new(mem0), Arc::new(reads), Duration::from_millis(50));
        let started = std::time::Instant::now();
        let hits = search.search(&user(), "milk", 10).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].recalled, Recalled::Memory(memory(1)));
    }

    #[tokio::test]
    async fn a_failing_mem0_is_left_out_but_a_failing_local_index_is_an_error() {
        let mut local = MockMemoryFinder::new();
        local.expect_search().returning(|_, _, _| Ok(vec![local_hit(1)]));
        let mut mem0 = MockMemoryFinder::new();
        mem0.expect_search().returning(|_, _, _| Err(MemoryStoreError::Unavailable("503".into())));
        let hits = hybrid(local, mem0, MockReadModel::new(), 500).search(&user(), "milk", 10).await.unwrap();
        assert_eq!(hits.len(), 1);

        let mut local = MockMemoryFinder::new();
        local.expect_search().returning(|_, _, _| Err(MemoryStoreError::Unavailable("locked".into())));
        let mut mem0 = MockMemoryFinder::new();
        mem0.expect_search().returning(|_, _, _| Ok(vec![]));
        assert!(hybrid(local, mem0, MockReadModel::new(), 500).search(&user(), "milk", 10).await.is_err());
    }

    /// Vector search over memories 1 (close to the query), 2 (closer still, but deleted
    /// since) and 3 (unrelated).
    fn semantic_index(embeddings_loaded: Arc<std::sync::Mutex<usize>>) -> Arc<SemanticIndex> {
        use crate::domain::embedding::QuantizedEmbedding;
        use crate::domain::ports::{MockTextEmbedder, StoredEmbedding};
        let mut embedder = MockTextEmbedder::new();
        embedder.expect_model_id().return_const("m".to_string());
        embedder.expect_dimension().return_const(2usize);
        embedder.expect_embed().returning(|_, _| Ok(vec![vec![1.0, 0.0]]));
        let mut reads = MockReadModel::new();
        reads.expect_latest_embedding_seq().returning(|_, _| Ok(3));
        reads.expect_embeddings_since().returning(move |_, _, after| {
            *embeddings_loaded.lock().unwrap() += 1;
            assert_eq!(after, 0, "loaded once");
            let stored = |id: i64, v: [f32; 2]| StoredEmbedding {
                memory: MemoryId(id),
                seq: id,
                vector: QuantizedEmbedding::quantize(&v),
            };
            Ok(vec![stored(1, [0.9, 0.44]), stored(2, [1.0, 0.0]), stored(3, [0.0, 1.0])])
        });
        Arc::new(SemanticIndex::new(
            Arc::new(embedder),
            Arc::new(reads),
            super::super::semantic::SemanticSettings::default(),
        ))
    }

    #[tokio::test]
    async fn vector_hits_join_the_full_text_ones_and_a_deleted_memory_is_left_out_and_forgotten() {
        let mut local = MockMemoryFinder::new();
        local.expect_search().returning(|_, _, _| Ok(vec![local_hit(4)]));
        let mut reads = MockReadModel::new();
        // Memory 2 was deleted: the read model no longer has it.
        reads
            .expect_find_memories()
            .returning(|ids| Ok(ids.iter().filter(|id| id.0 != 2).map(|id| record(id.0)).collect()));
        let loads = Arc::new(std::sync::Mutex::new(0));
        let index = semantic_index(loads.clone());
        let search = MemorySearch::local(Arc::new(local)).with_semantic(index.clone(), Arc::new(reads));
        let ids = |hits: Vec<MemoryHit>| hits.iter().map(|h| h.recalled.memory().unwrap().id.0).collect::<Vec<_>>();
        // Full text's 4 and vectors' 1 tie at rank one; 3 is below the floor.
        let first = ids(search.search(&user(), "music lessons", 10).await.unwrap());
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(first.contains(&1) && first.contains(&4));
        let nearest = index.nearest(UserId(7), "music lessons", 10).await.unwrap();
        assert_eq!(nearest.iter().map(|n| n.memory.0).collect::<Vec<_>>(), vec![1], "2 was forgotten");
        assert_eq!(*loads.lock().unwrap(), 1);
    }

    /// A Mem0 that never answers in time.
    struct SlowStore;

    #[async_trait::async_trait]
    impl MemoryFinder for SlowStore {
        async fn search(&self, _: &User, _: &str, _: u32) -> Result<Vec<MemoryHit>, MemoryStoreError> {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(vec![mem0_hit("late", None)])
        }
    }
}
