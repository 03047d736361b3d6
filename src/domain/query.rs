//! Turns what a person typed as a search into the words worth looking for, so that
//! "where did I park the car" searches for "park" and "car", not for "the".

/// Words too common to say anything about a memory, never searched for: PostgreSQL's
/// English stop list (which its full-text search drops whatever we send) and a few more
/// of our own. The same list on both databases gives the same answer on both: a search
/// of nothing but these finds nothing, on SQLite as on PostgreSQL.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// At most this many words are searched for; more would only slow the index down.
const MAX_TERMS: usize = 16;

/// The distinct, lower-cased words of `query` (letters and digits only, so they are safe
/// to quote into any full-text query language), without stop words; empty when the
/// query has nothing else.
pub fn search_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        if !terms.contains(&word) && STOP_WORDS.binary_search(&word.as_str()).is_err() {
            terms.push(word);
        }
    }
    terms.truncate(MAX_TERMS);
    terms
}

/// A full-text match: which memory (by id) matched which term (by its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermMatch {
    pub memory_id: i64,
    pub term: usize,
}

/// Ranks memories by the terms they contain: each term found adds `ln(1 + cap / df)`,
/// so rare terms weigh more than common ones and a memory with more of the words
/// comes first; ties go to the newer memory (the higher id). `cap` is how many matches
/// per term were fetched at most. Unlike bm25 this needs no pass over a term's whole
/// posting list, so its cost is bounded by `cap` however many memories match: the
/// reason a search stays fast at 100,000 memories. Memories are short, so term
/// frequency and length normalisation add little.
pub fn rank_term_matches(matches: &[TermMatch], cap: usize) -> Vec<(i64, f64)> {
    let mut distinct: Vec<TermMatch> = matches.to_vec();
    distinct.sort_unstable_by_key(|m| (m.memory_id, m.term));
    distinct.dedup();
    let matches = &distinct;
    let term_count = matches.iter().map(|m| m.term + 1).max().unwrap_or(0);
    let mut document_frequency = vec![0usize; term_count];
    for m in matches {
        document_frequency[m.term] += 1;
    }
    let weight: Vec<f64> =
        document_frequency.iter().map(|&df| (1.0 + cap.max(1) as f64 / df.max(1) as f64).ln()).collect();
    let mut scores: std::collections::HashMap<i64, f64> = std::collections::HashMap::new();
    for m in matches {
        *scores.entry(m.memory_id).or_insert(0.0) += weight[m.term];
    }
    let mut ranked: Vec<(i64, f64)> = scores.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(memory_id: i64, term: usize) -> TermMatch {
        TermMatch { memory_id, term }
    }

    #[test]
    fn a_memory_with_more_of_the_words_ranks_first() {
        let ranked = rank_term_matches(&[hit(1, 0), hit(2, 0), hit(2, 1), hit(3, 1)], 100);
        assert_eq!(ranked[0].0, 2);
    }

    #[test]
    fn a_rare_word_weighs_more_than_a_common_one() {
        // Term 0 matches 50 memories, term 1 only memory 7.
        let mut matches: Vec<TermMatch> = (100..150).map(|id| hit(id, 0)).collect();
        matches.push(hit(7, 1));
        let ranked = rank_term_matches(&matches, 2000);
        assert_eq!(ranked[0].0, 7);
    }

    #[test]
    fn equal_scores_put_the_newest_memory_first() {
        let ranked = rank_term_matches(&[hit(1, 0), hit(5, 0), hit(3, 0)], 100);
        assert_eq!(ranked.iter().map(|r| r.0).collect::<Vec<_>>(), vec![5, 3, 1]);
    }

    #[test]
    fn a_term_counted_twice_for_one_memory_counts_once() {
        let once = rank_term_matches(&[hit(1, 0), hit(2, 0), hit(2, 1)], 100);
        let twice = rank_term_matches(&[hit(1, 0), hit(1, 0), hit(1, 0), hit(2, 0), hit(2, 1)], 100);
        assert_eq!(once, twice);
        assert_eq!(twice[0].0, 2);
        assert!(rank_term_matches(&[], 100).is_empty());
    }

    #[test]
    fn a_question_keeps_only_its_meaningful_words() {
        assert_eq!(search_terms("Where did I park the car"), vec!["park", "car"]);
    }

    #[test]
    fn punctuation_and_operators_are_never_passed_through() {
        assert_eq!(search_terms(r#"milk" OR owner:u1 AND (NEAR*"#), vec!["milk", "owner", "u1", "near"]);
    }

    /// Before, a query of stop words alone searched for them: SQLite found memories
    /// holding them, PostgreSQL (which drops them) none.
    #[test]
    fn a_query_of_stop_words_alone_searches_for_nothing() {
        for query in ["the who", "the a an of", "and or not", "AND", "don't"] {
            assert!(search_terms(query).is_empty(), "{query}");
        }
    }

    #[test]
    fn the_stop_list_is_sorted_so_it_can_be_searched() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(STOP_WORDS.contains(&"not") && STOP_WORDS.contains(&"very"), "PostgreSQL's English stop words");
    }

    #[test]
    fn non_latin_words_and_accents_survive() {
        assert_eq!(search_terms("Café Müller 東京"), vec!["café", "müller", "東京"]);
    }

    #[test]
    fn repeated_words_count_once_and_the_count_is_capped() {
        assert_eq!(search_terms("milk MILK milk"), vec!["milk"]);
        let many = (0..40).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(search_terms(&many).len(), MAX_TERMS);
    }

    #[test]
    fn nothing_to_search_for_gives_no_terms() {
        assert!(search_terms(" ?! ").is_empty());
    }
}
