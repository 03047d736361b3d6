//! Reciprocal rank fusion: one ranking out of several made by stores whose scores mean
//! different things (full-text relevance, Mem0's similarity, later embeddings). Only the
//! ranks count, so no store's scale can drown another's.

use std::collections::HashMap;
use std::hash::Hash;

/// The usual constant of reciprocal rank fusion (Cormack et al., 2009): large enough that
/// the first few ranks of one list do not outweigh agreement between lists.
pub const RRF_K: f64 = 60.0;

/// Merges `rankings` (each best first) into one, best first: an item scores
/// `Σ 1 / (k + rank)` over the rankings it appears in, ranks counted from 1. An item
/// repeated within one ranking counts once, at its best rank. Ties go to the item with
/// the better best rank, then to the earlier ranking, then to the earlier position, so
/// the result does not depend on hashing.
pub fn reciprocal_rank_fusion<K: Eq + Hash + Clone>(rankings: &[Vec<K>], k: f64) -> Vec<(K, f64)> {
    struct Fused<K> {
        key: K,
        score: f64,
        best_rank: usize,
        first_seen: (usize, usize),
    }
    let mut fused: Vec<Fused<K>> = Vec::new();
    let mut index: HashMap<K, usize> = HashMap::new();
    for (list, ranking) in rankings.iter().enumerate() {
        let mut seen_here: HashMap<&K, ()> = HashMap::new();
        for (position, key) in ranking.iter().enumerate() {
            if seen_here.insert(key, ()).is_some() {
                continue;
            }
            let rank = position + 1;
            let contribution = 1.0 / (k + rank as f64);
            match index.get(key) {
                Some(&at) => {
                    fused[at].score += contribution;
                    fused[at].best_rank = fused[at].best_rank.min(rank);
                }
                None => {
                    index.insert(key.clone(), fused.len());
                    fused.push(Fused {
                        key: key.clone(),
                        score: contribution,
                        best_rank: rank,
                        first_seen: (list, position),
                    });
                }
            }
        }
    }
    fused.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then(a.best_rank.cmp(&b.best_rank)).then(a.first_seen.cmp(&b.first_seen))
    });
    fused.into_iter().map(|f| (f.key, f.score)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(fused: &[(&'static str, f64)]) -> Vec<&'static str> {
        fused.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn an_item_both_lists_rank_beats_items_only_one_ranks_first() {
        let fused = reciprocal_rank_fusion(&[vec!["a", "both"], vec!["b", "both"]], RRF_K);
        assert_eq!(keys(&fused), vec!["both", "a", "b"]);
        assert!((fused[0].1 - 2.0 / 62.0).abs() < 1e-12);
        assert!((fused[1].1 - 1.0 / 61.0).abs() < 1e-12);
    }

    #[test]
    fn every_item_of_every_list_is_kept() {
        let fused = reciprocal_rank_fusion(&[vec!["only-local"], vec!["only-mem0"]], RRF_K);
        assert_eq!(fused.len(), 2);
    }

    #[test]
    fn ties_go_to_the_earlier_list_then_the_earlier_position() {
        let fused = reciprocal_rank_fusion(&[vec!["x", "y"], vec!["p", "q"]], RRF_K);
        assert_eq!(keys(&fused), vec!["x", "p", "y", "q"]);
    }

    #[test]
    fn a_repeat_within_one_list_counts_once_at_its_best_rank() {
        let fused = reciprocal_rank_fusion(&[vec!["a", "b", "a"]], RRF_K);
        assert_eq!(keys(&fused), vec!["a", "b"]);
        assert!((fused[0].1 - 1.0 / 61.0).abs() < 1e-12);
    }

    #[test]
    fn a_single_ranking_keeps_its_order_and_three_rankings_fuse_as_two_do() {
        let one = reciprocal_rank_fusion(&[vec![3, 1, 2]], RRF_K);
        assert_eq!(one.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![3, 1, 2]);
        let three = reciprocal_rank_fusion(&[vec![1, 2], vec![2, 3], vec![3, 2]], RRF_K);
        assert_eq!(three[0].0, 2);
        assert!(reciprocal_rank_fusion::<u8>(&[], RRF_K).is_empty());
    }
}
