//! Sentence embeddings as stored and compared: unit-length vectors quantised to one signed
//! byte per dimension with one scale per vector, and exact nearest-neighbour search over
//! one user's vectors held contiguously in memory.
//!
//! int8 keeps 100,000 memories' vectors at 38 MB (f32 would be 154 MB), so a brute-force
//! scan stays within a search's time budget; on the reference sentences the cosine it
//! computes differs from f32's by at most ~0.002, far below what separates a match from
//! a miss.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::model::MemoryId;

/// A unit-length vector quantised to `i8` per dimension: `value ≈ scale × q`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedEmbedding {
    pub scale: f32,
    pub values: Vec<i8>,
}

impl QuantizedEmbedding {
    /// Quantises `vector` with the scale that maps its largest magnitude to 127, so no
    /// dimension clips and the rounding error is at most half a step everywhere.
    pub fn quantize(vector: &[f32]) -> Self {
        let largest = vector.iter().fold(0.0f32, |max, v| max.max(v.abs()));
        if largest == 0.0 || vector.iter().any(|v| !v.is_finite()) {
            return Self { scale: 0.0, values: vec![0; vector.len()] };
        }
        let scale = largest / 127.0;
        let values = vector.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8).collect();
        Self { scale, values }
    }

    /// The values as stored: one byte per dimension, two's complement.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.values.iter().map(|v| *v as u8).collect()
    }

    /// Reads a stored vector back.
    pub fn from_bytes(scale: f32, bytes: &[u8]) -> Self {
        Self { scale, values: bytes.iter().map(|b| *b as i8).collect() }
    }

    /// The vector this stands for (for tests and diagnostics).
    pub fn dequantize(&self) -> Vec<f32> {
        self.values.iter().map(|q| f32::from(*q) * self.scale).collect()
    }
}

/// The integer dot product of two quantised vectors. An `i32` cannot overflow: each term
/// is at most 127² and a vector has far fewer than 2³¹ / 127² (133,000) dimensions.
#[inline(always)]
fn dot(a: &[i8], b: &[i8]) -> i32 {
    // Widening to i16 products summed into i32 lanes: LLVM turns this into multiply-adds.
    a.iter().zip(b).map(|(x, y)| i32::from(i16::from(*x) * i16::from(*y))).sum()
}

/// The dot product of `query` with each `dimension`-long row of `rows`, into `out`.
#[inline(always)]
fn dot_rows(rows: &[i8], dimension: usize, query: &[i8], out: &mut Vec<i32>) {
    out.clear();
    out.extend(rows.chunks_exact(dimension).map(|row| dot(row, query)));
}

/// The dot products of each of `queries` with every `stride`-th `dimension`-long row of
/// `rows`, appended to `out`: `out[q][i]` is query `q` with row `i * stride`. Row by row,
/// so each row is read from memory once for all the queries.
#[inline(always)]
fn dot_sample(rows: &[i8], dimension: usize, stride: usize, queries: &[&[i8]], out: &mut [Vec<i32>]) {
    for row in rows.chunks_exact(dimension).step_by(stride) {
        for (query, dots) in queries.iter().zip(out.iter_mut()) {
            dots.push(dot(row, query));
        }
    }
}

/// [`dot_sample`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_sample_avx2(rows: &[i8], dimension: usize, stride: usize, queries: &[&[i8]], out: &mut [Vec<i32>]) {
    dot_sample(rows, dimension, stride, queries, out);
}

/// [`dot_sample`] with the fastest instructions this CPU has.
fn dot_sample_fastest(rows: &[i8], dimension: usize, stride: usize, queries: &[&[i8]], out: &mut [Vec<i32>]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just found to support AVX2.
        unsafe { dot_sample_avx2(rows, dimension, stride, queries, out) };
        return;
    }
    dot_sample(rows, dimension, stride, queries, out);
}

/// [`dot_rows`] compiled for AVX2 (sign-extending multiply-adds, 16 values a step): about
/// twice as fast as the baseline x86-64 build, which only has SSE2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_rows_avx2(rows: &[i8], dimension: usize, query: &[i8], out: &mut Vec<i32>) {
    dot_rows(rows, dimension, query, out);
}

/// [`dot_rows`] with the fastest instructions this CPU has.
fn dot_rows_fastest(rows: &[i8], dimension: usize, query: &[i8], out: &mut Vec<i32>) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just found to support AVX2.
        unsafe { dot_rows_avx2(rows, dimension, query, out) };
        return;
    }
    dot_rows(rows, dimension, query, out);
}

/// The cosine similarity of two quantised unit vectors.
pub fn cosine(a: &QuantizedEmbedding, b: &QuantizedEmbedding) -> f32 {
    dot(&a.values, &b.values) as f32 * a.scale * b.scale
}

/// The most vectors [`VectorSet::hubness`] compares one vector with: a search re-ranks
/// about 20 candidates, so this bounds its extra work to 20 × 1,024 dot products, and
/// every set up to 1,024 memories is measured exactly. Hybrid `/search` at 100,000
/// memories (`BENCH_ONLY=search make bench`) measured p95 26.8 ms with 4,096 and 21.0 ms
/// with 1,024, against a 20 ms target.
pub const HUBNESS_SAMPLE: usize = 1024;

/// One memory found by meaning: its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    pub memory: MemoryId,
    pub similarity: f32,
}

/// One user's vectors, side by side in one allocation so a scan streams through memory.
/// A memory appears at most once: storing it again replaces its vector.
#[derive(Debug, Clone, Default)]
pub struct VectorSet {
    dimension: usize,
    ids: Vec<MemoryId>,
    scales: Vec<f32>,
    values: Vec<i8>,
    /// Where each memory's vector is, so a re-embedded memory is replaced in place.
    positions: std::collections::HashMap<MemoryId, usize>,
}

impl VectorSet {
    /// An empty set of vectors of `dimension` values.
    pub fn new(dimension: usize) -> Self {
        Self { dimension, ..Self::default() }
    }

    /// How many memories have a vector here.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no memory has a vector here.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Roughly how much memory the set holds, for bounding a cache of sets.
    pub fn bytes(&self) -> usize {
        self.values.len() + self.ids.len() * (std::mem::size_of::<MemoryId>() + 4 + 24)
    }

    /// Stores `memory`'s vector, replacing an earlier one. A vector of the wrong length
    /// (another model's) is ignored: comparing it would be meaningless.
    pub fn upsert(&mut self, memory: MemoryId, vector: &QuantizedEmbedding) {
        if vector.values.len() != self.dimension {
            return;
        }
        match self.positions.get(&memory) {
            Some(&at) => {
                self.scales[at] = vector.scale;
                self.values[at * self.dimension..(at + 1) * self.dimension].copy_from_slice(&vector.values);
            }
            None => {
                self.positions.insert(memory, self.ids.len());
                self.ids.push(memory);
                self.scales.push(vector.scale);
                self.values.extend_from_slice(&vector.values);
            }
        }
    }

    /// Forgets `memory`'s vector (a deleted memory), moving the last vector into its place.
    pub fn remove(&mut self, memory: MemoryId) {
        let Some(at) = self.positions.remove(&memory) else {
            return;
        };
        let (last, d) = (self.ids.len() - 1, self.dimension);
        if at != last {
            let moved = self.ids[last];
            self.ids[at] = moved;
            self.scales[at] = self.scales[last];
            self.values.copy_within(last * d..(last + 1) * d, at * d);
            self.positions.insert(moved, at);
        }
        self.ids.pop();
        self.scales.pop();
        self.values.truncate(last * d);
    }

    /// The `k` memories most similar to `query` with a similarity of at least `floor`,
    /// most similar first (ties broken by the newer memory, then deterministically).
    pub fn nearest(&self, query: &QuantizedEmbedding, k: usize, floor: f32) -> Vec<Neighbour> {
        if k == 0 || query.values.len() != self.dimension || self.dimension == 0 {
            return Vec::new();
        }
        let mut dots = Vec::with_capacity(self.ids.len());
        dot_rows_fastest(&self.values, self.dimension, &query.values, &mut dots);
        // A min-heap of the best k so far: its top is the one to beat.
        let mut best: BinaryHeap<Candidate> = BinaryHeap::with_capacity(k + 1);
        for ((dot, id), scale) in dots.into_iter().zip(&self.ids).zip(&self.scales) {
            let similarity = dot as f32 * scale * query.scale;
            if similarity < floor {
                continue;
            }
            let candidate = Candidate(Neighbour { memory: *id, similarity });
            if best.len() < k {
                best.push(candidate);
            } else if best.peek().is_some_and(|worst| candidate < *worst) {
                best.pop();
                best.push(candidate);
            }
        }
        let mut found: Vec<Neighbour> = best.into_iter().map(|c| c.0).collect();
        found.sort_by_key(|n| Candidate(*n));
        found
    }

    /// How crowded `memory`'s neighbourhood is: the mean cosine similarity of its vector
    /// to its `neighbours` most similar other vectors here (fewer when the set is smaller,
    /// 0 when it has no other vector or `memory` has none). A "hub" (a vague note close to
    /// many others) scores high and tends to be every query's near neighbour; subtracting
    /// part of this from a query's similarity (cross-domain similarity local scaling,
    /// CSLS) lets the specific notes a query names through. Exact up to
    /// [`HUBNESS_SAMPLE`] vectors; a larger set is sampled evenly (every n-th vector), so
    /// one call costs at most that many dot products however many memories a user has.
    pub fn hubness(&self, memory: MemoryId, neighbours: usize) -> f32 {
        self.hubness_of(&[memory], neighbours)[0]
    }

    /// [`VectorSet::hubness`] of each of `memories`, in one pass over the sampled rows:
    /// each row is read from memory once and compared with every candidate while it is in
    /// cache. A search re-ranks about 20 candidates; measuring them one by one read the
    /// sample 20 times, which cost ~28 ms a search at 100,000 memories (`make bench`,
    /// p50 11 -> 40 ms), almost all of it cache misses on the strided rows.
    pub fn hubness_of(&self, memories: &[MemoryId], neighbours: usize) -> Vec<f32> {
        let mut hubness = vec![0.0; memories.len()];
        if neighbours == 0 || self.ids.len() < 2 {
            return hubness;
        }
        let d = self.dimension;
        // (index in `memories`, row here) of each memory that has a vector.
        let present: Vec<(usize, usize)> =
            memories.iter().enumerate().filter_map(|(k, m)| self.positions.get(m).map(|&row| (k, row))).collect();
        let stride = self.ids.len().div_ceil(HUBNESS_SAMPLE);
        let sampled = self.ids.len().div_ceil(stride);
        let queries: Vec<&[i8]> = present.iter().map(|&(_, row)| &self.values[row * d..(row + 1) * d]).collect();
        let mut dots: Vec<Vec<i32>> = present.iter().map(|_| Vec::with_capacity(sampled)).collect();
        dot_sample_fastest(&self.values, d, stride, &queries, &mut dots);
        for ((k, row), dots) in present.into_iter().zip(dots) {
            let mut similarities: Vec<f32> = dots
                .into_iter()
                .enumerate()
                .map(|(i, dot)| (i * stride, dot))
                .filter(|(other, _)| *other != row)
                .map(|(other, dot)| dot as f32 * self.scales[other] * self.scales[row])
                .collect();
            if similarities.is_empty() {
                continue;
            }
            let take = neighbours.min(similarities.len());
            similarities.select_nth_unstable_by(take - 1, |a, b| b.total_cmp(a));
            hubness[k] = similarities[..take].iter().sum::<f32>() / take as f32;
        }
        hubness
    }
}

/// Orders neighbours best first: higher similarity, then the higher (newer) memory id.
/// In a max-heap the greatest is the worst, so the heap keeps the best k.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate(Neighbour);

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.similarity.total_cmp(&self.0.similarity).then_with(|| other.0.memory.0.cmp(&self.0.memory.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Vec<f32> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.iter().map(|v| v / norm).collect()
    }

    /// A deterministic pseudo-random unit vector.
    fn random_unit(seed: u64, dimension: usize) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let values: Vec<f32> = (0..dimension)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        unit(&values)
    }

    fn exact_cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn hubness_is_the_mean_similarity_to_the_closest_other_vectors() {
        let mut set = VectorSet::new(2);
        set.upsert(MemoryId(1), &QuantizedEmbedding::quantize(&[1.0, 0.0]));
        assert_eq!(set.hubness(MemoryId(1), 3), 0.0, "alone: no neighbourhood");
        set.upsert(MemoryId(2), &QuantizedEmbedding::quantize(&unit(&[0.8, 0.6])));
        set.upsert(MemoryId(3), &QuantizedEmbedding::quantize(&[0.0, 1.0]));
        set.upsert(MemoryId(4), &QuantizedEmbedding::quantize(&[-1.0, 0.0]));
        // Memory 1's closest others: 2 (0.8), then 3 (0.0), then 4 (-1.0).
        assert!((set.hubness(MemoryId(1), 1) - 0.8).abs() < 0.01);
        assert!((set.hubness(MemoryId(1), 2) - 0.4).abs() < 0.01);
        assert!((set.hubness(MemoryId(1), 10) - (-0.2 / 3.0)).abs() < 0.01, "fewer neighbours than asked");
        // Memory 2 sits between 1 and 3: a hub.
        assert!(set.hubness(MemoryId(2), 2) > set.hubness(MemoryId(4), 2));
        assert_eq!(set.hubness(MemoryId(9), 2), 0.0, "an unknown memory");
    }

    #[test]
    fn hubness_of_a_large_set_is_measured_on_an_even_sample() {
        let mut set = VectorSet::new(64);
        for id in 0..(2 * HUBNESS_SAMPLE as i64 + 11) {
            set.upsert(MemoryId(id), &QuantizedEmbedding::quantize(&random_unit(id as u64, 64)));
        }
        // A twin of memory 1 at an odd position: the sample (every 3rd vector) skips it.
        let twin = random_unit(1, 64);
        set.upsert(MemoryId(-1), &QuantizedEmbedding::quantize(&twin));
        let hub = set.hubness(MemoryId(1), 1);
        assert!(hub > 0.2 && hub < 0.9, "the sampled nearest is a random vector, not the twin: {hub}");
        assert!(set.hubness(MemoryId(0), 1) < 0.9, "a vector is never its own neighbour");
    }

    #[test]
    fn hubness_of_several_memories_at_once_is_each_ones_own() {
        let mut set = VectorSet::new(32);
        for id in 0..300 {
            set.upsert(MemoryId(id), &QuantizedEmbedding::quantize(&random_unit(id as u64, 32)));
        }
        let vector = |id: i64| QuantizedEmbedding::quantize(&random_unit(id as u64, 32));
        // The mean of the three best cosines to every other vector, computed the long way.
        let brute_force = |id: i64| {
            let mut others: Vec<f32> = (0..300).filter(|&o| o != id).map(|o| cosine(&vector(id), &vector(o))).collect();
            others.sort_by(|a, b| b.total_cmp(a));
            others[..3].iter().sum::<f32>() / 3.0
        };
        let memories = [MemoryId(5), MemoryId(999), MemoryId(0), MemoryId(299), MemoryId(5)];
        let together = set.hubness_of(&memories, 3);
        for (&memory, hubness) in memories.iter().zip(&together) {
            let expected = if memory.0 == 999 { 0.0 } else { brute_force(memory.0) };
            assert!((hubness - expected).abs() < 1e-4, "{memory:?}: {hubness} against {expected}");
            assert_eq!(*hubness, set.hubness(memory, 3), "one at a time gives the same");
        }
        assert_eq!(set.hubness_of(&[], 3), Vec::<f32>::new());
    }

    #[test]
    fn quantised_cosine_stays_within_a_hundredth_of_the_exact_one() {
        for seed in 0..50 {
            let (a, b) = (random_unit(seed, 384), random_unit(seed + 1000, 384));
            let (qa, qb) = (QuantizedEmbedding::quantize(&a), QuantizedEmbedding::quantize(&b));
            assert!((cosine(&qa, &qb) - exact_cosine(&a, &b)).abs() < 0.01);
            assert!((cosine(&qa, &qa) - 1.0).abs() < 0.01, "a unit vector is similar to itself");
        }
    }

    #[test]
    fn stored_bytes_read_back_to_the_same_vector() {
        let q = QuantizedEmbedding::quantize(&random_unit(3, 384));
        assert_eq!(QuantizedEmbedding::from_bytes(q.scale, &q.to_bytes()), q);
        assert!(q.values.iter().any(|v| *v == 127 || *v == -127), "the largest magnitude maps to 127");
    }

    #[test]
    fn a_zero_or_broken_vector_quantises_to_zeros_instead_of_nan() {
        let zero = QuantizedEmbedding::quantize(&[0.0; 4]);
        assert_eq!(zero, QuantizedEmbedding { scale: 0.0, values: vec![0; 4] });
        assert_eq!(QuantizedEmbedding::quantize(&[f32::NAN, 1.0]).scale, 0.0);
    }

    #[test]
    fn dot_handles_lengths_that_are_not_a_multiple_of_eight() {
        let a: Vec<i8> = (0..13).map(|i| i as i8).collect();
        let b: Vec<i8> = (0..13).map(|i| (i as i8) - 6).collect();
        let expected: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
        assert_eq!(dot(&a, &b), expected);
        assert_eq!(dot(&[127; 384], &[-127; 384]), -127 * 127 * 384);
    }

    #[test]
    fn nearest_returns_the_most_similar_first_and_no_more_than_asked() {
        let mut set = VectorSet::new(384);
        let vectors: Vec<Vec<f32>> = (0..200).map(|i| random_unit(i, 384)).collect();
        for (i, v) in vectors.iter().enumerate() {
            set.upsert(MemoryId(i as i64), &QuantizedEmbedding::quantize(v));
        }
        let query = QuantizedEmbedding::quantize(&vectors[42]);
        let found = set.nearest(&query, 5, -1.0);
        assert_eq!(found.len(), 5);
        assert_eq!(found[0].memory, MemoryId(42));
        assert!(found.windows(2).all(|w| w[0].similarity >= w[1].similarity));
        // The same five an exhaustive exact ranking gives (int8 may swap near-ties only).
        let mut exact: Vec<(f32, usize)> =
            vectors.iter().enumerate().map(|(i, v)| (exact_cosine(v, &vectors[42]), i)).collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(exact[0].1, 42);
        assert!(found.iter().all(|n| exact[..8].iter().any(|(_, i)| *i as i64 == n.memory.0)));
    }

    #[test]
    fn the_floor_leaves_out_weak_matches_and_ties_prefer_the_newer_memory() {
        let mut set = VectorSet::new(2);
        set.upsert(MemoryId(1), &QuantizedEmbedding::quantize(&[1.0, 0.0]));
        set.upsert(MemoryId(2), &QuantizedEmbedding::quantize(&[1.0, 0.0]));
        set.upsert(MemoryId(3), &QuantizedEmbedding::quantize(&[0.0, 1.0]));
        let found = set.nearest(&QuantizedEmbedding::quantize(&[1.0, 0.0]), 10, 0.5);
        assert_eq!(found.iter().map(|n| n.memory.0).collect::<Vec<_>>(), vec![2, 1]);
    }

    #[test]
    fn a_removed_memory_is_never_found_and_the_others_keep_their_vectors() {
        let mut set = VectorSet::new(2);
        set.upsert(MemoryId(1), &QuantizedEmbedding::quantize(&[1.0, 0.0]));
        set.upsert(MemoryId(2), &QuantizedEmbedding::quantize(&[0.0, 1.0]));
        set.upsert(MemoryId(3), &QuantizedEmbedding::quantize(&[-1.0, 0.0]));
        set.remove(MemoryId(1));
        set.remove(MemoryId(9));
        assert_eq!(set.len(), 2);
        let ids = |query: [f32; 2]| {
            set.nearest(&QuantizedEmbedding::quantize(&query), 1, 0.9).iter().map(|n| n.memory.0).collect::<Vec<_>>()
        };
        assert_eq!(ids([1.0, 0.0]), Vec::<i64>::new());
        assert_eq!(ids([-1.0, 0.0]), vec![3], "the last vector moved into the gap");
        assert_eq!(ids([0.0, 1.0]), vec![2]);
        set.upsert(MemoryId(3), &QuantizedEmbedding::quantize(&[0.0, 1.0]));
        assert_eq!(set.len(), 2, "its position was kept up to date");
    }

    #[test]
    fn upserting_a_memory_again_replaces_its_vector_and_a_wrong_length_is_ignored() {
        let mut set = VectorSet::new(2);
        set.upsert(MemoryId(1), &QuantizedEmbedding::quantize(&[1.0, 0.0]));
        set.upsert(MemoryId(1), &QuantizedEmbedding::quantize(&[0.0, 1.0]));
        set.upsert(MemoryId(2), &QuantizedEmbedding::quantize(&[1.0, 0.0, 0.0]));
        assert_eq!(set.len(), 1);
        let found = set.nearest(&QuantizedEmbedding::quantize(&[0.0, 1.0]), 1, 0.9);
        assert_eq!(found[0].memory, MemoryId(1));
    }
}
